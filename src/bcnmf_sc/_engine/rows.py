"""Where the engine reads cells from: the row-source interface and its implementations.

:class:`RowSource` is the public interface (rows of a cells x genes matrix, a block at a
time); :class:`InMemoryRows`, :class:`SubsetRows` and :class:`H5adRows` implement it.
The epoch's order of rows (:func:`epoch_order`) and the reading of an order by windows
(:func:`iter_parts`) live here too: they decide what is read and when.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .options import get_options
from .sparse import Batch, make_batch

__all__ = [
    "H5adRows",
    "InMemoryRows",
    "RowSource",
    "SubsetRows",
    "checked_rows",
    "epoch_order",
    "iter_parts",
    "select_columns",
    "window_rows",
]


class RowSource:
    """Where the engine reads cells from: rows of a cells x genes matrix, a block at a time.

    Every fit (:meth:`BcNMF.fit_source`) and projection (:meth:`BcNMF.transform_source`)
    reads its data only through this interface, so an in-memory matrix
    (:class:`InMemoryRows`) and a file on disk (:class:`H5adRows`) go through the same code,
    and the same data with the same seed gives the same fit from either.

    A new kind of storage (a zarr store, a dask array, ...) needs a subclass with two
    members:

    ``shape``
        ``(n_rows, n_genes)``.
    ``rows(index)``
        The rows ``index`` (a strictly increasing int64 array) as a scipy CSR matrix of
        shape ``(len(index), n_genes)``, in that order. Any real dtype (integer counts
        are fine); the engine validates the values (NaN, infinite, negative) itself.

    and optionally ``in_memory = True`` when the whole matrix is held in memory anyway
    (this only allows ``solver="full"`` on more than 500 cells). Nothing else: the
    engine decides what to read and when.

    How the engine calls ``rows`` (what an implementation can rely on):

    * Validation and the column sums: consecutive blocks of rows, in order.
    * Training (one epoch) and projection: the epoch's order of rows (see
      :func:`epoch_order`) is cut into *windows* of at most ``window_rows`` rows (an
      option of :mod:`~bcnmf_sc._engine.options`; or one batch, if batches are larger);
      each window is read with one call, and its batches are cut from it in memory.
      Above one window, an epoch shuffles blocks of ``shuffle_block`` consecutive rows,
      so the index of one call consists of about 128 runs of consecutive rows: a source
      that pays per read (a file) should read each run with one request (as
      :class:`H5adRows` does).
    * The initialisation reads at most ``init_cells`` rows per group (all rows for
      smaller groups), again in windows.

    So no call asks for more than ``max(window_rows, batch size)`` rows (at most 2,000,000
    / n_genes rows for validation), whatever the number of rows: peak memory is set by
    the window and the model, not by the data.

    :meth:`subset` restricts any source to some rows and columns (target cells, the genes
    of ``mask_var``) without reading anything.
    """

    shape: tuple[int, int]
    in_memory: bool = False

    def rows(self, index: np.ndarray) -> sp.csr_matrix:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def n_obs(self) -> int:
        return int(self.shape[0])

    def subset(self, rows=None, cols=None) -> RowSource:
        """Some rows and columns of this source; nothing is read.

        ``rows``: increasing indices or a boolean mask; ``cols``: a boolean mask, or
        indices in any order.
        """
        return SubsetRows(self, rows=rows, cols=cols)

    def blocks(self, block_rows: int) -> Iterator[tuple[np.ndarray, sp.csr_matrix]]:
        """Consecutive blocks ``(index, CSR)`` of at most ``block_rows`` rows, in order."""
        n = self.n_obs
        for start in range(0, n, max(1, int(block_rows))):
            idx = np.arange(start, min(n, start + block_rows), dtype=np.int64)
            yield idx, checked_rows(self, idx)

    def batches(
        self,
        batch_size: int,
        *,
        dtype: torch.dtype,
        device: torch.device,
        order: np.ndarray | None = None,
    ) -> Iterator[Batch]:
        """Yield :class:`Batch` objects of at most ``batch_size`` rows in ``order``."""
        for _, b in iter_parts(self, batch_size, dtype=dtype, device=device, order=order):
            if b is not None:
                yield b


class InMemoryRows(RowSource):
    """Rows of an in-memory scipy CSR matrix."""

    in_memory = True

    def __init__(self, X: sp.csr_matrix):
        self.X = X
        self.shape = X.shape

    def rows(self, index: np.ndarray) -> sp.csr_matrix:
        if len(index) == self.shape[0] and np.array_equal(index, np.arange(self.shape[0])):
            return self.X
        if len(index) and index[-1] - index[0] + 1 == len(index):
            return self.X[int(index[0]) : int(index[-1]) + 1]
        return self.X[index]


def window_rows(batch_size: int, window: int | None = None) -> int:
    """Rows per window: ``window`` rounded down to whole batches (at least one).

    ``window`` defaults to the option ``window_rows``.
    """
    window = get_options().window_rows if window is None else int(window)
    batch_size = max(1, int(batch_size))
    return max(batch_size, (window // batch_size) * batch_size)


def epoch_order(
    n: int,
    batch_size: int,
    rng: np.random.Generator,
    *,
    window: int | None = None,
    block: int | None = None,
) -> np.ndarray:
    """The order in which one epoch visits rows ``0 .. n-1`` (a permutation).

    Up to one window (:func:`window_rows`) this is ``rng.permutation(n)``: every batch is
    a uniform random sample. Above, blocks of ``shuffle_block`` consecutive rows are
    shuffled as units, then the rows of each window are shuffled among themselves: a
    window is then read as ``window_rows / shuffle_block`` (128) runs of consecutive rows
    from random places in the data, and every batch is a random sample of its window.
    (Cells sorted by sample or cell type therefore still mix within every batch.)

    The order depends only on ``n``, ``batch_size`` and ``rng``, never on where the rows are
    stored, so a backed file and an in-memory matrix give the same fit.
    """
    L = window_rows(batch_size, window)
    if n <= L:
        return rng.permutation(n)
    block = get_options().shuffle_block if block is None else int(block)
    n_blocks = -(-n // block)
    starts = rng.permutation(n_blocks).astype(np.int64) * block
    order = (starts[:, None] + np.arange(block, dtype=np.int64)).ravel()
    order = order[order < n]
    for s in range(0, n, L):
        seg = order[s : s + L]
        order[s : s + L] = seg[rng.permutation(len(seg))]
    return order


def checked_rows(source: RowSource, index: np.ndarray) -> sp.csr_matrix:
    X = source.rows(index)
    if not sp.issparse(X):
        X = sp.csr_matrix(np.asarray(X))
    if X.shape != (len(index), source.shape[1]):
        raise ValueError(
            f"{type(source).__name__}.rows() returned shape {X.shape} for {len(index)} rows "
            f"of a source with {source.shape[1]} columns."
        )
    return X


def iter_parts(
    source: RowSource,
    batch_size: int,
    *,
    dtype: torch.dtype,
    device: torch.device,
    order: np.ndarray | None = None,
    offset: int = 0,
    n_total: int | None = None,
    window: int | None = None,
) -> Iterator[tuple[int, Batch | None]]:
    """Batches of ``order`` (consecutive slices of ``batch_size`` rows), read by window.

    ``source`` may hold only some of the rows of the order: the rows ``offset ..
    offset + source.n_obs - 1`` of ``n_total`` (one process's shard in data-parallel
    training). For every batch of the order this yields ``(rows in the batch, Batch of
    this source's rows in it, or None when it has none)``; ``Batch.rows`` are indices into
    ``source``. With one process, ``offset=0`` and ``n_total=source.n_obs``.
    """
    n_local = source.n_obs
    n_total = n_local if n_total is None else int(n_total)
    if order is None:
        order = np.arange(n_total, dtype=np.int64)
    L = window_rows(batch_size, window)
    hi = offset + n_local
    for w in range(0, len(order), L):
        glob = order[w : w + L]
        mine = np.sort(glob[(glob >= offset) & (glob < hi)]) - offset
        Xw = checked_rows(source, mine) if len(mine) else None
        for s in range(w, min(w + L, len(order)), batch_size):
            g = order[s : s + batch_size]
            rows = np.sort(g[(g >= offset) & (g < hi)]) - offset
            if not len(rows):
                yield len(g), None
                continue
            assert Xw is not None  # rows of this source in the batch: read with the window
            Xb = Xw if len(rows) == len(mine) else Xw[np.searchsorted(mine, rows)]
            yield len(g), make_batch(Xb, rows, dtype=dtype, device=device)


def _as_index(sel, n: int, what: str) -> np.ndarray:
    sel = np.asarray(sel)
    if sel.dtype == bool:
        if sel.shape != (n,):
            raise ValueError(f"A boolean {what} mask needs length {n}, got shape {sel.shape}.")
        return np.flatnonzero(sel).astype(np.int64)
    if sel.ndim != 1 or not np.issubdtype(sel.dtype, np.integer):
        raise ValueError(f"{what} must be a boolean mask or integer indices.")
    sel = sel.astype(np.int64)
    if len(sel) and (sel.min() < 0 or sel.max() >= n):
        raise IndexError(f"{what} indices out of range for {n}.")
    return sel


def select_columns(X: sp.csr_matrix, cols: np.ndarray) -> sp.csr_matrix:
    """Columns ``cols`` (distinct indices, any order) of a CSR matrix, in O(nnz)."""
    colmap = np.full(X.shape[1], -1, dtype=np.int64)
    colmap[cols] = np.arange(len(cols))
    new = colmap[X.indices]
    keep = new >= 0
    kept = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    out = sp.csr_matrix(
        (X.data[keep], new[keep], kept[X.indptr]), shape=(X.shape[0], len(cols)), copy=False
    )
    if len(cols) > 1 and np.any(np.diff(cols) < 0):
        out.has_sorted_indices = False
        out.sort_indices()
    return out


class SubsetRows(RowSource):
    """Some rows (increasing) and columns of another source; see :meth:`RowSource.subset`."""

    def __init__(self, source: RowSource, rows=None, cols=None):
        n, g = source.shape
        self.source = source
        self.index = None if rows is None else _as_index(rows, n, "rows")
        if self.index is not None and np.any(np.diff(self.index) <= 0):
            raise ValueError("Row indices of a subset must be strictly increasing.")
        self.cols = None if cols is None else _as_index(cols, g, "cols")
        if self.cols is not None and len(np.unique(self.cols)) != len(self.cols):
            raise ValueError("Column indices of a subset must be distinct.")
        self.in_memory = source.in_memory
        self.shape = (
            n if self.index is None else len(self.index),
            g if self.cols is None else len(self.cols),
        )

    def rows(self, index: np.ndarray) -> sp.csr_matrix:
        index = np.asarray(index, dtype=np.int64)
        X = self.source.rows(index if self.index is None else self.index[index])
        if self.cols is not None:
            X = select_columns(sp.csr_matrix(X), self.cols)
        return X


def _gather_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + l)`` for every start and length."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(starts - first, lengths)


class H5adRows(RowSource):
    """Rows of a matrix stored in an HDF5 file (``.h5ad``), read on demand with h5py.

    Reads CSR groups as anndata writes them (``data``, ``indices``, ``indptr`` and a
    ``shape`` attribute) and dense 2-D datasets. Only ``indptr`` (one integer per row) is
    held in memory; every call to :meth:`rows` reads the requested rows and nothing else,
    grouping them into runs of consecutive rows (two rows whose stored values are less
    than ``merge_nnz`` values apart go in the same run) and reading each run with one
    request per array. The file is opened read-only and never written.

    Parameters
    ----------
    store
        A path, an open ``h5py.File`` (with ``key``), an ``h5py`` group or dataset, or the
        ``X`` of an AnnData opened with ``backed="r"``.
    key
        Path of the matrix inside the file: ``"X"`` or e.g. ``"layers/counts"``.
    merge_nnz
        See above.

    CSC matrices cannot be read by rows without reading every column: they raise
    ``ValueError``; rewrite the file with a CSR matrix (``adata.X = adata.X.tocsr()``).
    """

    def __init__(self, store, key: str = "X", *, merge_nnz: int = 8192):
        import h5py

        self._file = None
        if hasattr(store, "group") and hasattr(store, "format"):  # anndata backed dataset
            store = store.group
        if isinstance(store, str | bytes) or hasattr(store, "__fspath__"):
            self._file = store = h5py.File(store, "r")
        if isinstance(store, h5py.File):
            if key not in store:
                raise KeyError(f"No matrix {key!r} in {store.filename}.")
            store = store[key]
        self.merge_nnz = int(merge_nnz)
        self.node = store
        if isinstance(store, h5py.Dataset):
            if store.ndim != 2:
                raise ValueError(f"{store.name} is not a 2-D matrix (shape {store.shape}).")
            self.dense = True
            self.shape = (int(store.shape[0]), int(store.shape[1]))
            return
        self.dense = False
        attrs = dict(store.attrs)
        enc = attrs.get("encoding-type", attrs.get("h5sparse_format", ""))
        enc = enc.decode() if isinstance(enc, bytes) else str(enc)
        if "csc" in enc:
            raise ValueError(
                f"{store.name} is stored as CSC (by columns): its rows cannot be read without "
                "reading every column. Rewrite it as CSR, e.g. adata.X = adata.X.tocsr()."
            )
        if not all(k in store for k in ("data", "indices", "indptr")):
            raise ValueError(f"{store.name} is not a CSR matrix (needs data, indices, indptr).")
        shape: Any = attrs.get("shape", attrs.get("h5sparse_shape"))
        self.shape = (int(shape[0]), int(shape[1]))
        self._data, self._indices = store["data"], store["indices"]
        self.indptr = np.asarray(store["indptr"][()], dtype=np.int64)
        if len(self.indptr) != self.shape[0] + 1:
            raise ValueError(f"{store.name}: indptr does not match the shape {self.shape}.")

    def close(self) -> None:
        """Close the file if this object opened it."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def rows(self, index: np.ndarray) -> sp.csr_matrix:
        index = np.asarray(index, dtype=np.int64)
        g = self.shape[1]
        if len(index) == 0:
            return sp.csr_matrix((0, g), dtype=np.float32)
        if self.dense:
            return self._dense_rows(index)
        starts, ends = self.indptr[index], self.indptr[index + 1]
        lengths = ends - starts
        cut = np.flatnonzero(starts[1:] - ends[:-1] > self.merge_nnz) + 1
        data, indices = [], []
        for a, b in zip(np.r_[0, cut], np.r_[cut, len(index)], strict=True):
            lo, hi = int(starts[a]), int(ends[b - 1])
            d, ix = self._data[lo:hi], self._indices[lo:hi]
            if hi - lo != lengths[a:b].sum():  # rows with gaps: keep only the requested ones
                take = _gather_ranges(starts[a:b] - lo, lengths[a:b])
                d, ix = d[take], ix[take]
            data.append(d)
            indices.append(ix)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        return sp.csr_matrix(
            (np.concatenate(data), np.concatenate(indices), indptr), shape=(len(index), g)
        )

    def _dense_rows(self, index: np.ndarray) -> sp.csr_matrix:
        cut = np.flatnonzero(np.diff(index) > 8) + 1
        parts = []
        for a, b in zip(np.r_[0, cut], np.r_[cut, len(index)], strict=True):
            lo = int(index[a])
            block = self.node[lo : int(index[b - 1]) + 1]
            parts.append(sp.csr_matrix(block[index[a:b] - lo]))
        return sp.vstack(parts, format="csr")
