"""The one way AnnData comes in: groups, genes, the matrix as a row source, one check.

:func:`prepare_inputs` turns an AnnData and the arguments that name the groups, the
layer and the genes into :class:`Inputs`: the masks of the two groups (and of the cells
in neither), the genes used, and the matrix as a
:class:`~bcnmf_sc._engine.rows.RowSource` restricted to those genes: an in-memory CSR
matrix, or the rows of a backed ``.X`` streamed from disk. The values are checked once,
here (the rules are in :mod:`bcnmf_sc.tl._checks`), with messages that name the loss;
nothing is written to the AnnData.
:func:`bcnmf_sc.tl.bcnmf`, :func:`bcnmf_sc.tl.bcnmf_sweep`,
:func:`bcnmf_sc.tl.bcnmf_transform` and the torchrun entry point all come in this way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scanpy import logging as logg

from bcnmf_sc._engine._validation import LOSSES
from bcnmf_sc._engine.rows import H5adRows, InMemoryRows, RowSource
from bcnmf_sc._engine.sparse import as_csr
from bcnmf_sc._engine.threads import N_JOBS_MESSAGE, valid_n_jobs

from ._checks import (
    check_counts_sample,
    check_dtype,
    check_source,
    check_values,
)

__all__ = [
    "LOSSES",
    "Inputs",
    "matrix_source",
    "prepare_inputs",
    "resolve_groups",
    "resolve_mask",
]


@dataclass
class Inputs:
    """Cells, genes and data of a fit, as :func:`prepare_inputs` found them."""

    is_target: np.ndarray  # bool over adata.obs
    is_background: np.ndarray
    target: list  # the categories of each group
    background: list
    genes: np.ndarray  # bool over adata.var
    mask_name: str | None  # what to record as mask_var
    source: RowSource  # adata's matrix, the genes used only

    @property
    def other(self) -> np.ndarray:
        """Cells in neither group (projected onto the fitted topics)."""
        return ~(self.is_target | self.is_background)

    @property
    def n_genes(self) -> int:
        return int(self.genes.sum())

    @property
    def n_target(self) -> int:
        return int(self.is_target.sum())

    def rows(self, mask: np.ndarray) -> RowSource:
        """The cells ``mask`` (bool over obs, or increasing indices) as a row source."""
        return self.source.subset(rows=mask)


def scanpy_n_jobs(n_jobs: int | None) -> int | None:
    """``n_jobs`` of a tl function: given, else ``scanpy.settings.n_jobs``.

    ``None`` reads ``sc.settings.n_jobs`` (scanpy's default is 1; ``-1`` means every
    CPU), as scanpy's own functions do; a setting the engine does not accept (0, or
    joblib's ``-2``) leaves the choice to the engine (``BcNMF(n_jobs=None)``).
    """
    if not valid_n_jobs(n_jobs):
        raise ValueError(N_JOBS_MESSAGE.format(value=n_jobs))
    if n_jobs is not None:
        return int(n_jobs)
    import scanpy as sc

    setting = getattr(sc.settings, "n_jobs", None)
    return int(setting) if setting is not None and valid_n_jobs(setting) else None


def get_matrix(adata: AnnData, layer: str | None) -> Any:
    """``adata.X`` or a layer (an error naming the layers when it is not there)."""
    if layer is None:
        X = adata.X
        if X is None:
            raise ValueError("adata.X is empty; pass layer= to use a layer with counts.")
        return X
    if not isinstance(layer, str) or layer not in adata.layers:
        raise KeyError(f"Layer {layer!r} not found; available layers: {list(adata.layers)}.")
    return adata.layers[layer]


def as_csr_or_dense(X: Any) -> sp.csr_matrix | np.ndarray:
    """CSR for sparse input, a plain ndarray otherwise (views, matrices and backed data).

    Backed data normally streams from disk (:func:`backed_source`); only what cannot
    (a CSC matrix) is read into memory here. The file is only read, never written.
    """
    if hasattr(X, "to_memory"):  # anndata's backed CSR/CSC datasets
        X = X.to_memory()
    elif type(X).__module__.startswith("h5py"):  # a backed dense matrix
        X = X[()]
    if sp.issparse(X):
        return sp.csr_matrix(X)
    if hasattr(X, "toarray") and not isinstance(X, np.ndarray):
        X = X.toarray()
    return np.asarray(X)


def backed_source(adata: AnnData, layer: str | None) -> RowSource | None:
    """Rows of the on-disk ``.X`` of a backed AnnData, or ``None`` (not backed, a layer).

    Nothing is read here. In backed mode only ``.X`` stays on disk (anndata reads layers
    into memory). A CSC matrix cannot be read by rows: it is read into memory as before.
    """
    if not adata.isbacked:
        return None
    if adata.is_view:  # anndata cannot add results to a backed view without a new file
        raise ValueError(
            "Results cannot be written into a view of a backed AnnData (anndata would have "
            "to copy it to a new file). Pass the backed AnnData itself and choose cells with "
            "background= / target=, or load the view with .to_memory()."
        )
    if layer is not None:
        return None
    X = adata.X  # anndata's backed dataset: a handle, nothing is read
    if getattr(X, "format", None) == "csc":
        logg.warning(
            "the backed .X is stored as CSC (by genes) and is read into memory; write it as "
            "CSR (adata.X = adata.X.tocsr()) to stream it from disk"
        )
        return None
    if getattr(X, "format", None) != "csr" and not type(X).__module__.startswith("h5py"):
        return None
    return H5adRows(X)


def matrix_source(
    adata: AnnData,
    layer: str | None,
    cols: np.ndarray | None,
    loss: str,
    what: str,
    *,
    backed: RowSource | None = None,
    check_counts: bool = False,
) -> RowSource:
    """The matrix (``cols``: bool mask or indices of the genes to keep) as a checked source.

    A backed ``.X`` streams from disk and is checked block by block; anything else is
    read into memory as CSR and checked in one go. With ``check_counts`` (and
    ``loss="kl"``) a sample of the values must be counts (:func:`check_counts_sample`),
    checked first.
    """
    src = backed if backed is not None else backed_source(adata, layer)
    if src is not None:
        src = src.subset(cols=cols) if cols is not None else src
        if check_counts and loss == "kl":
            check_counts_sample(src, what)
        check_source(src, loss, what)
        return src
    M = get_matrix(adata, layer)
    check_dtype(M, what)
    X = as_csr_or_dense(M)
    X = X[:, cols] if cols is not None else X
    check_values(X, loss, what)
    out = InMemoryRows(as_csr(X))
    if check_counts and loss == "kl":
        check_counts_sample(out, what)
    return out


def resolve_mask(adata: AnnData, mask_var) -> tuple[np.ndarray, str | None]:
    """Boolean gene mask and the name to record (``None`` for all genes or a custom mask)."""
    if mask_var is None:
        if "highly_variable" in adata.var.columns:
            mask_var = "highly_variable"
        else:
            return np.ones(adata.n_vars, dtype=bool), None
    if isinstance(mask_var, str):
        if mask_var not in adata.var.columns:
            raise KeyError(
                f"mask_var {mask_var!r} is not a column of adata.var; "
                f"available: {list(adata.var.columns)}."
            )
        col = adata.var[mask_var]
        if not pd.api.types.is_bool_dtype(col):
            raise ValueError(f"adata.var[{mask_var!r}] must be boolean, got dtype {col.dtype}.")
        n_na = int(col.isna().sum())
        if n_na:
            raise ValueError(
                f"adata.var[{mask_var!r}] has {n_na} missing values (NA); say whether those "
                f"genes are used, e.g. adata.var[{mask_var!r}] = "
                f"adata.var[{mask_var!r}].fillna(False)."
            )
        mask, name = col.to_numpy(dtype=bool), mask_var
    else:
        mask = np.asarray(mask_var)
        if mask.dtype != bool or mask.shape != (adata.n_vars,):
            raise ValueError(
                f"mask_var must be a var column name or a boolean array of length "
                f"{adata.n_vars}, got {mask.dtype} array of shape {mask.shape}."
            )
        name = "custom"
    if not mask.any():
        raise ValueError("mask_var selects no genes.")
    return mask, name


def _as_list(values) -> list:
    """One label, or a list-like of labels (list, tuple, set, ndarray, Index, Series)."""
    if values is None:
        return []
    if isinstance(values, pd.Series | pd.Index | pd.Categorical):
        return list(pd.unique(np.asarray(values, dtype=object)))
    if isinstance(values, np.ndarray):
        return list(values.ravel())
    if isinstance(values, str | bool | np.bool_) or not isinstance(
        values, Sequence | set | frozenset
    ):
        return [values]
    return list(values)


def resolve_groups(
    adata: AnnData, background_key: str, background, target
) -> tuple[np.ndarray, np.ndarray, list, list]:
    """Masks of target and background cells and the category lists."""
    if not isinstance(background_key, str) or background_key not in adata.obs.columns:
        raise KeyError(
            f"background_key {background_key!r} is not a column of adata.obs; "
            f"available columns: {list(adata.obs.columns)}."
        )
    col = adata.obs[background_key]
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = list(col.cat.categories)  # declared categories; empty ones fail below
    else:
        present = list(pd.unique(col.dropna()))
    if pd.api.types.is_bool_dtype(col) and background is None and target is None:
        background, target = [False], [True]
    if background is None:
        raise ValueError(
            f"Pass background= (one or more of {present}) to say which cells of "
            f"{background_key!r} are the background."
        )
    bg = _as_list(background)
    tg = _as_list(target)
    for name, vals in (("background", bg), ("target", tg)):
        unknown = [v for v in vals if v not in present]
        if unknown:
            raise ValueError(
                f"Unknown {name} categories {unknown} in adata.obs[{background_key!r}]; "
                f"available: {present}."
            )
    if target is None:
        observed = set(pd.unique(col.dropna()))
        tg = [c for c in present if c not in bg and c in observed]
    overlap = [v for v in tg if v in bg]
    if overlap:
        raise ValueError(f"Categories {overlap} are both target and background.")
    is_bg = col.isin(bg).to_numpy(dtype=bool)
    is_tg = col.isin(tg).to_numpy(dtype=bool)
    if not is_tg.any():
        raise ValueError(f"The target group ({tg}) has no cells.")
    if not is_bg.any():
        raise ValueError(f"The background group ({bg}) has no cells.")
    return is_tg, is_bg, tg, bg


def prepare_inputs(
    adata: AnnData,
    background_key: str,
    background: Any,
    target: Any = None,
    *,
    layer: str | None = None,
    mask_var: str | np.ndarray | None = None,
    loss: str = "kl",
    check: Any = None,
    check_counts: bool = True,
) -> Inputs:
    """Groups, genes and the checked matrix of a fit (see the module docstring).

    ``check(n_target, n_genes)``, when given, runs after the groups and genes are known
    and before any value is read (e.g. to reject too many topics without a pass over
    the data). ``check_counts``: with ``loss="kl"``, a sample of the values must be
    counts (:func:`check_counts_sample`).
    """
    is_tg, is_bg, tg, bg = resolve_groups(adata, background_key, background, target)
    backed = backed_source(adata, layer)  # a backed view fails here, before anything is read
    what = "The data" if layer is None else f"Layer {layer!r}"
    check_dtype(adata.X if backed is not None else get_matrix(adata, layer), what)
    genes, mask_name = resolve_mask(adata, mask_var)
    if check is not None:
        check(int(is_tg.sum()), int(genes.sum()))
    cols = None if genes.all() else genes
    src = matrix_source(
        adata, layer, cols, loss, what, backed=backed, check_counts=check_counts
    )  # fmt: skip
    return Inputs(is_tg, is_bg, tg, bg, genes, mask_name, src)
