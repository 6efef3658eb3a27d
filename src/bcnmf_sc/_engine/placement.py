"""Where the shared-topic model's topics sit: a target program held by a shared topic.

In the shared-topic model the target cells use K target topics and S shared ones, the
background cells only the shared ones. Multiplicative updates never move a pattern from
one block to the other, so a fit can end with a target-only program held by a shared
topic (the background leaves that topic unused where it does not fit) while a target
topic holds something of no interest. The objective hardly minds, but the target
topics (what the plots, the tables and the target score read) miss the program: on the
recovery suite this was every fit whose best target topic separated the program cells
with AUROC near 0.5.

:func:`misplaced_topics` finds such topics with the enrichment table's own call: a
shared topic that is ``target_only`` (enriched in the target, and the background's top
users stay below the target's) is paired with a target topic that is not. The fit then
swaps each pair, trains again from the swapped basis and keeps whichever of the two
fits has the lower objective (:func:`~bcnmf_sc._engine.training.repair_placement`).

A weaker program can sit in a shared topic that the background also uses a little (the
topic mixes the program with something both groups have), so its usages are enriched but
not ``target_only``. For that case the check looks at the counts instead of the usages
(:func:`genes_target_only`): the share of each cell's counts on the topic's most
specific genes, in the target's top users against the background's. A composition shift
(a cell type the background has too) fails that test, because the background's cells of
that type reach the same levels.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from .enrichment import TARGET_ONLY_QUANTILES, compare_usage

__all__ = ["gene_share", "genes_target_only", "misplaced_topics", "specific_genes", "swap_order"]

#: How many of a topic's most specific genes the count-level check reads.
SPECIFIC_GENES = 30


def misplaced_topics(
    usage_target: np.ndarray,
    usage_background: np.ndarray,
    n_target: int,
    components: np.ndarray | None = None,
    shares: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[tuple[int, int]]:
    """Pairs ``(shared topic, target topic)`` whose places a second fit should swap.

    ``usage_target`` and ``usage_background`` are cells x (K + S) usages of all topics
    (the background's solved over all of them, as :meth:`BcNMF.transform` would);
    topics ``0 .. n_target - 1`` are the target topics. Shared topics flagged
    ``target_only`` by :func:`~bcnmf_sc._engine.enrichment.compare_usage`, its quantiles
    as estimated (without the bootstrap confidence: a pair only proposes a second fit,
    kept when its objective is lower), the largest ``excess`` first, are paired with
    target topics that are not, the smallest ``excess`` first; unpaired topics stay
    where they are.

    Without such a pair, and given the ``components`` (topics x genes) and ``shares``
    (genes -> each sampled target and background cell's share of its counts on them,
    :func:`gene_share`), the counts decide (:func:`genes_target_only`). A target topic
    is free when it is not ``target_only`` or when it repeats another target topic
    (half or more of their :func:`specific_genes` in common; of such a pair the one of
    smaller ``excess``). The enriched shared topic of largest ``excess`` whose specific
    genes are target-only in the counts and new (under half in common with every target
    topic) is paired with the free target topic of smallest ``excess``.
    """
    n_topics = usage_target.shape[1]
    if n_topics <= n_target or len(usage_target) < 2 or len(usage_background) < 2:
        return []
    names = [str(j) for j in range(n_topics)]
    n_t, n_b = len(usage_target), len(usage_background)
    in_target = np.r_[np.ones(n_t, bool), np.zeros(n_b, bool)]
    usage = np.r_[usage_target, usage_background]
    with warnings.catch_warnings():  # an internal check: scipy's precision notes stay here
        warnings.simplefilter("ignore", RuntimeWarning)
        table = compare_usage(usage, in_target, ~in_target, names, target_only_pval=None)
    table = table.loc[names]
    only = table["target_only"].to_numpy(dtype=bool)
    excess = table["excess"].to_numpy(dtype=float)
    held = sorted((j for j in range(n_target, n_topics) if only[j]), key=lambda j: -excess[j])
    free = sorted((i for i in range(n_target) if not only[i]), key=lambda i: excess[i])
    pairs = list(zip(held, free, strict=False))
    if pairs or components is None or shares is None:
        return pairs
    genes = [specific_genes(components, j) for j in range(n_topics)]

    def common(a: int, b: int) -> float:
        return len(np.intersect1d(genes[a], genes[b])) / max(1, min(len(genes[a]), len(genes[b])))

    order = sorted(range(n_target), key=lambda i: (excess[i], i))  # smallest excess first
    repeats = [
        i for n, i in enumerate(order) if any(common(i, other) >= 0.5 for other in order[n + 1 :])
    ]
    free = [i for i in order if not only[i] or i in repeats]
    if not free:
        return []
    enriched = table["enriched"].to_numpy(dtype=bool)
    candidates = (j for j in range(n_target, n_topics) if enriched[j])
    for j in sorted(candidates, key=lambda j: -excess[j]):
        if any(common(j, i) >= 0.5 for i in range(n_target) if i != free[0]):
            continue  # what the target topics already hold
        if genes_target_only(*shares(genes[j])):
            return [(j, free[0])]
    return []


def specific_genes(components: np.ndarray, topic: int, n: int = SPECIFIC_GENES) -> np.ndarray:
    """The ``n`` genes most specific to one topic of ``components`` (topics x genes).

    Specificity is the topic's share of the gene's loading over all topics (each topic's
    loadings scaled to sum to one), among the genes with at least the topic's median
    loading (so that a gene nobody loads does not count as specific).
    """
    W = np.asarray(components, dtype=np.float64)
    W = W / np.maximum(W.sum(1, keepdims=True), np.finfo(float).tiny)
    row = W[topic]
    spec = row / np.maximum(W.sum(0), np.finfo(float).tiny)
    spec = np.where(row >= np.median(row), spec, -1.0)
    return np.argsort(-spec, kind="stable")[: min(n, W.shape[1])]


def gene_share(X: sp.csr_matrix, genes: np.ndarray) -> np.ndarray:
    """Each row's share of its counts on ``genes`` (0 for a row without counts)."""
    X = sp.csr_matrix(X)
    total = np.asarray(X.sum(1), dtype=np.float64).ravel()
    part = np.asarray(X[:, genes].sum(1), dtype=np.float64).ravel()
    return np.divide(part, total, out=np.zeros_like(part), where=total > 0)


def genes_target_only(share_target: np.ndarray, share_background: np.ndarray) -> bool:
    """The count-level form of ``target_only``: the target's top cells reach beyond the background.

    True when the 90th percentile of the target cells' :func:`gene_share` is above the
    99th percentile of the background cells' (the quantiles of ``target_only``).
    """
    if len(share_target) < 2 or len(share_background) < 2:
        return False
    q_ref, q_group = TARGET_ONLY_QUANTILES
    return bool(np.quantile(share_target, q_group) > np.quantile(share_background, q_ref))


def swap_order(n_topics: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """The row order of the basis with each pair of topics exchanged."""
    order = np.arange(n_topics)
    for a, b in pairs:
        order[a], order[b] = order[b], order[a]
    return order
