"""Topics that hold one gene program: grouped by the genes they load above the mean.

Matrices in, groups out. A fit with more topics than programs splits a program over
several topics (ten target topics for one planted program load its genes alike and
differ in which cells use them); :func:`group_topics` puts such topics back together, so
that ``tl`` can write one score per program instead of one score for everything the
target has (a single score cannot tell two programs apart).
:func:`program_profiles` merges each group into one gene profile and
:func:`program_basis` sets the profiles beside the topics the background is fitted with,
so each cell's program score is the share of its counts that profile explains
(:func:`program_shares`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from .enrichment import usage_proportions

__all__ = [
    "PROGRAM_GENES",
    "PROGRAM_OVERLAP",
    "excess_profiles",
    "group_topics",
    "mean_profile",
    "program_basis",
    "program_profiles",
    "program_shares",
    "top_gene_members",
    "top_gene_overlap",
]

#: Each topic is represented by this many genes: those it loads most above the model's
#: mean profile (:func:`excess_profiles`).
PROGRAM_GENES = 50
#: Topics join one program when the average share of top genes they have in common
#: (average linkage) is at least this. On the recovery suite's K=10 fits (seeds 0-2)
#: topics of the same planted program shared 0.2-0.6 of their top 50 genes, topics of
#: different programs 0.0-0.1 (docs/benchmarks.md, "Programs").
PROGRAM_OVERLAP = 0.15


def excess_profiles(components: np.ndarray, usage: np.ndarray) -> np.ndarray:
    """Each topic's gene profile minus the model's mean profile (K x genes).

    Topics are normalised to sum to one; the mean profile is the fitted prediction of
    all cells, ``usage.sum(0) @ W``, normalised the same way: the share of the data's
    counts each gene takes. A gene a topic loads at its mean share scores 0; the genes
    with the largest values are those the topic adds to an average cell. The difference
    of shares (not their ratio) keeps rare genes that one topic happens to load from
    ranking first.
    """
    return _shares(components) - mean_profile(components, usage)


def mean_profile(components: np.ndarray, usage: np.ndarray) -> np.ndarray:
    """The fit's mean profile: each gene's share of all cells' predicted counts (genes).

    ``usage.sum(0) @ W`` with the topics normalised to sum to one, normalised again;
    uniform when nothing is predicted.
    """
    W = _shares(components)
    mean = np.asarray(usage, dtype=float).sum(0) @ W
    return mean / mean.sum() if mean.sum() > 0 else np.full(W.shape[1], 1.0 / W.shape[1])


def top_gene_members(excess: np.ndarray, *, n_genes: int = PROGRAM_GENES) -> np.ndarray:
    """Each topic's top genes as a 0/1 matrix (K x genes), from :func:`excess_profiles`.

    A topic's top genes are the ``n_genes`` (at most the number of genes) with the
    largest ``excess`` values.
    """
    excess = np.asarray(excess, dtype=float)
    n = max(1, min(int(n_genes), excess.shape[1]))
    top = np.argpartition(-excess, n - 1, axis=1)[:, :n]
    member = np.zeros(excess.shape, dtype=float)
    np.put_along_axis(member, top, 1.0, axis=1)
    return member


def top_gene_overlap(
    components: np.ndarray, usage: np.ndarray, *, n_genes: int = PROGRAM_GENES
) -> np.ndarray:
    """Share of top genes each pair of topics has in common (K x K, 1 on the diagonal).

    The top genes are those of :func:`top_gene_members` on :func:`excess_profiles`.
    """
    member = top_gene_members(excess_profiles(components, usage), n_genes=n_genes)
    return (member @ member.T) / member.sum(1).max()


def group_topics(
    overlap: np.ndarray, candidates: np.ndarray, *, min_overlap: float = PROGRAM_OVERLAP
) -> list[np.ndarray]:
    """Group the ``candidates`` topics into programs by their shared top genes.

    ``overlap`` is :func:`top_gene_overlap` (K x K). Average-linkage clustering of the
    candidates on ``1 - overlap``, cut where the average overlap between two groups falls
    below ``min_overlap``. Returns the groups as arrays of topic indices (sorted), in the
    order of their smallest index; topics that are not candidates belong to none.
    """
    cand = np.flatnonzero(np.asarray(candidates, dtype=bool))
    if len(cand) <= 1:
        return [cand] if len(cand) else []
    sub = np.asarray(overlap, dtype=float)[np.ix_(cand, cand)]
    distance = 1.0 - sub[np.triu_indices(len(cand), 1)]
    tree = linkage(np.clip(distance, 0.0, 1.0), method="average")
    labels = fcluster(tree, t=1.0 - float(min_overlap), criterion="distance")
    groups = [np.sort(cand[labels == lab]) for lab in np.unique(labels)]
    return sorted(groups, key=lambda g: int(g[0]))


def _shares(components: np.ndarray) -> np.ndarray:
    """Topics normalised to sum to one over the genes (a topic of zeros stays zero)."""
    W = np.asarray(components, dtype=float)
    return W / np.maximum(W.sum(1, keepdims=True), 1e-300)


def program_profiles(
    components: np.ndarray, usage: np.ndarray, groups: Sequence[np.ndarray]
) -> np.ndarray:
    """One gene profile per group of topics (programs x genes, rows summing to one).

    A group's profile is the mean of its topics' normalised loadings weighted by the
    counts each topic explains in the fitted cells (``usage.sum(0)`` times the topic's
    total loading): the gene profile of everything the group's topics fit, as one topic.
    """
    W = np.asarray(components, dtype=float)
    counts = np.asarray(usage, dtype=float).sum(0) * W.sum(1)
    shares = _shares(W)
    out = np.zeros((len(groups), W.shape[1]))
    for j, g in enumerate(groups):
        g = np.asarray(g, dtype=int)
        weight = counts[g] if counts[g].sum() > 0 else np.ones(len(g))
        out[j] = weight @ shares[g]
    return _shares(out)


def program_basis(
    components: np.ndarray, profiles: np.ndarray, groups: Sequence[np.ndarray], n_shared: int
) -> np.ndarray:
    """The program profiles followed by the topics the background is fitted with.

    Those topics are, in the shared-topic model, the ``n_shared`` shared topics (the last
    rows of ``components``): the target topics outside any program are left out, since
    they are fitted to target cells alone (on small target groups, to single cells) and
    would take counts from the programs. In the contrast (``n_shared == 0``) every topic
    is fitted to both groups, so the topics in no group are kept. Rows are normalised to
    sum to one, so a cell's usage of each row is the counts it explains.
    """
    W = _shares(components)
    if n_shared > 0:
        base = np.arange(W.shape[0] - int(n_shared), W.shape[0])
    else:
        grouped = {int(i) for g in groups for i in g}
        base = np.array([i for i in range(W.shape[0]) if i not in grouped], dtype=int)
    return np.r_[_shares(profiles).reshape(-1, W.shape[1]), W[base]]


def program_shares(
    project: Callable[[np.ndarray], np.ndarray], basis: np.ndarray, n_programs: int
) -> np.ndarray:
    """Per cell and program: the share of the cell's counts the program explains.

    ``project(W)`` returns the usages of the cells for the rows of ``W`` (fixed); the
    cells are projected onto ``basis`` (:func:`program_basis`) and each usage row is
    normalised to one, so the first ``n_programs`` columns are each program's share of
    the cell's fitted counts. Returns cells x ``n_programs``.
    """
    H = project(np.asarray(basis, dtype=float))
    return usage_proportions(H)[:, : int(n_programs)]
