"""Sparse maths: CSR conversion, batches on the device and the sampled products the losses need.

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
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["Batch", "as_csr", "gather", "make_batch", "row_sums", "sddmm"]


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
    flat
        For batches dense enough that a dense product beats the sampled one (see
        :func:`sddmm`): the position ``row * genes + col`` of every non-zero; else None.
    """

    rows: np.ndarray
    X: torch.Tensor
    Xt: torch.Tensor
    perm: torch.Tensor
    xlogx: float
    xsum: float
    xsq: float
    flat: torch.Tensor | None = None

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
        return _csr_tensor_like(self.Xt, gather(values, self.perm))


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
    perm_t = torch.from_numpy(perm).to(device)
    Xt = _csr_tensor(idxT.indptr, idxT.indices, gather(values, perm_t), idxT.shape)
    pos = data[data > 0]
    flat = None
    n_cells, n_genes = Xb.shape
    if nnz >= DENSE_SDDMM_DENSITY * n_cells * n_genes and n_cells * n_genes <= DENSE_SDDMM_MAX:
        row_of = np.repeat(np.arange(n_cells, dtype=np.int64), np.diff(Xb.indptr))
        flat = torch.from_numpy(row_of * n_genes + Xb.indices.astype(np.int64)).to(device)
    return Batch(
        rows=rows,
        X=X,
        Xt=Xt,
        perm=perm_t,
        xlogx=float(np.sum(pos * np.log(pos))),
        xsum=float(data.sum()),
        xsq=float(np.sum(data * data)),
        flat=flat,
    )


# Above this density a batch's model values come from the dense product ``H @ W`` of the
# batch (one BLAS call, ``cells x genes`` floats of scratch, at most DENSE_SDDMM_MAX of
# them) gathered at the non-zeros: 2-4x faster than torch's sampled product on CPU at
# 20% density, slower at 5% (see benchmarks/bench_engine.py).
DENSE_SDDMM_DENSITY = 0.1
DENSE_SDDMM_MAX = 1 << 23


def gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[index]`` for a 1-D int64 ``index``: the same values, about 3x faster.

    ``index_select`` skips the general advanced-indexing path (100k values from a
    256 x 2,000 block, torch 2.13 CPU: 0.24 ms against 0.76 ms; measured in
    ``benchmarks/bench_speed_changes.py``).
    """
    return values.index_select(0, index)


def sddmm(batch: Batch, H: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Values of ``H @ W`` at the non-zeros of ``batch.X`` (same order as ``batch.values``)."""
    if batch.values.numel() == 0:
        return batch.values.clone()
    if batch.flat is not None:
        return gather((H @ W).view(-1), batch.flat)
    out = torch.sparse.sampled_addmm(batch.X, H, W, beta=0.0, alpha=1.0)
    return out.values()


def row_sums(b: Batch) -> torch.Tensor:
    """Total count of each row of a batch."""
    crow = b.X.crow_indices().long()
    rows = torch.repeat_interleave(torch.arange(b.n, device=crow.device), crow.diff())
    return torch.zeros(b.n, dtype=b.values.dtype, device=crow.device).index_add_(0, rows, b.values)


# Backward compatibility: the row sources lived here (and two options were constants).
_MOVED = {
    "RowSource",
    "InMemoryRows",
    "H5adRows",
    "SubsetRows",
    "epoch_order",
    "iter_parts",
    "window_rows",
    "select_columns",
}


def __getattr__(name: str):
    from . import options, rows

    if name in _MOVED:
        return getattr(rows, name)
    if name == "WINDOW_ROWS":
        return options.get_options().window_rows
    if name == "SHUFFLE_BLOCK":
        return options.get_options().shuffle_block
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
