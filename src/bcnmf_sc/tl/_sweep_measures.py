"""What the sweep measures at one grid point, and the rule that recommends a setting."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bcnmf_sc._engine import BcNMF, RowSource
from bcnmf_sc._engine import evaluate as _scoring
from bcnmf_sc._engine.problem import block_rows
from bcnmf_sc._utils import default_topic_names

from ._consensus import MIN_SIMILARITY, consensus_components
from ._enrichment import compare_usage, score_weights, target_score

__all__ = ["MIN_STABILITY", "TOLERANCE", "check_grid", "evaluate", "recommend"]

#: Default rule thresholds (see :func:`bcnmf_sweep`).
MIN_STABILITY = 0.9
TOLERANCE = 0.05

_COLUMNS = [
    "alpha",
    "n_topics",
    "objective",
    "target_term",
    "background_term",
    "background_explained",
    "n_enriched",
    "n_stable_enriched",
    "max_log2fc",
    "best_auroc",
    "median_auroc",
    "target_score_share",
    "target_score_effect",
    "stability",
    "stability_enriched",
    "heldout_target",
    "random_state",
    "converged",
    "recommended",
]


def check_grid(alphas, n_topics) -> tuple[list[float], list[int]]:
    def as_seq(v, name):
        if isinstance(v, str) or not isinstance(v, Sequence | np.ndarray):
            v = [v]
        v = list(np.asarray(v, dtype=object).ravel())
        if not v:
            raise ValueError(f"{name} is empty: pass at least one value.")
        return v

    a = as_seq(alphas, "alphas")
    for x in a:
        if (
            isinstance(x, bool | np.bool_)
            or not isinstance(x, numbers.Real)
            or not math.isfinite(x)
            or x < 0
        ):
            raise ValueError(f"alphas must be finite numbers >= 0, got {x!r}.")
    k = as_seq(n_topics, "n_topics")
    for x in k:
        if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Integral) or x < 1:
            raise ValueError(f"n_topics must be integers >= 1, got {x!r}.")
    return sorted({float(x) for x in a}), sorted({int(x) for x in k})


def _fit(X_t: RowSource, X_b: RowSource, k, alpha, seed, loss, engine: dict) -> BcNMF:
    model = BcNMF(n_components=k, alpha=alpha, loss=loss, n_init=1, random_state=seed, **engine)
    return model.fit_source(X_t, X_b)


def _colsum(src: RowSource) -> np.ndarray:
    out = np.zeros(src.shape[1])
    for _, block in src.blocks(block_rows(src.shape[1])):
        out += np.asarray(block.sum(0, dtype=np.float64)).ravel()
    return out


def evaluate(X_t, X_b, k, alpha, seeds, loss, engine, split, min_stability) -> dict:
    """Fit the restarts of one grid point and measure them (see :func:`bcnmf_sweep`)."""
    fits = [_fit(X_t, X_b, k, alpha, s, loss, engine) for s in seeds]
    best = int(np.argmin([m.objective_ for m in fits]))
    m = fits[best]
    usage = np.vstack([m.usage_target_, m.usage_background_])
    in_t = np.arange(len(usage)) < X_t.shape[0]
    topics = default_topic_names(k)
    enr = compare_usage(usage, in_t, ~in_t, topics).reindex(topics)
    enriched = enr["enriched"].to_numpy(dtype=bool)
    score = target_score(usage, score_weights(enr, topics))
    stability = consensus_components(
        [f.components_ for f in fits], reference=best, min_similarity=MIN_SIMILARITY
    )["stability"]
    stable = enriched & (stability >= min_stability)
    diff = score[in_t].mean() - score[~in_t].mean()
    sd = np.sqrt((score[in_t].var() + score[~in_t].var()) / 2)
    heldout = np.nan
    if split is not None:
        train, test = X_t.subset(rows=split[0]), X_t.subset(rows=split[1])
        mh = _fit(train, X_b, k, alpha, seeds[best], loss, engine)
        heldout = _scoring.relative_loss(
            test, mh.transform_source(test), mh.components_, loss, _colsum(train)
        )
    return {
        "alpha": float(alpha),
        "n_topics": int(k),
        "objective": float(m.objective_),
        "target_term": float(m.target_term_),
        "background_term": float(m.background_term_),
        "background_explained": 1.0 - float(m.background_term_),
        "n_enriched": int(enriched.sum()),
        "n_stable_enriched": int(stable.sum()),
        "max_log2fc": float(enr["log2fc"].max()),
        "best_auroc": float(enr["auroc"].max()),
        "median_auroc": float(enr["auroc"].median()),
        "target_score_share": float(diff),
        "target_score_effect": float(diff / sd) if sd > 0 else 0.0,
        "stability": float(stability.mean()),
        "stability_enriched": float(stability[enriched].mean()) if enriched.any() else np.nan,
        "heldout_target": float(heldout),
        "random_state": int(seeds[best]),
        "converged": bool(all(f.converged_ for f in fits)),
    }


def recommend(table: pd.DataFrame, *, tolerance: float = TOLERANCE) -> tuple[str, str]:
    """Row label of the recommended setting and the step of the rule that chose it.

    The rule is the one documented in :func:`bcnmf_sweep`.
    """
    alpha = table["alpha"].to_numpy(dtype=float)
    stable = table["n_stable_enriched"].to_numpy() >= 1
    effect = table["target_score_effect"].to_numpy(dtype=float)
    positive = alpha > 0
    pools = [
        (positive & stable, "contrastive"),
        (~positive & stable, "plain"),
        (positive if positive.any() else np.ones_like(positive), "none"),
    ]
    pool, step = next((p, s) for p, s in pools if p.any())
    best = np.nanmax(np.where(pool, effect, -np.inf))
    near = pool & (effect >= best - tolerance * abs(best))
    if not near.any():  # NaN effects
        near = pool
    cand = table[near].sort_values(["n_topics", "alpha"], kind="stable")
    return cand.index[0], step
