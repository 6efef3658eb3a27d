"""Per-loss computations: one usage update, the statistics that update the gene basis, the loss.

Orientation is cells x genes: a block of cells ``X`` (n x g) is modelled as ``H @ W`` with
usages ``H`` (n x K) and components ``W`` (K x g, each row summing to one).

For a data term ``D(X | H W)`` the gradient with respect to ``W`` splits into a positive
and a negative part, ``grad = N - P``. The multiplicative update of plain NMF is
``W <- W * P / N``; the contrastive update swaps the two parts for the background term:
``W <- W * (a P_X + c N_Y) / (a N_X + c P_Y)``. ``stats`` returns ``(P, N, loss)`` so the
solver can combine them; everything is O(nnz * K + (n + g) * K^2).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch

from .sparse import Batch, sddmm

__all__ = ["EPS", "FrobeniusLoss", "KLLoss", "Loss", "get_loss"]

EPS = 1e-12
# usages are kept above this so that multiplicative updates can revive them (an exact
# zero never changes again); far below any count, so invisible in the results
H_MIN = 1e-30


class Loss(Protocol):
    """What the solver needs of a loss (see the module docstring)."""

    name: str

    def prepare(self, b: Batch, W: torch.Tensor) -> Any: ...

    def h_step(
        self, b: Batch, H: torch.Tensor, W: torch.Tensor, ctx: Any = None
    ) -> torch.Tensor: ...

    def h_step_loss(
        self, b: Batch, H: torch.Tensor, W: torch.Tensor, power: float = 1.0, ctx: Any = None
    ) -> tuple[torch.Tensor, float]: ...

    def stats(
        self, b: Batch, H: torch.Tensor, W: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]: ...

    def loss(self, b: Batch, H: torch.Tensor, W: torch.Tensor) -> float: ...

    def null_deviance(self, X: sp.csr_matrix, colsum: np.ndarray) -> float: ...

    def zero_loss(self, X: sp.csr_matrix) -> float: ...


def _kl_value(b: Batch, mu: torch.Tensor, hsum: torch.Tensor, wsum: torch.Tensor) -> float:
    """``D(X | M)`` from the model at the non-zeros and the all-ones product.

    ``mu`` holds the model values at the non-zeros; ``sum(M) = hsum . wsum`` (usage
    column sums times component row sums).
    """
    return (
        b.xlogx - float(torch.dot(b.values, torch.log(mu))) - b.xsum + float(torch.dot(hsum, wsum))
    )


def _power(ratio: torch.Tensor, power: float) -> torch.Tensor:
    return ratio if power == 1.0 else ratio.pow_(power)


class KLLoss:
    """Generalised Kullback-Leibler divergence (Poisson deviance / 2), for counts.

    ``D(X | M) = sum(x log(x / m) - x + m)``. The ratio ``X / M`` is needed only at the
    non-zeros of ``X`` (a sampled product); the all-ones products become column sums.
    """

    name = "kl"

    def _ratio(self, b: Batch, H: torch.Tensor, W: torch.Tensor):
        mu = sddmm(b, H, W).clamp_min_(EPS)
        return b.values / mu, mu

    def prepare(self, b: Batch, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W^T, row sums of W)`` for a fixed ``W``: what every usage step reuses.

        ``W^T`` is made contiguous once, so that the sparse product of each step reads
        it row by row instead of through the strided view (1.07x per epoch, identical
        components: ``benchmarks/bench_speed_changes.py --only klprepare``); the ratio
        ``X / HW`` itself changes with ``H``.
        """
        return W.T.contiguous(), W.sum(1)

    def h_step(self, b: Batch, H: torch.Tensor, W: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        Wt, wsum = self.prepare(b, W) if ctx is None else ctx
        R, _ = self._ratio(b, H, W)
        num = b.with_values(R) @ Wt  # (n x K)
        return (H * num / wsum.clamp_min(EPS)).clamp_min_(H_MIN)  # all-ones: row sums of W

    def h_step_loss(
        self, b: Batch, H: torch.Tensor, W: torch.Tensor, power: float = 1.0, ctx: Any = None
    ):
        """One usage step and the loss at the usages it started from (nearly free here).

        ``power > 1`` over-relaxes the step (``H * ratio ** power``), which moves faster
        along the multiplicative path; the caller checks the loss it returns. ``ctx``:
        :meth:`prepare` of the same ``W`` (computed here if None).
        """
        Wt, wsum = self.prepare(b, W) if ctx is None else ctx
        R, mu = self._ratio(b, H, W)
        num = b.with_values(R) @ Wt
        loss = _kl_value(b, mu, H.sum(0), wsum)
        return (H * _power(num / wsum.clamp_min(EPS), power)).clamp_min_(H_MIN), loss

    def stats(self, b: Batch, H: torch.Tensor, W: torch.Tensor):
        R, mu = self._ratio(b, H, W)
        P = (b.transposed_with_values(R) @ H).T  # H^T (X / M): K x g
        hsum = H.sum(0)
        N = hsum[:, None].expand_as(W)  # H^T 1: the same for every gene
        loss = _kl_value(b, mu, hsum, W.sum(1))
        return P, N, loss

    def loss(self, b: Batch, H: torch.Tensor, W: torch.Tensor) -> float:
        mu = sddmm(b, H, W).clamp_min_(EPS)
        return _kl_value(b, mu, H.sum(0), W.sum(1))

    @staticmethod
    def zero_loss(X: sp.csr_matrix) -> float:
        """Loss of the model that predicts nothing: infinite wherever there are counts."""
        return math.inf if X.nnz and np.any(X.data > 0) else 0.0

    @staticmethod
    def null_deviance(X: sp.csr_matrix, colsum: np.ndarray) -> float:
        """Loss of the rank-one model ``m_ij = r_i c_j / T`` (library size times mean profile)."""
        total = colsum.sum()
        if total <= 0:
            return 0.0
        r, rows = _row_totals(X)
        x = np.asarray(X.data, dtype=np.float64)
        keep = x > 0
        mu = r[rows[keep]] * colsum[X.indices[keep]] / total
        return float(np.sum(x[keep] * np.log(x[keep] / mu)))


class FrobeniusLoss:
    """Half the squared Frobenius norm, ``0.5 * ||X - H W||^2``, for continuous data."""

    name = "frobenius"

    def prepare(self, b: Batch, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X W^T, W W^T)``: all a usage step needs of the data, for a fixed ``W``.

        With them a usage step (and its loss) costs O(cells K^2) instead of a pass over
        the non-zeros, ``O(nnz K)``: a solve makes one sparse product, not one per step.
        """
        return b.X @ W.T, W @ W.T

    def h_step(self, b: Batch, H: torch.Tensor, W: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        num, gram = self.prepare(b, W) if ctx is None else ctx
        den = H @ gram
        return (H * num / den.clamp_min_(EPS)).clamp_min_(H_MIN)

    def h_step_loss(
        self, b: Batch, H: torch.Tensor, W: torch.Tensor, power: float = 1.0, ctx: Any = None
    ):
        """One usage step (over-relaxed by ``power``) and the loss at its start.

        ``ctx``: :meth:`prepare` of the same batch and ``W`` (computed here if None).
        """
        num, gram = self.prepare(b, W) if ctx is None else ctx
        den = H @ gram
        loss = 0.5 * (b.xsq - 2.0 * float((H * num).sum()) + float((H * den).sum()))
        return (H * _power(num / den.clamp_min_(EPS), power)).clamp_min_(H_MIN), loss

    def stats(self, b: Batch, H: torch.Tensor, W: torch.Tensor):
        P = (b.Xt @ H).T  # H^T X
        HtH = H.T @ H
        N = HtH @ W
        loss = 0.5 * (b.xsq - 2.0 * float((P * W).sum()) + float((HtH * (W @ W.T)).sum()))
        return P, N, loss

    def loss(self, b: Batch, H: torch.Tensor, W: torch.Tensor) -> float:
        return self.stats(b, H, W)[2]

    @staticmethod
    def zero_loss(X: sp.csr_matrix) -> float:
        """Loss of the model that predicts nothing, ``||X||^2 / 2``."""
        x = np.asarray(X.data, dtype=np.float64)
        return 0.5 * float(np.sum(x * x))

    @staticmethod
    def null_deviance(X: sp.csr_matrix, colsum: np.ndarray) -> float:
        total = colsum.sum()
        x = np.asarray(X.data, dtype=np.float64)
        xsq = float(np.sum(x * x))
        if total <= 0:
            return 0.5 * xsq
        r, rows = _row_totals(X)
        cross = float(np.sum(x * r[rows] * colsum[X.indices])) / total
        sq = float(np.sum(r * r)) * float(np.sum(colsum * colsum)) / total**2
        return 0.5 * (xsq - 2.0 * cross + sq)


def _row_totals(X: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Each row's total (float64) and the row index of every stored value."""
    r = np.asarray(X.sum(1, dtype=np.float64)).ravel()
    return r, np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))


def get_loss(name: str) -> Loss:
    """The loss called ``name`` (``"kl"`` or ``"frobenius"``)."""
    if name == "kl":
        return KLLoss()
    if name == "frobenius":
        return FrobeniusLoss()
    raise ValueError(f"Unknown loss {name!r}: use 'kl' (counts) or 'frobenius'.")
