"""What a model with fixed components needs: checked components and the projection runtime.

The estimator's ``from_components``, ``transform``, ``transform_source`` and
``score_source`` (:class:`~bcnmf_sc._engine.model.BcNMF`) are thin wrappers of these and
of :func:`~bcnmf_sc._engine.training.project` and
:func:`~bcnmf_sc._engine.evaluate.score_components`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._dist import LocalComm
from ._validation import resolve_device, resolve_dtype
from .losses import get_loss
from .options import get_options
from .solver import Runtime

__all__ = ["check_genes", "normalised_components", "projection_runtime"]


def normalised_components(components: Any) -> np.ndarray:
    """``components`` (K x genes) checked and with rows renormalised to sum to one."""
    W = np.asarray(components, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] < 1 or np.any(W < 0) or not np.all(np.isfinite(W)):
        raise ValueError("components must be a finite, non-negative K x genes matrix.")
    sums = W.sum(1, keepdims=True)
    if np.any(sums <= 0):
        raise ValueError("Every component needs at least one positive loading.")
    return W / sums


def check_genes(n_genes: int, n_fitted: int) -> None:
    """New cells must come with the genes the model was fitted on."""
    if n_genes != n_fitted:
        raise ValueError(
            f"X has {n_genes} genes but the model was fitted on "
            f"{n_fitted}; use the same genes in the same order."
        )


def projection_runtime(
    loss: str,
    dtype: Any,
    device: Any,
    *,
    fitted_dtype: torch.dtype | None = None,
    fitted_device: torch.device | None = None,
) -> Runtime:
    """The runtime of a projection: the fit's dtype and device when there was a fit."""
    return Runtime(
        loss=get_loss(loss),
        comm=LocalComm(),
        dtype=fitted_dtype or resolve_dtype(dtype),
        device=fitted_device or resolve_device(device),
        options=get_options(),
    )
