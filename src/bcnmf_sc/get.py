"""Getters: tidy tables (and an AnnData of the usages) from stored bcNMF results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from ._docs import doc_fitted, doc_key, doc_params
from ._engine.programs import excess_profiles, mean_profile, top_gene_members
from ._utils import resolve_topics, topic_names, usage_proportions

__all__ = ["program_genes", "specificity_score", "top_genes", "usage", "usage_adata"]

_RANK_BY = ("score", "loading")


def specificity_score(loadings: np.ndarray) -> np.ndarray:
    """The specificity score of every gene in every topic (genes x topics).

    ``score[g, k] = L[g, k] / (mean_j L[g, j] + 1 / G)``: the gene's loading in topic ``k``
    relative to its mean loading over the ``K`` topics, with ``1 / G`` (the mean loading
    of a gene in any topic: each topic's loadings sum to one over the ``G`` genes used)
    added to that mean. A gene loaded alike by every topic (a housekeeping gene: high
    everywhere) scores about 1 however large its loading; a well-loaded gene exclusive to
    topic ``k`` scores close to ``K``; the ``1 / G`` term keeps genes with tiny loadings
    (noise, or genes hardly used by any topic) near 0 instead of letting a tiny loading
    in one topic count as specific. Genes with no loading anywhere score 0.
    """
    L = np.asarray(loadings, dtype=float)
    used = L.sum(1) > 0
    n_used = int(used.sum())
    if n_used == 0:
        return np.zeros_like(L)
    return L / (L.mean(1, keepdims=True) + 1.0 / n_used)


@doc_params(doc_fitted=doc_fitted, doc_key=doc_key)
def top_genes(
    adata: AnnData,
    *,
    key: str = "bcnmf",
    n_genes: int = 20,
    topics: str | int | Sequence[str | int] | None = None,
    rank_by: Literal["score", "loading"] = "score",
) -> pd.DataFrame:
    """Top genes of each topic: by specificity score (default) or by loading.

    Ranking by raw loading lists the most highly expressed genes first (ferritin,
    ribosomal proteins, MALAT1 ... in almost every topic), because a topic's loadings are
    a share of its counts. The default ranks by the specificity score of
    :func:`specificity_score` instead, which discounts genes loaded alike by all topics
    (as cNMF ranks genes by a z-scored score for this reason).

    Parameters
    ----------
    {doc_fitted}
    {doc_key}
    n_genes
        Genes per topic (genes with zero loading are never listed).
    topics
        Topic names (``"topic_1"``...) or 0-based positions; default all topics.
    rank_by
        ``"score"``: by the specificity score, ``L[g, k] / (mean_j L[g, j] + 1 / G)``
        (see :func:`specificity_score`); ``"loading"``: by the loading itself.

    Returns
    -------
    Tidy DataFrame with columns ``topic``, ``rank`` (1 = first by ``rank_by``), ``gene``,
    ``score`` (the specificity score), ``loading`` and ``specificity``: the gene's
    loading in the topic divided by its sum over all topics (1 means the gene loads on
    this topic only). Ties are broken by loading.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate()
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=5)  # doctest: +SKIP
    >>> bc.get.top_genes(adata, n_genes=10)  # doctest: +SKIP
    >>> bc.get.top_genes(adata, n_genes=10, rank_by="loading")  # doctest: +SKIP
    """
    lkey = f"{key}_loadings"
    if lkey not in adata.varm:
        raise KeyError(f"No loadings under .varm[{lkey!r}]; run bcnmf_sc.tl.bcnmf first.")
    if isinstance(n_genes, bool) or not isinstance(n_genes, int | np.integer) or n_genes < 1:
        raise ValueError(f"n_genes must be a positive integer, got {n_genes!r}.")
    if rank_by not in _RANK_BY:
        raise ValueError(f"Unknown rank_by {rank_by!r}: use one of {_RANK_BY}.")
    L = np.asarray(adata.varm[lkey], dtype=float)
    names = topic_names(adata, key, L.shape[1])
    idx = resolve_topics(topics, names)
    total = L.sum(1)
    spec = np.divide(L, total[:, None], out=np.zeros_like(L), where=total[:, None] > 0)
    score = specificity_score(L)
    genes = np.asarray(adata.var_names)
    rows = []
    for k in idx:
        primary = score[:, k] if rank_by == "score" else L[:, k]
        order = np.lexsort((-L[:, k], -primary))  # primary key last; ties by loading
        order = order[L[order, k] > 0][:n_genes]
        rows.append(
            pd.DataFrame(
                {
                    "topic": names[k],
                    "rank": np.arange(1, len(order) + 1),
                    "gene": genes[order],
                    "score": score[order, k],
                    "loading": L[order, k],
                    "specificity": spec[order, k],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


@doc_params(doc_fitted=doc_fitted, doc_key=doc_key)
def program_genes(
    adata: AnnData,
    *,
    key: str = "bcnmf",
    n_genes: int = 20,
    programs: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Top genes of each program of ``.uns[key]["programs"]`` (:func:`bcnmf_sc.tl.bcnmf`).

    A program's genes are ranked by their ``excess``: the gene's share of the program's
    gene profile (``.varm[f"{key}_programs"]``, its topics merged, the profile its score
    measures) minus its share of the fit's mean profile (all cells' predicted counts);
    for each topic, the same difference is the measure by which the topics were grouped
    (see ``.uns[key]["programs"]`` in :func:`bcnmf_sc.tl.bcnmf`).

    Parameters
    ----------
    {doc_fitted}
    {doc_key}
    n_genes
        Genes per program (genes the program does not load above the mean are never
        listed).
    programs
        Program names (``"program_1"``...); default all.

    Returns
    -------
    Tidy DataFrame with columns ``program``, ``rank`` (1 = largest excess), ``gene``,
    ``excess`` and ``in_topics``: of the program's topics, how many have the gene among
    the 50 genes they load most above the mean (the genes the grouping compared), so
    that genes every topic of the program shares stand out from one topic's own.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate(n_programs=2)
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=6)  # doctest: +SKIP
    >>> bc.get.program_genes(adata, n_genes=10)  # doctest: +SKIP
    """
    uns = adata.uns.get(key, {})
    table = uns.get("programs") if hasattr(uns, "get") else None
    if not isinstance(table, pd.DataFrame):
        raise KeyError(
            f"No programs table under .uns[{key!r}]['programs']; run bcnmf_sc.tl.bcnmf "
            "(version with programs) first."
        )
    if isinstance(n_genes, bool) or not isinstance(n_genes, int | np.integer) or n_genes < 1:
        raise ValueError(f"n_genes must be a positive integer, got {n_genes!r}.")
    wanted = (
        list(table.index)
        if programs is None
        else [programs]
        if isinstance(programs, str)
        else list(programs)
    )
    unknown = [p for p in wanted if p not in table.index]
    if unknown:
        raise KeyError(f"Unknown programs {unknown}; the fit has {list(table.index)}.")
    L = np.asarray(adata.varm[f"{key}_loadings"], dtype=float)
    names = topic_names(adata, key, L.shape[1])
    usage = np.asarray(adata.obsm[f"X_{key}"], dtype=float)
    excess = excess_profiles(L.T, usage)
    mean = mean_profile(L.T, usage)
    pkey = f"{key}_programs"
    if pkey not in adata.varm:
        raise KeyError(
            f"No program profiles under .varm[{pkey!r}]; rerun bcnmf_sc.tl.bcnmf (this "
            "result predates them)."
        )
    profiles = pd.DataFrame(np.asarray(adata.varm[pkey]), columns=list(table.index))
    member = top_gene_members(excess).astype(int)  # the genes the grouping compared
    genes = np.asarray(adata.var_names)
    columns = ["program", "rank", "gene", "excess", "in_topics"]
    rows = []
    for prog in wanted:
        idx = resolve_topics(str(table.loc[prog, "topics"]).split(","), names)
        value = profiles[prog].to_numpy(dtype=float) - mean
        order = np.argsort(-value, kind="stable")
        order = order[value[order] > 0][:n_genes]
        rows.append(
            pd.DataFrame(
                {
                    "program": prog,
                    "rank": np.arange(1, len(order) + 1),
                    "gene": genes[order],
                    "excess": value[order],
                    "in_topics": member[idx][:, order].sum(0),
                },
                columns=columns,
            )
        )
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.concat(rows, ignore_index=True)


def _usage_matrix(adata: AnnData, key: str, proportions: bool) -> tuple[np.ndarray, list[str]]:
    okey = f"X_{key}"
    if not isinstance(adata, AnnData):
        raise TypeError(f"Expected an AnnData, got {type(adata).__name__}.")
    if okey not in adata.obsm:
        raise KeyError(
            f"No usages under .obsm[{okey!r}]; run bcnmf_sc.tl.bcnmf(..., key_added={key!r}) "
            "or bcnmf_sc.tl.bcnmf_transform first."
        )
    if not isinstance(proportions, bool | np.bool_):
        raise TypeError(f"proportions must be True or False, got {proportions!r}.")
    W = np.asarray(adata.obsm[okey], dtype=float)
    if proportions:
        W = usage_proportions(W)
    return W, topic_names(adata, key, W.shape[1])


def usage(
    adata: AnnData,
    *,
    key: str = "bcnmf",
    proportions: bool = True,
    topics: str | int | Sequence[str | int] | None = None,
) -> pd.DataFrame:
    """Topic usages of every cell as a DataFrame (cells x topics, named).

    Parameters
    ----------
    adata
        Data on which :func:`bcnmf_sc.tl.bcnmf` or :func:`~bcnmf_sc.tl.bcnmf_transform`
        was run.
    key
        The ``key_added`` of that run.
    proportions
        ``True``: each cell's usage divided by its total usage (rows sum to one; what the
        enrichment statistics compare, as raw usage mostly follows sequencing depth);
        ``False``: the raw usages of ``.obsm[f"X_{key}"]``.
    topics
        Topic names or 0-based positions; default all topics (proportions are always of
        all topics).

    Returns
    -------
    DataFrame with index ``adata.obs_names`` and one column per topic (``topic_1``...).

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate()
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=5)  # doctest: +SKIP
    >>> props = bc.get.usage(adata)  # doctest: +SKIP
    >>> props.groupby(adata.obs["cell_type"]).mean()  # doctest: +SKIP
    """
    W, names = _usage_matrix(adata, key, proportions)
    idx = resolve_topics(topics, names)
    return pd.DataFrame(
        W[:, idx], index=adata.obs_names.copy(), columns=pd.Index([names[i] for i in idx])
    )


def usage_adata(
    adata: AnnData,
    *,
    key: str = "bcnmf",
    proportions: bool = True,
) -> AnnData:
    """An AnnData whose variables are the topics, for scanpy's plots and tools.

    As ``decoupler``'s ``get_obsm``: ``.X`` holds the usage proportions (or usages) of
    :func:`usage`, ``.var_names`` the topic names, and ``.obs``, ``.obsm`` and the
    ``*_colors`` entries of ``.uns`` are copied from ``adata``, so every scanpy plot can
    draw topics next to obs columns, on any embedding. The new object shares nothing
    with ``adata`` that scanpy could write to.

    Parameters
    ----------
    adata
        Data on which :func:`bcnmf_sc.tl.bcnmf` or :func:`~bcnmf_sc.tl.bcnmf_transform`
        was run.
    key
        The ``key_added`` of that run.
    proportions
        As in :func:`usage` (default ``True``).

    Returns
    -------
    AnnData (cells x topics).

    Examples
    --------
    Colour any embedding by topics and obs columns, in one line:

    >>> import scanpy as sc
    >>> import bcnmf_sc as bc
    >>> sc.pl.umap(bc.get.usage_adata(adata), color=["cell_type", "topic_1"])  # doctest: +SKIP

    Mean topic proportion per group, or the per-group tests of scanpy:

    >>> topics = bc.get.usage_adata(adata)  # doctest: +SKIP
    >>> sc.pl.matrixplot(topics, topics.var_names, groupby="cell_type")  # doctest: +SKIP
    >>> sc.pl.dotplot(topics, topics.var_names, groupby="cell_type")  # doctest: +SKIP
    """
    W, names = _usage_matrix(adata, key, proportions)
    uns = {
        k: list(v)
        for k, v in adata.uns.items()
        if isinstance(k, str) and k.endswith("_colors") and not isinstance(v, Mapping)
    }
    return AnnData(
        X=W.astype(np.float32),
        obs=adata.obs.copy(),
        var=pd.DataFrame(index=pd.Index(names)),
        obsm={k: np.array(v, copy=True) for k, v in adata.obsm.items() if _is_matrix(v)},
        uns=uns,
    )


def _is_matrix(value) -> bool:
    """Array-like ``.obsm`` entries (DataFrames and sparse entries are left out)."""
    return isinstance(value, np.ndarray)
