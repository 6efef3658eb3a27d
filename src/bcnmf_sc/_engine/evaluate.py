"""The objective of given components on given data, without training.

Used by the consensus of restarts (:mod:`bcnmf_sc.tl._consensus`) and the sweep: the
usages come from the engine's projection, the groups' summaries, weights, null-model
topic and the objective from :mod:`~bcnmf_sc._engine.problem`, so the numbers are those
a fit reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._dist import LocalComm
from .losses import get_loss
from .options import get_options
from .problem import (
    deviance_terms,
    group_weights,
    null_profile,
    objective,
    resolve_model,
    resolve_null_topic,
    resolve_scaling,
    summarise,
)
from .rows import RowSource

__all__ = ["Scores", "relative_loss", "score_components"]

Projector = Callable[[np.ndarray, RowSource], np.ndarray]


@dataclass
class Scores:
    """Usages of both groups, the two weighted terms and the objective."""

    usage_target: np.ndarray
    usage_background: np.ndarray
    terms: tuple[float, float]
    objective: float


def score_components(
    project: Projector,
    W: np.ndarray,
    target: RowSource,
    background: RowSource,
    params: Mapping[str, Any],
) -> Scores:
    """Usages of both groups for fixed ``W`` (``project(W, source)``) and the objective.

    When the fit's background carries its null-model topic (``null_topic``), background
    usages are also fitted with it, as in training, for the background term; the usages
    returned use the K topics alone. With shared topics (``n_shared``, the last rows of
    ``W``) the background term fits the background with those alone and the two terms
    are added, as in training; the usages returned use all topics.
    """
    loss = get_loss(params["loss"])
    window = get_options().window_rows
    comm = LocalComm()
    tgt = summarise(target, "target", loss, comm=comm, window=window)
    bg = summarise(background, "background", loss, comm=comm, window=window)
    H_t = project(W, target)
    H_b = project(W, background)
    n_shared, alpha = resolve_model(params["n_shared"], params["alpha"], params["loss"])
    W_bg, H_null = W, H_b
    if n_shared:
        W_bg = W[W.shape[0] - n_shared :]
        H_null = project(W_bg, background)
    elif resolve_null_topic(params["null_topic"], params["loss"]) == "background":
        W_bg = np.vstack([W, null_profile(bg.colsum)[None, :]])
        H_null = project(W_bg, background)
    lt, _ = deviance_terms(target, H_t, W, loss, tgt.colsum)
    lb, _ = deviance_terms(background, H_null, W_bg, loss, bg.colsum)
    scaling = resolve_scaling(params["alpha_scaling"], params["loss"])
    a, b = group_weights((tgt.null, bg.null), scaling, (tgt.n, bg.n))
    coef = (a, b if n_shared else float(alpha or 0.0) * b)
    value = objective((lt, lb), coef, shared=bool(n_shared))
    return Scores(H_t, H_b, (a * lt, b * lb), value)


def relative_loss(
    source: RowSource, usage: np.ndarray, W: np.ndarray, loss: str, colsum: np.ndarray
) -> float:
    """``D(rows | usage @ W)`` as a fraction of the null model's loss (profile ``colsum``)."""
    value, null = deviance_terms(source, usage, W, get_loss(loss), colsum)
    return value / max(null, 1e-300)
