"""What a model with fixed components does: project cells, score components on data.

:class:`ProjectionMixin` is part of :class:`~bcnmf_sc._engine.model.BcNMF` (kept here so
the estimator's file holds its parameters and its fit).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from ._dist import LocalComm
from ._validation import check_matrix, resolve_device, resolve_dtype
from .evaluate import score_components
from .losses import get_loss
from .options import get_options
from .rows import InMemoryRows, RowSource
from .solver import Runtime
from .training import project

__all__ = ["ProjectionMixin"]


class ProjectionMixin:
    """``from_components``, ``transform``, ``transform_source``, ``score_source``."""

    components_: np.ndarray
    n_features_in_: int
    loss: str
    device: Any
    dtype: Any

    def get_params(self) -> dict[str, Any]:  # pragma: no cover - the estimator's
        raise NotImplementedError

    def _check_params(self) -> None:  # pragma: no cover - the estimator's
        raise NotImplementedError

    @classmethod
    def from_components(cls, components, **params) -> Self:
        """A model that only projects: fixed ``components`` (K x genes), no fit.

        Rows are renormalised to sum to one. ``params`` are constructor parameters
        (``loss``, ``device``, ``dtype`` matter for :meth:`transform`).
        """
        W = np.asarray(components, dtype=np.float64)
        if W.ndim != 2 or W.shape[0] < 1 or np.any(W < 0) or not np.all(np.isfinite(W)):
            raise ValueError("components must be a finite, non-negative K x genes matrix.")
        sums = W.sum(1, keepdims=True)
        if np.any(sums <= 0):
            raise ValueError("Every component needs at least one positive loading.")
        model = cls(n_components=W.shape[0], **params)  # type: ignore[call-arg]
        model._check_params()
        model.components_ = W / sums
        model.n_features_in_ = W.shape[1]
        return model

    def transform(self, X, *, batch_size: int = 4096) -> np.ndarray:
        """Usages of new cells (cells x K) with the fitted components fixed."""
        self._check_fitted()
        X = check_matrix(X, "X")
        if X.shape[1] != self.components_.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} genes but the model was fitted on "
                f"{self.components_.shape[1]}; use the same genes in the same order."
            )
        return self.transform_source(InMemoryRows(X), batch_size=batch_size)

    def transform_source(self, source: RowSource, *, batch_size: int = 4096) -> np.ndarray:
        """Usages for the rows of a :class:`RowSource` (see :meth:`transform`).

        Runs on the fit's device and dtype (``device_``, ``dtype_``) when the model was
        fitted, else on those its parameters name; the fitted attributes are not changed.
        """
        self._check_fitted()
        rt = Runtime(
            loss=get_loss(self.loss),
            comm=LocalComm(),
            dtype=getattr(self, "dtype_", None) or resolve_dtype(self.dtype),
            device=getattr(self, "device_", None) or resolve_device(self.device),
            options=get_options(),
        )
        return project(rt, self.components_, source, batch_size)

    def score_source(self, target: RowSource, background: RowSource) -> Self:
        """Usages, terms and objective of the fixed ``components_`` on these data.

        No training: sets ``usage_target_``, ``usage_background_``, ``target_term_``,
        ``background_term_`` and ``objective_`` as a fit would for these components.
        """
        self._check_fitted()
        s = score_components(
            lambda W, src: self._with(W).transform_source(src),
            self.components_,
            target,
            background,
            self.get_params(),
        )
        self.usage_target_, self.usage_background_ = s.usage_target, s.usage_background
        self.target_term_, self.background_term_ = s.terms
        self.objective_ = s.objective
        return self

    def _with(self, W: np.ndarray) -> Self:
        """Return this model, or one with its parameters projecting onto ``W``."""
        if W is self.components_:
            return self
        params = {k: v for k, v in self.get_params().items() if k != "n_components"}
        return type(self).from_components(W, **params)

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise RuntimeError("This BcNMF instance is not fitted yet; call fit() first.")
