"""Candidate read-outs for the recovery harness, compared at K=10 (docs/benchmarks.md).

Use as ``python benchmarks/recovery.py --readouts score,readouts:score_sq ...`` with
``PYTHONPATH=benchmarks``. ``score`` (the harness's own) is what ``tl.bcnmf`` writes;
``score_block`` is the rule it adopted (excess weights on the target topics only), kept
here because the runs that chose it compared it with the score of the time (all topics).
Each function takes the harness's ``Fit`` and returns cells x features.
"""
import numpy as np

from bcnmf_sc._engine.enrichment import usage_proportions
from bcnmf_sc.tl._enrichment import score_weights


def _tab(fit):
    return fit.enrichment()


def score_only(fit):
    """Excess-weighted proportions of the ``target_only`` topics (all if none)."""
    t = _tab(fit)
    w = t["excess"].to_numpy() * t["target_only"].to_numpy()
    if not w.any():
        w = t["excess"].to_numpy()
    return (usage_proportions(fit.usage_target) @ w)[:, None]


def score_sq(fit):
    """Proportions weighted by the squared excess (all topics)."""
    w = _tab(fit)["excess"].to_numpy() ** 2
    return (usage_proportions(fit.usage_target) @ w)[:, None]


def only_props(fit):
    """The proportions of the ``target_only`` topics, as a matrix."""
    t = _tab(fit)
    sel = t["target_only"].to_numpy()
    if not sel.any():
        sel = t["excess"].to_numpy() > 0
    if not sel.any():
        return np.zeros((len(fit.usage_target), 1))
    return usage_proportions(fit.usage_target)[:, sel]


def _n_shared(fit):
    return int(getattr(fit.model, "n_shared_", 0) or 0)


def score_block(fit):
    """Excess-weighted proportions of the target topics (the shared ones weigh 0).

    tl's rule (``score_weights`` with ``n_shared``), the same as the harness's ``score``
    now.
    """
    t = _tab(fit)
    w = score_weights(t, list(t.index), _n_shared(fit))
    return (usage_proportions(fit.usage_target) @ w)[:, None]


def score_block_only(fit):
    """As ``score_block``, plus shared topics flagged ``target_only``."""
    t = _tab(fit)
    w = score_weights(t, list(t.index), _n_shared(fit))
    only = t["target_only"].to_numpy(dtype=bool)
    w = np.where(only, t["excess"].to_numpy(), w)
    return (usage_proportions(fit.usage_target) @ w)[:, None]
