"""Sparse helpers: CSR conversion, row batches and the sampled products the losses need.

Everything here works on matrices only (scipy / numpy in, torch out).

Facts this module relies on (torch CPU, measured for this project):

- CSR x dense in torch is as fast as scipy; multiplying by a *transposed* CSR tensor is
  about 30x slower, so every batch keeps an explicit CSR copy of its transpose together
  with the permutation that maps the values of the batch onto the values of its transpose.
- ``torch.sparse.sampled_addmm`` computes ``(H @ W)`` at the non-zeros of a CSR pattern
  (a sampled dense-dense product, SDDMM) in O(nnz * K).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["Batch", "RowSource", "InMemoryRows", "as_csr", "sddmm"]


def _csr_tensor(
    indptr: np.ndarray, indices: np.ndarray, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(np.ascontiguousarray(indptr)).to(values.device),
            torch.from_numpy(np.ascontiguousarray(indices)).to(values.device),
            values,
            size=shape,
            check_invariants=False,
        )


def as_csr(X, *, name: str = "X") -> sp.csr_matrix:
    """Return ``X`` as a canonical scipy CSR matrix with float64-safe values.

    Dense arrays are converted to CSR (their zeros are dropped); sparse inputs are converted
    to CSR without densifying. Integer values are kept as they are here; the cast to the
    model dtype happens per batch.
    """
    if sp.issparse(X):
        X = X.tocsr()
    else:
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"{name} must be a 2-D matrix (cells x genes), got shape {X.shape}.")
        X = sp.csr_matrix(X)
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


@dataclass
class Batch:
    """A block of rows on the compute device.

    Attributes
    ----------
    rows
        Indices of the rows (cells) in the full matrix.
    X
        CSR tensor, ``len(rows) x genes``.
    Xt
        CSR tensor of the transpose, ``genes x len(rows)``.
    perm
        ``Xt.values() == X.values()[perm]``: maps values on the pattern of ``X`` onto the
        pattern of ``Xt``.
    xlogx
        ``sum(x * log(x))`` over the non-zeros (a constant of the KL divergence).
    xsum
        ``sum(x)``.
    xsq
        ``sum(x ** 2)``.
    """

    rows: np.ndarray
    X: torch.Tensor
    Xt: torch.Tensor
    perm: torch.Tensor
    xlogx: float
    xsum: float
    xsq: float

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def values(self) -> torch.Tensor:
        return self.X.values()

    def with_values(self, values: torch.Tensor) -> torch.Tensor:
        """A CSR tensor on the pattern of ``X`` holding other values."""
        return _csr_tensor_like(self.X, values)

    def transposed_with_values(self, values: torch.Tensor) -> torch.Tensor:
        """A CSR tensor on the pattern of ``Xt`` holding ``values`` (given on X's pattern)."""
        return _csr_tensor_like(self.Xt, values[self.perm])


def _csr_tensor_like(template: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            template.crow_indices(),
            template.col_indices(),
            values,
            size=template.shape,
            check_invariants=False,
        )


def make_batch(
    Xb: sp.csr_matrix, rows: np.ndarray, *, dtype: torch.dtype, device: torch.device
) -> Batch:
    """Move a scipy CSR block to ``device`` with its transpose (O(nnz) work and memory)."""
    Xb = Xb.tocsr()
    nnz = Xb.nnz
    data = np.asarray(Xb.data, dtype=np.float64)
    # transpose pattern and the permutation of values, in one scipy pass
    idx = sp.csr_matrix((np.arange(nnz, dtype=np.int64), Xb.indices, Xb.indptr), shape=Xb.shape)
    idxT = idx.T.tocsr()
    perm = np.asarray(idxT.data, dtype=np.int64)
    values = torch.as_tensor(data, dtype=dtype).to(device)
    X = _csr_tensor(Xb.indptr, Xb.indices, values, Xb.shape)
    Xt = _csr_tensor(
        idxT.indptr, idxT.indices, values[torch.from_numpy(perm).to(device)], idxT.shape
    )
    pos = data[data > 0]
    return Batch(
        rows=rows,
        X=X,
        Xt=Xt,
        perm=torch.from_numpy(perm).to(device),
        xlogx=float(np.sum(pos * np.log(pos))),
        xsum=float(data.sum()),
        xsq=float(np.sum(data * data)),
    )


def sddmm(batch: Batch, H: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Values of ``H @ W`` at the non-zeros of ``batch.X`` (same order as ``batch.values``)."""
    if batch.values.numel() == 0:
        return batch.values.clone()
    out = torch.sparse.sampled_addmm(batch.X, H, W, beta=0.0, alpha=1.0)
    return out.values()


class RowSource:
    """The interface the engine reads cells through: blocks of rows of a cells x genes matrix.

    An implementation must provide ``shape`` and ``rows(index)``, which returns the rows
    ``index`` (a sorted integer array) as a scipy CSR matrix. The in-memory implementation
    below serves scipy / numpy matrices; other sources (a backed h5ad, a zarr store) only
    need the same two members.
    """

    shape: tuple[int, int]

    def rows(self, index: np.ndarray) -> sp.csr_matrix:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def n_obs(self) -> int:
        return int(self.shape[0])

    def batches(
        self,
        batch_size: int,
        *,
        dtype: torch.dtype,
        device: torch.device,
        order: np.ndarray | None = None,
    ) -> Iterator[Batch]:
        """Yield :class:`Batch` objects of at most ``batch_size`` rows in ``order``."""
        order = np.arange(self.n_obs) if order is None else order
        for start in range(0, len(order), batch_size):
            rows = np.sort(order[start : start + batch_size])
            yield make_batch(self.rows(rows), rows, dtype=dtype, device=device)


class InMemoryRows(RowSource):
    """Rows of an in-memory scipy CSR matrix."""

    def __init__(self, X: sp.csr_matrix):
        self.X = X
        self.shape = X.shape

    def rows(self, index: np.ndarray) -> sp.csr_matrix:
        if len(index) == self.shape[0] and np.array_equal(index, np.arange(self.shape[0])):
            return self.X
        if len(index) and index[-1] - index[0] + 1 == len(index):
            return self.X[int(index[0]) : int(index[-1]) + 1]
        return self.X[index]
