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
"""

from __future__ import annotations

import warnings

import numpy as np

from .enrichment import compare_usage

__all__ = ["misplaced_topics", "swap_order"]


def misplaced_topics(
    usage_target: np.ndarray, usage_background: np.ndarray, n_target: int
) -> list[tuple[int, int]]:
    """Pairs ``(shared topic, target topic)`` whose places a second fit should swap.

    ``usage_target`` and ``usage_background`` are cells x (K + S) usages of all topics
    (the background's solved over all of them, as :meth:`BcNMF.transform` would);
    topics ``0 .. n_target - 1`` are the target topics. Shared topics flagged
    ``target_only`` by :func:`~bcnmf_sc._engine.enrichment.compare_usage`, the largest
    ``excess`` first, are paired with target topics that are not, the smallest
    ``excess`` first; unpaired topics stay where they are.
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
        table = compare_usage(usage, in_target, ~in_target, names).loc[names]
    only = table["target_only"].to_numpy(dtype=bool)
    excess = table["excess"].to_numpy(dtype=float)
    held = sorted((j for j in range(n_target, n_topics) if only[j]), key=lambda j: -excess[j])
    free = sorted((i for i in range(n_target) if not only[i]), key=lambda i: excess[i])
    return list(zip(held, free, strict=False))


def swap_order(n_topics: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """The row order of the basis with each pair of topics exchanged."""
    order = np.arange(n_topics)
    for a, b in pairs:
        order[a], order[b] = order[b], order[a]
    return order
