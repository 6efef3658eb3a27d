"""Consensus topics from several restarts: matching, outlier removal, stability.

Restarts of an NMF give the same topics in a different order and with small differences;
a topic that only one seed finds is an artefact of that seed. The functions here match
topics across restarts by cosine similarity of their loadings (the Hungarian algorithm,
so each restart contributes at most one topic to each consensus topic), drop matched
topics that disagree with the rest, and summarise how well the restarts agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from bcnmf_sc._engine import BcNMF, InMemoryRows, RowSource
from bcnmf_sc._engine import evaluate as _evaluate
from bcnmf_sc._engine.sparse import as_csr

__all__ = [
    "MIN_SIMILARITY",
    "consensus_components",
    "consensus_model",
    "match_topics",
    "relative_loss",
    "restart_seeds",
    "topic_matching",
]

#: Matched topics whose cosine similarity to the consensus topic is below this are dropped
#: as outliers. 0.875 is cNMF's default density threshold (a Euclidean distance of 0.5
#: between L2-normalised loadings) written as a cosine: ``1 - 0.5**2 / 2``.
MIN_SIMILARITY = 0.875


def restart_seeds(random_state: int | None, n: int) -> list[int]:
    """``n`` seeds for independent restarts, drawn from ``random_state``.

    Runs with different ``random_state`` share no seeds (as ``random_state + r`` would).
    """
    rng = np.random.default_rng(random_state)
    return [int(s) for s in rng.integers(2**31 - 1, size=n)]


def _unit(W: np.ndarray) -> np.ndarray:
    W = np.asarray(W, dtype=float)
    norm = np.linalg.norm(W, axis=1, keepdims=True)
    return np.divide(W, norm, out=np.zeros_like(W), where=norm > 0)


def match_topics(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Match each topic of ``reference`` to a distinct topic of ``other``.

    Parameters
    ----------
    reference, other
        Loadings, topics x genes (the same genes; the same number of topics).

    Returns
    -------
    ``(index, similarity)``: topic ``k`` of ``reference`` is matched to topic
    ``index[k]`` of ``other``, whose cosine similarity with it is ``similarity[k]``; the
    matching maximises the total similarity (Hungarian algorithm).
    """
    A, B = _unit(reference), _unit(other)
    if A.shape != B.shape:
        raise ValueError(f"Cannot match {A.shape} loadings to {B.shape} loadings.")
    C = A @ B.T
    rows, cols = linear_sum_assignment(-C)
    index = np.empty(len(A), dtype=int)
    index[rows] = cols
    return index, C[np.arange(len(A)), index]


def topic_matching(A: np.ndarray, B: np.ndarray) -> float:
    """How well two sets of topics agree: the mean cosine similarity of matched topics.

    1 when both hold the same topics (in any order); non-negative loadings keep it >= 0.
    """
    return float(np.mean(match_topics(A, B)[1]))


def consensus_components(
    components: Sequence[np.ndarray],
    *,
    reference: int = 0,
    min_similarity: float = MIN_SIMILARITY,
    max_iter: int = 10,
) -> dict:
    """Combine the topics of several restarts into consensus topics.

    1. Start from the topics of restart ``reference`` (e.g. the one with the lowest
       objective) as the consensus.
    2. Match the topics of every restart to the consensus topics (:func:`match_topics`).
    3. A matched topic is kept when its cosine similarity to the consensus topic is at
       least ``min_similarity``; the best-matching one is always kept, so every consensus
       topic has at least one member.
    4. Each consensus topic becomes the gene-wise median of its kept members, normalised
       to sum to one. Steps 2-4 repeat until the matching no longer changes.

    Parameters
    ----------
    components
        One topics x genes loadings matrix per restart (all the same shape).
    reference
        Position of the restart to start from.
    min_similarity
        Outlier threshold, see step 3 (default :data:`MIN_SIMILARITY`).
    max_iter
        Most rounds of steps 2-4.

    Returns
    -------
    dict with ``components`` (K x genes, rows sum to one, in the order of the reference's
    topics), ``stability`` (per topic: mean cosine similarity over all pairs of restarts
    of the topics matched to it, outliers included; 1 when every restart found the same
    topic), ``similarity`` (K x restarts: each matched topic's cosine similarity to the
    consensus), ``kept`` (K x restarts, bool), ``index`` (K x restarts: which topic of each
    restart was matched).
    """
    Ws = [np.asarray(W, dtype=float) for W in components]
    if not Ws:
        raise ValueError("components is empty: pass the loadings of at least one restart.")
    shape = Ws[0].shape
    if any(W.shape != shape for W in Ws):
        raise ValueError(f"All restarts need loadings of one shape, got {[W.shape for W in Ws]}.")
    R, K = len(Ws), shape[0]
    center = Ws[reference] / np.maximum(Ws[reference].sum(1, keepdims=True), 1e-300)
    index = np.full((K, R), -1)
    for _ in range(max(1, int(max_iter))):
        new_index = np.empty((K, R), dtype=int)
        sim = np.empty((K, R))
        for r, W in enumerate(Ws):
            new_index[:, r], sim[:, r] = match_topics(center, W)
        kept = sim >= min_similarity
        kept[np.arange(K), np.argmax(sim, axis=1)] = True
        members = np.stack([Ws[r][new_index[:, r]] for r in range(R)], axis=1)  # K x R x g
        center = np.empty(shape)
        for k in range(K):
            med = np.median(members[k, kept[k]], axis=0)
            if med.sum() <= 0:  # an all-zero median (disjoint members): use their mean
                med = members[k, kept[k]].mean(0)
            center[k] = med / med.sum()
        if np.array_equal(new_index, index):
            break
        index = new_index
    # final similarities against the final consensus
    sim = np.stack([match_topics(center, W)[1] for W in Ws], axis=1)
    stability = np.ones(K)
    if R > 1:
        U = _unit(members.reshape(K * R, -1)).reshape(K, R, -1)
        for k in range(K):
            G = U[k] @ U[k].T
            stability[k] = G[np.triu_indices(R, 1)].mean()
    return {
        "components": center,
        "stability": np.clip(stability, 0.0, 1.0),
        "similarity": sim,
        "kept": kept,
        "index": index,
    }


def relative_loss(
    X,
    usage: np.ndarray,
    components: np.ndarray,
    *,
    loss: str,
    profile: np.ndarray | None = None,
) -> float:
    """``D(X | usage @ components)`` as a fraction of the null model's loss.

    The null model is each cell's total count times a fixed gene ``profile`` (default the
    mean profile of ``X`` itself; pass the training cells' profile for held-out cells), as
    the engine scales its objective: 1 means no better than the null model, 0 a perfect fit.
    The losses are the engine's (:mod:`bcnmf_sc._engine.evaluate`).
    """
    src = _source(X)
    colsum = np.asarray(X.sum(0)).ravel() if profile is None else profile
    return _evaluate.relative_loss(src, np.asarray(usage), components, loss, colsum)


def _source(data) -> RowSource:
    return data if isinstance(data, RowSource) else InMemoryRows(as_csr(data))


def consensus_model(
    runs: Sequence[BcNMF],
    target,
    background,
    *,
    min_similarity: float = MIN_SIMILARITY,
) -> tuple[BcNMF, dict]:
    """A model holding the consensus topics of fitted restarts, with usages refitted.

    Parameters
    ----------
    runs
        Fitted :class:`bcnmf_sc.BcNMF` models (the same data and parameters, different
        seeds).
    target, background
        The data they were fitted on (matrices or row sources).
    min_similarity
        See :func:`consensus_components`.

    Returns
    -------
    ``(model, info)``. ``model`` has the consensus topics (:func:`consensus_components`,
    starting from the restart with the lowest objective) as ``components_``, usages of
    the target and background cells fitted to them from scratch (``usage_target_``,
    ``usage_background_``), and ``objective_``, ``target_term_``, ``background_term_`` of
    the fit's objective for the consensus topics (as the engine scores them: for the
    contrast, background usages refitted with the background's null-model topic; with
    shared topics, the background fitted with those alone). With shared topics, target
    and shared topics are matched and combined separately (``index`` counts rows of
    ``components_``). ``history_``, ``n_epochs_``,
    ``converged_`` and ``solver_`` are those of the restart with the lowest objective.
    ``info`` is the dict of :func:`consensus_components` plus ``reference`` (that
    restart) and ``objectives`` (of every restart).
    """
    objectives = [float(m.objective_) for m in runs]
    best = int(np.argmin(objectives))
    ref = runs[best]
    n_shared, _ = ref.resolved_model()
    k = ref.components_.shape[0] - n_shared
    # target topics are matched among target topics, shared among shared ones
    blocks = [slice(0, k), slice(k, k + n_shared)] if n_shared else [slice(0, k)]
    parts = [
        consensus_components(
            [m.components_[b] for m in runs], reference=best, min_similarity=min_similarity
        )
        for b in blocks
    ]
    info: dict[str, Any] = {
        name: np.concatenate([part[name] + (b.start if name == "index" else 0)
                              for part, b in zip(parts, blocks, strict=True)])
        for name in parts[0]
    }  # fmt: skip
    info.update(reference=best, objectives=objectives)
    params = {k: v for k, v in ref.get_params().items() if k != "n_components"}
    model = BcNMF.from_components(info["components"], **params)
    model.score_source(_source(target), _source(background))
    attrs = ("history_", "n_epochs_", "n_iter_", "converged_", "solver_", "init_", "tol_")
    for name in attrs:
        if hasattr(ref, name):
            setattr(model, name, getattr(ref, name))
    return model, info
