"""Scanpy-style wrapper around :class:`bcnmf_sc.BcNMF`."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scanpy import logging as logg

from .._engine import BcNMF
from .._engine import sparse as _sparse
from ._consensus import consensus_model, restart_seeds
from ._enrichment import compare_usage, score_weights, target_score

__all__ = ["bcnmf", "bcnmf_transform"]

_LOSSES = ("kl", "frobenius")
# BcNMF parameters that tl.bcnmf sets from its own keyword arguments
_ENGINE_SET = (
    "n_components alpha loss batch_size max_epochs tol n_init random_state device progress"
).split()


# ----------------------------------------------------------------------- helpers
def _get_matrix(adata: AnnData, layer: str | None):
    if layer is None:
        X = adata.X
        if X is None:
            raise ValueError("adata.X is empty; pass layer= to use a layer with counts.")
        return X
    if not isinstance(layer, str) or layer not in adata.layers:
        raise KeyError(f"Layer {layer!r} not found; available layers: {list(adata.layers)}.")
    return adata.layers[layer]


def _as_csr_or_dense(X):
    """CSR for sparse input, a plain ndarray otherwise (views, matrices and backed data).

    Backed data normally streams from disk (:func:`_backed_source`); only what cannot
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


def _check_values(X, loss: str, what: str) -> None:
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


def _backed_source(adata: AnnData, layer: str | None) -> _sparse.RowSource | None:
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
    return _sparse.H5adRows(X)


def _check_source(src: _sparse.RowSource, loss: str, what: str) -> None:
    """:func:`_check_values` over a row source, one block at a time (one pass)."""
    step = min(_sparse.WINDOW_ROWS, max(1, 2_000_000 // max(src.shape[1], 1)))
    for _, block in src.blocks(step):
        _check_values(block, loss, what)


def _resolve_mask(adata: AnnData, mask_var) -> tuple[np.ndarray, str | None]:
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
    if values is None:
        return []
    if isinstance(values, str | bool | np.bool_) or not isinstance(values, Sequence | np.ndarray):
        return [values]
    return list(values)


def _resolve_groups(
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


def _plain(v: Any):
    """Numpy scalars -> Python scalars so params stay h5ad-friendly."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def _store_results(
    adata: AnnData,
    key_added: str,
    model: BcNMF,
    usage: np.ndarray,
    *,
    genes: np.ndarray,
    mask_name: str | None,
    is_tg: np.ndarray,
    is_bg: np.ndarray,
    tg: list,
    bg: list,
    background_key: str,
    loss: str,
    layer: str | None,
    batch_size: int | None,
    max_epochs: int | None,
    tol: float,
    n_init: int,
    consensus: bool,
    seeds: list,
    random_state,
    device,
    engine_kwargs: Mapping[str, Any],
    info: Mapping[str, Any] | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> None:
    """Write a fitted model's results into ``adata`` (the one writer of ``tl.bcnmf``).

    ``usage`` holds every cell's usages (target, background and projected cells);
    ``extra_params`` are added to ``params`` (the torchrun entry point records
    ``n_processes``). Also used by :mod:`bcnmf_sc.distributed`.
    """
    K = int(usage.shape[1])
    n_genes = int(genes.sum())
    other = ~(is_tg | is_bg)
    loadings = np.zeros((adata.n_vars, K))
    loadings[genes] = model.components_.T
    topics = [f"topic_{i + 1}" for i in range(K)]
    enrichment = compare_usage(usage, is_tg, is_bg, topics, names=("target", "background"))
    score = target_score(usage, score_weights(enrichment, topics))
    if info is not None:  # per-topic stability, in the table's (sorted) order
        stability = pd.Series(info["stability"], index=topics)
        enrichment["stability"] = stability.reindex(enrichment.index).to_numpy()

    engine = model.get_params()
    params = {
        "background_key": background_key,
        "background": [_plain(v) for v in bg],
        "target": [_plain(v) for v in tg],
        "n_topics": K,
        "alpha": float(model.alpha),
        "loss": loss,
        "layer": layer,
        "mask_var": mask_name,
        "n_genes_used": n_genes,
        "batch_size": batch_size,
        "max_epochs": max_epochs,
        "tol": float(tol),
        "n_init": int(n_init),
        "consensus": bool(consensus),
        "seeds": seeds if consensus else None,
        "random_state": random_state,
        "device": str(device),
        "device_used": str(getattr(model, "device_", device)),
        "solver": getattr(model, "solver_", engine.get("solver")),
        "init": engine.get("init"),
        "alpha_scaling": engine.get("alpha_scaling"),
        "dtype": engine.get("dtype"),
        "n_target": int(is_tg.sum()),
        "n_background": int(is_bg.sum()),
        "n_projected": int(other.sum()),
        **{f"engine_{k}": v for k, v in engine_kwargs.items()},
        **(extra_params or {}),
    }
    params = {k: _plain(v) for k, v in params.items() if v is not None}
    history = {k: np.asarray(v, dtype=float) for k, v in model.history_.items()}

    adata.obsm[f"X_{key_added}"] = usage
    adata.varm[f"{key_added}_loadings"] = loadings
    adata.obs[f"{key_added}_target_score"] = score
    adata.uns[key_added] = {
        "params": params,
        "history": history,
        "topics": topics,
        "objective": float(model.objective_),
        "n_epochs": int(model.n_epochs_),
        "converged": bool(model.converged_),
        "enrichment": enrichment,
    }
    if info is not None:
        adata.uns[key_added]["consensus"] = {
            "stability": np.asarray(info["stability"], dtype=float),
            "n_kept": np.asarray(info["kept"].sum(1), dtype=int),
            "objectives": np.asarray(info["objectives"], dtype=float),
            "reference": int(info["reference"]),
        }


# ------------------------------------------------------------------------ bcnmf
def bcnmf(
    adata: AnnData,
    background_key: str,
    background: str | Sequence[str] | None = None,
    *,
    target: str | Sequence[str] | None = None,
    n_topics: int = 10,
    alpha: float | None = None,
    loss: Literal["kl", "frobenius"] = "kl",
    layer: str | None = None,
    mask_var: str | np.ndarray | None = None,
    batch_size: int | None = None,
    max_epochs: int | None = None,
    tol: float = 1e-5,
    n_init: int = 1,
    consensus: bool = False,
    random_state: int | None = 0,
    device: str = "auto",
    engine_kwargs: Mapping[str, Any] | None = None,
    key_added: str = "bcnmf",
    copy: bool = False,
    progress: bool = True,
) -> AnnData | None:
    """Background-contrastive NMF: gene programs of target cells absent from a background.

    Fits :class:`bcnmf_sc.BcNMF` to the target cells against the background cells, then
    projects all other cells (those in neither group) onto the fitted topics.

    Parameters
    ----------
    adata
        Annotated data matrix (cells x genes). Counts for ``loss="kl"``; integer or float,
        sparse (CSR/CSC) or dense; views are accepted. An AnnData opened with
        ``sc.read_h5ad(path, backed="r")`` is streamed from disk in blocks of rows (``.X``
        stored as CSR; the file is never written): memory then grows with the numbers of
        cells and genes times ``n_topics``, not with the data, and the result is the same
        as from the data in memory.
    background_key
        Column of ``adata.obs`` that defines the groups.
    background
        Category (or list of categories) of ``background_key`` that is the background.
        Not needed for a boolean column, where ``True`` marks target cells and ``False``
        background cells.
    target
        Category or categories that are the target; default all categories that are not
        background. Cells in neither group (and cells with a missing value) are not used
        for fitting; their usages are computed by projection onto the fitted topics.
    n_topics
        Number of topics K.
    alpha
        Strength of the contrast (0 is plain NMF of the target). ``None`` uses the
        engine's default; the value used is recorded in ``.uns[key_added]["params"]``.
    loss
        ``"kl"`` (Poisson; raw counts) or ``"frobenius"`` (non-negative continuous data,
        e.g. log1p-normalised counts).
    layer
        Layer to use instead of ``.X``.
    mask_var
        Genes to use: a boolean ``.var`` column name or a boolean mask. Default
        ``"highly_variable"`` when that column exists, else all genes. Genes left out get
        zero loadings.
    batch_size, max_epochs, tol, n_init, random_state, device
        Passed to :class:`bcnmf_sc.BcNMF` (``n_init`` restarts, the one with the lowest
        objective is kept), unless ``consensus=True``.
    consensus
        Combine the ``n_init`` restarts (at least 2) into consensus topics instead of
        keeping the best one: restart ``r`` is fitted with seed ``r`` drawn from
        ``random_state``; topics are matched across restarts by cosine similarity of
        their loadings, matched topics that disagree with the consensus are dropped, each
        consensus topic is the gene-wise median of the rest, and all usages are refitted
        to the consensus topics (see :func:`bcnmf_sc.tl._consensus.consensus_components`).
        The enrichment table then gains a ``stability`` column.
    engine_kwargs
        Further :class:`bcnmf_sc.BcNMF` parameters (e.g. ``solver``, ``init``,
        ``w_floor``); recorded in ``params`` as ``engine_<name>``.
    key_added
        Results are stored under this key (see Returns).
    copy
        Return a modified copy instead of writing to ``adata``.
    progress
        Show a progress bar over epochs.

    Returns
    -------
    ``None``, or a new AnnData when ``copy=True``. Sets

    ``.obsm[f"X_{key_added}"]`` : ndarray (n_obs, n_topics)
        Topic usages of every cell.
    ``.varm[f"{key_added}_loadings"]`` : ndarray (n_vars, n_topics)
        Gene loadings; each topic's loadings over the used genes sum to one.
    ``.obs[f"{key_added}_target_score"]`` : float
        Each cell's estimated share of usage that the background does not have:
        ``sum_k p_k * excess_k``, its topic proportions weighted by the ``excess`` column
        of the enrichment table (``1 - mean_background / mean_target`` for topics used
        significantly more by target cells, else 0; 0 everywhere when there are none).
        This is the representation to cluster or threshold to find the target cells that
        carry target-only programs: with many topics, one program is often split over
        several topics, some of them mixed with a cell type and only mildly enriched,
        and the score adds the parts up in proportion to how target-specific they are.
    ``.uns[key_added]`` : dict
        ``params`` (everything needed to reproduce the fit; parameters that were
        ``None`` are left out), ``history`` (per-epoch objective), ``topics`` (names),
        ``objective``, ``n_epochs``, ``converged`` and ``enrichment``: a DataFrame with
        one row per topic comparing target and background cells (see
        :func:`bcnmf_sc.tl.topic_enrichment`), most target-enriched topic (largest
        ``log2fc``) first. With ``consensus=True`` the table has a ``stability`` column
        (per topic, the mean cosine similarity of the loadings matched to it in every
        pair of restarts; 1: every seed finds the same topic, well below 1: a seed
        artefact), ``objective`` is that of the consensus topics, ``history``,
        ``n_epochs`` and ``converged`` are those of the restart with the lowest
        objective, and ``consensus`` holds ``stability``, ``n_kept`` (restarts whose
        topic joined each consensus topic), ``objectives`` (of the restarts) and
        ``reference`` (the restart the matching started from). Without consensus the
        table has no ``stability`` column.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate()
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=5)  # doctest: +SKIP
    >>> adata.uns["bcnmf"]["enrichment"].head()  # doctest: +SKIP
    """
    # ---- validate everything before touching adata
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added must be a non-empty string, got {key_added!r}.")
    if loss not in _LOSSES:
        raise ValueError(f"Unknown loss {loss!r}: use one of {_LOSSES}.")
    if alpha is not None and (
        isinstance(alpha, bool)
        or not isinstance(alpha, numbers.Real)
        or not math.isfinite(alpha)
        or alpha < 0
    ):
        raise ValueError(f"alpha must be a finite number >= 0 or None, got {alpha!r}.")
    if isinstance(n_topics, bool) or not isinstance(n_topics, numbers.Integral) or n_topics < 1:
        raise ValueError(f"n_topics must be an integer >= 1, got {n_topics!r}.")
    if consensus and (
        isinstance(n_init, bool) or not isinstance(n_init, numbers.Integral) or n_init < 2
    ):
        raise ValueError(
            f"consensus=True combines restarts: n_init must be an integer >= 2, got {n_init!r}."
        )
    engine_kwargs = dict(engine_kwargs or {})
    clash = sorted(set(engine_kwargs) & set(_ENGINE_SET))
    if clash:
        raise ValueError(f"engine_kwargs cannot set {clash}; use the keyword arguments.")
    is_tg, is_bg, tg, bg = _resolve_groups(adata, background_key, background, target)
    src = _backed_source(adata, layer)
    X = _get_matrix(adata, layer) if src is None else None
    genes, mask_name = _resolve_mask(adata, mask_var)
    n_genes = int(genes.sum())
    if n_topics > min(int(is_tg.sum()), n_genes):
        raise ValueError(
            f"n_topics={n_topics} is too large for {int(is_tg.sum())} target cells x "
            f"{n_genes} genes; use at most {min(int(is_tg.sum()), n_genes)}."
        )
    if src is None:
        X = _as_csr_or_dense(X)
        X = X[:, genes] if not genes.all() else X
        _check_values(X, loss, "The data" if layer is None else f"Layer {layer!r}")
    else:  # backed: rows stream from the file, never all at once
        src = src.subset(cols=genes) if not genes.all() else src
        _check_source(src, loss, "The data")

    kwargs: dict[str, Any] = {} if alpha is None else {"alpha": float(alpha)}
    seeds = restart_seeds(random_state, int(n_init)) if consensus else [random_state]
    model = BcNMF(
        n_components=int(n_topics),
        loss=loss,
        batch_size=batch_size,
        max_epochs=max_epochs,
        tol=tol,
        n_init=1 if consensus else n_init,
        random_state=seeds[0],
        device=device,
        progress=progress,
        **kwargs,
        **engine_kwargs,
    )
    start = logg.info(
        f"computing bcNMF with {n_topics} topics on {int(is_tg.sum())} target vs "
        f"{int(is_bg.sum())} background cells x {n_genes} genes"
    )
    runs = []
    for seed in seeds:  # one fit, or the restarts of a consensus
        run = model if not runs else BcNMF(**{**model.get_params(), "random_state": seed})
        if src is None:
            run.fit(X[is_tg], X[is_bg])
        else:
            run.fit_source(src.subset(rows=is_tg), src.subset(rows=is_bg))
        runs.append(run)
    info = None
    if consensus:
        data = (
            (X[is_tg], X[is_bg])
            if src is None
            else (src.subset(rows=is_tg), src.subset(rows=is_bg))
        )
        model, info = consensus_model(runs, *data)
        logg.info(
            f"    consensus of {len(runs)} restarts: topic stability "
            f"{info['stability'].min():.3f} to {info['stability'].max():.3f}"
        )
    other = ~(is_tg | is_bg)

    # ---- assemble results, then write
    K = int(n_topics)
    usage = np.zeros((adata.n_obs, K))
    usage[is_tg] = model.usage_target_
    usage[is_bg] = model.usage_background_
    if other.any():
        usage[other] = (
            model.transform(X[other])
            if src is None
            else model.transform_source(src.subset(rows=other))
        )
    if copy:
        adata = adata.copy()
    _store_results(
        adata,
        key_added,
        model,
        usage,
        genes=genes,
        mask_name=mask_name,
        is_tg=is_tg,
        is_bg=is_bg,
        tg=tg,
        bg=bg,
        background_key=background_key,
        loss=loss,
        layer=layer,
        batch_size=batch_size,
        max_epochs=max_epochs,
        tol=tol,
        n_init=n_init,
        consensus=consensus,
        seeds=seeds,
        random_state=random_state,
        device=device,
        engine_kwargs=engine_kwargs,
        info=info,
    )
    logg.info(
        "    finished",
        time=start,
        deep=(
            f"added\n    .obsm['X_{key_added}'], topic usages\n"
            f"    .varm['{key_added}_loadings'], gene loadings\n"
            f"    .obs['{key_added}_target_score'], share of usage specific to the target\n"
            f"    .uns['{key_added}'], params, history and enrichment"
        ),
    )
    return adata if copy else None


# -------------------------------------------------------------------- transform
def bcnmf_transform(
    adata_query: AnnData,
    adata_reference: AnnData,
    *,
    key: str = "bcnmf",
    layer: str | None = None,
) -> None:
    """Topic usages of new cells from the loadings fitted on a reference.

    Genes are matched by name (``var_names``); loadings of the reference genes found in
    the query are renormalised so each topic sums to one over them.

    Parameters
    ----------
    adata_query
        New cells (same kind of values as the reference was fitted on). A backed query
        (``backed="r"``, ``.X`` stored as CSR) is streamed from disk in blocks of rows.
    adata_reference
        Data on which :func:`bcnmf_sc.tl.bcnmf` was run.
    key
        The ``key_added`` used for the reference fit; the usages are written to
        ``adata_query.obsm[f"X_{key}"]`` and the target score (weighted by the reference's
        enrichment table, as in :func:`bcnmf_sc.tl.bcnmf`) to
        ``adata_query.obs[f"{key}_target_score"]``.
    layer
        Layer of the query to use instead of ``.X``.

    Raises
    ------
    ValueError
        If fewer than half of the reference's loaded genes are in the query.
    """
    lkey = f"{key}_loadings"
    if lkey not in adata_reference.varm or key not in adata_reference.uns:
        raise KeyError(f"No bcNMF result under key {key!r} in the reference; run tl.bcnmf first.")
    params = adata_reference.uns[key].get("params", {})
    loss = str(params.get("loss", "kl"))
    L = np.asarray(adata_reference.varm[lkey], dtype=float)
    loaded = L.sum(1) > 0
    ref_genes = adata_reference.var_names[loaded]
    pos = adata_query.var_names.get_indexer(ref_genes)
    found = pos >= 0
    frac = found.mean() if len(found) else 0.0
    if frac < 0.5:
        raise ValueError(
            f"Only {found.sum()} of the reference's {len(ref_genes)} loaded genes "
            f"({frac:.0%}) are in the query's var_names; at least 50% must match."
        )
    W = L[loaded][found].T  # K x matched genes
    W = W / np.maximum(W.sum(1, keepdims=True), 1e-12)
    model = BcNMF.from_components(W, loss=loss)
    src = _backed_source(adata_query, layer)
    if src is None:
        X = _as_csr_or_dense(_get_matrix(adata_query, layer))[:, pos[found]]
        _check_values(X, loss, "The query data")
        usage = model.transform(X)
    else:  # backed query: stream it
        src = src.subset(cols=pos[found])
        _check_source(src, loss, "The query data")
        usage = model.transform_source(src)
    topics = list(adata_reference.uns[key].get("topics", []))
    enr = adata_reference.uns[key].get("enrichment")
    weights = np.zeros(W.shape[0])
    if len(topics) == W.shape[0]:
        weights = score_weights(enr, topics)
    adata_query.obsm[f"X_{key}"] = usage
    adata_query.obs[f"{key}_target_score"] = target_score(usage, weights)
    logg.info(
        f"projected {adata_query.n_obs} cells onto {W.shape[0]} topics "
        f"using {int(found.sum())} of {len(ref_genes)} genes"
    )
