"""The value rules of AnnData input: keys, dtypes, values, counts, gene names.

Used by :mod:`bcnmf_sc.tl._inputs` (the one way AnnData comes in), by
:func:`bcnmf_sc.tl.bcnmf_transform` and by the torchrun entry point. Each rule raises an
error that says what was wrong and how to fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from bcnmf_sc._engine.problem import block_rows
from bcnmf_sc._engine.rows import RowSource

__all__ = [
    "check_counts_sample",
    "check_dtype",
    "check_key",
    "check_source",
    "check_unique_var_names",
    "check_values",
]


def check_key(key_added: Any, name: str = "key_added") -> None:
    """A key results can be stored under and read back from an ``.h5ad`` file."""
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"{name} must be a non-empty string, got {key_added!r}.")
    if "/" in key_added:
        raise ValueError(
            f"{name}={key_added!r} contains '/', which is not allowed in h5ad keys (the file "
            "could not be read back); use e.g. " + repr(key_added.replace("/", "_")) + "."
        )


def check_dtype(X: Any, what: str) -> None:
    """The matrix's dtype, from its handle (nothing is read): float16 is refused."""
    dtype = getattr(X, "dtype", None)
    if dtype is not None and np.dtype(dtype) == np.float16:
        raise TypeError(
            f"{what} has dtype float16, which scipy.sparse (and so bcnmf-sc) cannot use; "
            "convert it first, e.g. adata.X = adata.X.astype(np.float32)."
        )


def check_values(X: Any, loss: str, what: str) -> None:
    """Real, finite, non-negative values, or an error that says what to use instead."""
    data = X.data if sp.issparse(X) else X
    if data.size == 0:
        return
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise ValueError(f"{what} must hold real numbers, got dtype {data.dtype}.")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{what} contains NaN or infinite values; remove or impute them first.")
    lo = data.min()
    if lo < 0:
        hint = (
            "loss='kl' expects raw counts (e.g. layer='counts')"
            if loss == "kl"
            else "loss='frobenius' needs non-negative data such as log1p-normalised counts "
            "(not scaled or centred data)"
        )
        raise ValueError(
            f"{what} contains negative values (min {lo:.3g}); NMF needs non-negative data: "
            f"{hint}. Use raw counts with loss='kl', or non-negative normalised data with "
            "loss='frobenius'."
        )


#: how many stored values the count check samples, and from how many row blocks
COUNT_SAMPLE = 100_000
COUNT_BLOCKS = 4


def _is_integer(values: np.ndarray) -> np.ndarray:
    """Whether each value is an integer up to float error (3.0000001 is 3).

    The tolerance, ``max(1e-3, 1e-6 * |x|)``, is far above the rounding of a few float32
    operations on counts and far below the fractions of normalised or log1p values.
    """
    x = np.asarray(values, dtype=np.float64)
    return np.abs(x - np.rint(x)) <= np.maximum(1e-3, 1e-6 * np.abs(x))


def check_counts_sample(
    src: RowSource, what: str, *, n_values: int = COUNT_SAMPLE, n_blocks: int = COUNT_BLOCKS
) -> None:
    """Raise unless a sample of the stored values are counts (integers up to float error).

    Reads at most about ``n_values`` stored values, from ``n_blocks`` blocks of
    consecutive rows spread over the matrix (a backed file is read by blocks of rows,
    never in full).
    """
    n = src.shape[0]
    if n == 0 or src.shape[1] == 0:
        return
    per_block, step = max(1, n_values // n_blocks), 256
    starts = np.unique(np.linspace(0, n, n_blocks, endpoint=False).astype(int))
    ends = np.r_[starts[1:], n]
    parts = []
    for start, end in zip(starts, ends, strict=True):
        got = 0
        for lo in range(int(start), int(end), step):
            block = src.rows(np.arange(lo, min(lo + step, int(end))))
            parts.append(block.data)
            got += block.nnz
            if got >= per_block:
                break
    values = np.concatenate(parts) if parts else np.zeros(0)
    values = values[values != 0]
    if values.size == 0:
        return
    bad = ~_is_integer(values)
    if not bad.any():
        return
    example = float(values[bad][0])
    tiny = float(np.abs(values).max()) < 1e-3
    hint = (
        " The values are all tiny (largest sampled "
        f"{float(np.abs(values).max()):.3g}): raw counts rescaled by a small factor?"
        if tiny
        else ""
    )
    raise ValueError(
        f"{what} does not look like raw counts: {int(bad.sum())} of {values.size} sampled "
        f"values are not integers (e.g. {example:.6g}), as log1p-normalised or scaled data "
        "are. loss='kl' models counts: pass the layer that holds the raw counts (e.g. "
        "layer=\"counts\"), or use loss='frobenius' for normalised data. To fit these values "
        f"with loss='kl' anyway, pass check_counts=False.{hint}"
    )


def check_unique_var_names(adata: AnnData, what: str) -> None:
    """Genes are matched by name: duplicated ``var_names`` would be ambiguous."""
    names = adata.var_names
    if not names.is_unique:
        dup = list(names[names.duplicated()].unique()[:5])
        raise ValueError(
            f"The var_names of {what} are not unique (e.g. {dup}); genes are matched by "
            "name. Call adata.var_names_make_unique() first."
        )


def check_source(src: RowSource, loss: str, what: str) -> None:
    """:func:`check_values` over a row source, one block at a time (one pass)."""
    for _, block in src.blocks(block_rows(src.shape[1])):
        check_values(block, loss, what)
