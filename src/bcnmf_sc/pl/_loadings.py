"""Gene loadings of the topics: ranking, heatmap and dotplot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData
from matplotlib import rcParams

from bcnmf_sc import get
from bcnmf_sc._docs import doc_adata, doc_key, doc_params, doc_save, doc_show, doc_topics

from . import _utils as u

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

__all__ = ["gene_loadings"]

_KINDS = ("ranking", "heatmap", "dotplot")


@doc_params(
    adata=doc_adata,
    key=doc_key,
    topics=doc_topics,
    show=doc_show,
    save=doc_save("bcnmf_gene_loadings_{kind}", what=" the figure"),
)
def gene_loadings(
    adata: AnnData,
    *,
    key: str = "bcnmf",
    topics: str | int | Sequence[str | int] | None = None,
    n_genes: int = 20,
    rank_by: Literal["score", "loading"] = "score",
    kind: Literal["ranking", "heatmap", "dotplot"] = "ranking",
    groupby: str | None = None,
    layer: str | None = None,
    use_raw: bool | None = None,
    standard_scale: Literal["var", "group"] | None = None,
    cmap: str | Colormap | None = None,
    ncols: int = 4,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
    **kwds,
):
    """Top genes of each topic: which genes drive it.

    Reads ``.varm[f"{key}_loadings"]`` and ``.uns[key]`` written by
    :func:`bcnmf_sc.tl.bcnmf`; the genes shown are those of :func:`bcnmf_sc.get.top_genes`
    (by default ranked by specificity score, so genes that every topic loads, such as
    ferritin or ribosomal genes, do not lead every topic). Without ``topics`` the
    target-enriched topics (the ``enriched`` column of ``.uns[key]["enrichment"]``) come
    first, in the table's order, then the others in topic order; enriched topics are
    marked ``"(enriched)"`` in the panel titles (``"ranking"``) or row labels
    (``"heatmap"``).

    Parameters
    ----------
    {adata}
    {key}
    {topics}
    n_genes
        Top genes per topic (genes with zero loading are never shown).
    rank_by
        ``"score"``: rank genes by the specificity score of
        :func:`bcnmf_sc.get.specificity_score` (the loading relative to the gene's mean
        loading over topics); ``"loading"``: by the loading itself.
    kind
        ``"ranking"``: one panel per topic (titled with the topic name) with its top genes
        placed at their specificity score (``rank_by="score"``) or loading, the first at
        the top (as :func:`scanpy.pl.pca_loadings` for principal components).
        ``"heatmap"``: loadings of the top genes (columns) in each topic (rows); genes are
        grouped, and labelled on top, by the topic they are top genes of (a gene that is a
        top gene of several topics is shown once, under the topic where it ranks highest
        by ``rank_by``). ``"dotplot"``: expression of each topic's top genes in the groups
        of ``groupby`` (:func:`scanpy.pl.dotplot`, genes grouped by topic).
    groupby
        ``kind="dotplot"``: the ``.obs`` column to group cells by; default the
        ``background_key`` of the fit (the condition).
    layer, use_raw
        ``kind="dotplot"``: where the expression comes from, as in
        :func:`scanpy.pl.dotplot` (``use_raw=None`` uses ``.raw`` when there is one and no
        ``layer`` is given).
    standard_scale
        ``"heatmap"``: scale each gene (``"var"``) or each topic (``"group"``) to a maximum
        of 1. ``"dotplot"``: passed to :func:`scanpy.pl.dotplot`.
    cmap
        Colormap of the heatmap and dotplot (default ``rcParams["image.cmap"]`` for the
        heatmap, scanpy's default for the dotplot).
    ncols
        ``kind="ranking"``: panels per row.
    ax
        Axes to draw into: for ``"ranking"`` only when a single topic is drawn.
    {show}
    {save}
    return_fig
        Return the Figure (``"ranking"``, ``"heatmap"``) or the unrendered
        :class:`scanpy.pl.DotPlot` (``"dotplot"``; ``save`` is then ignored, as in scanpy).
    **kwds
        ``"ranking"``: passed to :meth:`~matplotlib.axes.Axes.scatter`; ``"heatmap"``: to
        :meth:`~matplotlib.axes.Axes.imshow`; ``"dotplot"``: to :func:`scanpy.pl.dotplot`.

    Returns
    -------
    With ``return_fig=True`` the Figure (or the DotPlot, see ``return_fig``). Otherwise, if
    the figure is not shown: ``"ranking"``, a list of Axes, one per topic in the order
    asked; ``"heatmap"``, the Axes; ``"dotplot"``, scanpy's dict of Axes
    (``"mainplot_ax"``, ``"gene_group_ax"``...). ``None`` when shown.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate(n_target=250, n_background=250, n_genes=200, n_markers=20)
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=4)  # doctest: +SKIP

    The top genes of each topic at their loading:

    .. plot::

        bc.pl.gene_loadings(adata, n_genes=10)

    The loadings of the top genes, grouped by the topic they are top genes of:

    .. plot::

        bc.pl.gene_loadings(adata, kind="heatmap", n_genes=8)

    Their expression in target and background cells (the ``groupby`` default, the
    condition of the fit):

    .. plot::

        bc.pl.gene_loadings(adata, kind="dotplot", n_genes=5)
    """
    uns = u.check_result(adata, key, need=("uns", "varm"))
    u.check_choice(kind, "kind", _KINDS)
    u.check_positive_int(n_genes, "n_genes")
    if standard_scale not in ("var", "group", None):
        raise ValueError(f"standard_scale must be 'var', 'group' or None, got {standard_scale!r}.")
    idx, names = u.select_topics(adata, key, topics)
    enriched = u.enriched_topics(uns)
    if topics is None:  # target-enriched topics first, in the enrichment table's order
        first = [n for n in enriched if n in names]
        order = [names.index(n) for n in first] + [
            i for i, n in enumerate(names) if n not in set(first)
        ]
        idx, names = [idx[i] for i in order], [names[i] for i in order]
    top = get.top_genes(adata, key=key, n_genes=int(n_genes), topics=idx, rank_by=rank_by)
    labels = [f"{n} (enriched)" if n in set(enriched) else n for n in names]
    writekey = f"bcnmf_gene_loadings_{kind}"
    if kind == "ranking":
        colors = u.topic_colors(u.n_topics_of(adata, key))
        fig, axes = _ranking(top, idx, names, labels, colors, rank_by, ncols=ncols, ax=ax, **kwds)
        return u.finish(fig, axes, writekey, show=show, save=save, return_fig=return_fig)
    if kind == "heatmap":
        L = np.asarray(adata.varm[f"{key}_loadings"], dtype=float)
        fig, axes = _heatmap(
            adata, L, top, idx, names, labels, rank_by, standard_scale, cmap, ax, **kwds
        )
        return u.finish(fig, axes, writekey, show=show, save=save, return_fig=return_fig)
    return _dotplot(
        adata,
        uns,
        top,
        names,
        groupby=groupby,
        layer=layer,
        use_raw=use_raw,
        standard_scale=standard_scale,
        cmap=cmap,
        ax=ax,
        writekey=writekey,
        show=show,
        save=save,
        return_fig=return_fig,
        **kwds,
    )


# ---------------------------------------------------------------------- ranking
def _ranking(
    top, idx, names, labels, colors, rank_by, *, ncols, ax, **kwds
) -> tuple[Figure, list[Axes]]:
    n_max = int(top.groupby("topic", sort=False).size().max())
    if ax is not None:
        if len(idx) != 1:
            raise ValueError(
                f"ax= takes a single topic, but {len(idx)} topics were asked for; pass "
                "topics=<one topic> or leave ax=None for a grid of panels."
            )
        fig, axes = ax.figure, [ax]
    else:
        width = rcParams["figure.figsize"][0] * 0.75
        fig, axes = u.panel_grid(len(idx), ncols, (width, 0.9 + 0.2 * n_max))
    xlabel = "specificity score" if rank_by == "score" else "loading"
    for a, k, name, label in zip(axes, idx, names, labels, strict=True):
        sub = top[top["topic"] == name]
        y = np.arange(len(sub))
        color = kwds.get("color", colors[k])
        a.hlines(y, 0, sub[rank_by], color=color, alpha=0.5, lw=1.5)
        a.scatter(sub[rank_by], y, **{"color": color, "zorder": 3, **kwds})
        a.set_yticks(y, labels=list(sub["gene"]))
        a.set_ylim(max(len(sub), 1) - 0.5, -0.5)  # rank 1 at the top
        a.set_xlim(0, None)
        a.set_title(label, fontweight="bold" if label != name else "normal")
        a.set_xlabel(xlabel)
        a.grid(False)
    return fig, axes


# ---------------------------------------------------------------------- heatmap
def _grouped_genes(
    top: pd.DataFrame, names: list[str], rank_by: str = "loading"
) -> list[tuple[str, list[str]]]:
    """Each gene once, under the (asked) topic whose top genes it ranks highest in."""
    best = top.sort_values(rank_by, ascending=False, kind="stable").drop_duplicates("gene")
    home = dict(zip(best["gene"], best["topic"], strict=True))
    groups = []
    for name in names:
        sub = top[top["topic"] == name]
        groups.append((name, [g for g in sub["gene"] if home[g] == name]))
    return groups


def _heatmap(adata, L, top, idx, names, labels, rank_by, standard_scale, cmap, ax, **kwds):
    groups = _grouped_genes(top, names, rank_by)
    genes = [g for _, gs in groups for g in gs]
    pos = adata.var_names.get_indexer(genes)
    M = L[pos][:, idx].T  # topics x genes
    label = "loading"
    if standard_scale is not None:
        axis = 0 if standard_scale == "var" else 1
        mx = M.max(axis=axis, keepdims=True)
        M = np.divide(M, mx, out=np.zeros_like(M), where=mx > 0)
        label = f"loading / max per {'gene' if standard_scale == 'var' else 'topic'}"
    figsize = (max(4.0, 0.22 * len(genes) + 2.0), max(2.5, 0.35 * len(idx) + 2.0))
    fig, ax = u.single_ax(ax, figsize)
    im = ax.imshow(M, aspect="auto", interpolation="nearest", cmap=cmap, **kwds)
    ax.set_xticks(np.arange(len(genes)), labels=genes, rotation=90)
    ax.set_yticks(np.arange(len(names)), labels=labels)
    ax.set_ylabel("topic")
    ax.grid(False)
    # group brackets: separators between groups and the topic name on top of each group
    centers, labels, start = [], [], 0
    for name, gs in groups:
        if gs:
            centers.append(start + (len(gs) - 1) / 2)
            labels.append(name)
        start += len(gs)
        if 0 < start < len(genes):
            ax.axvline(start - 0.5, color="white", lw=1.5)
    top_axis = ax.secondary_xaxis("top")
    top_axis.set_xticks(centers, labels=labels)
    top_axis.tick_params(length=0)
    fig.colorbar(im, ax=ax, label=label, shrink=0.8, pad=0.02)
    return fig, ax


# ---------------------------------------------------------------------- dotplot
def _expression(adata: AnnData, genes: list[str], layer, use_raw):
    if use_raw is None:
        use_raw = layer is None and adata.raw is not None
    if use_raw:
        if layer is not None:
            raise ValueError("Pass either layer= or use_raw=True, not both.")
        if adata.raw is None:
            raise ValueError("use_raw=True but adata.raw is None.")
        names = adata.raw.var_names
        pos = names.get_indexer(genes)
        if (pos < 0).any():
            raise KeyError(f"Genes {list(np.asarray(genes)[pos < 0])} are not in adata.raw.")
        return adata.raw.X[:, pos]
    pos = adata.var_names.get_indexer(genes)
    if layer is None:
        if adata.X is None:
            raise ValueError("adata.X is empty; pass layer= or use_raw=True.")
        X = adata.X
    else:
        if layer not in adata.layers:
            raise KeyError(f"Layer {layer!r} not found; available layers: {list(adata.layers)}.")
        X = adata.layers[layer]
    return X[:, pos]


def _dotplot(
    adata,
    uns,
    top,
    names,
    *,
    groupby,
    layer,
    use_raw,
    standard_scale,
    cmap,
    ax,
    writekey,
    show,
    save,
    return_fig,
    **kwds,
):
    if groupby is None:
        groupby = uns.get("params", {}).get("background_key")
        if groupby is None:
            raise ValueError("The fit records no background_key; pass groupby=.")
    if groupby not in adata.obs.columns:
        raise KeyError(
            f"groupby {groupby!r} is not a column of adata.obs; "
            f"available: {list(adata.obs.columns)}."
        )
    var_names = {n: list(top.loc[top["topic"] == n, "gene"]) for n in names}
    var_names = {n: g for n, g in var_names.items() if g}
    genes = list(dict.fromkeys(g for gs in var_names.values() for g in gs))
    X = _expression(adata, genes, layer, use_raw)
    if hasattr(X, "to_memory"):
        X = X.to_memory()
    X = sp.csr_matrix(X) if sp.issparse(X) else np.asarray(X)
    col = adata.obs[groupby]
    if not isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype("category")
    # a throwaway AnnData: scanpy may write to it (colours...), never to the user's data
    tmp = AnnData(
        X=X.astype(np.float32),
        obs=pd.DataFrame({groupby: col.to_numpy()}, index=adata.obs_names.copy()),
        var=pd.DataFrame(index=pd.Index(genes)),
    )
    tmp.obs[groupby] = pd.Categorical(col.to_numpy(), categories=col.cat.categories)
    if cmap is not None:
        kwds["cmap"] = cmap
    dp = sc.pl.dotplot(
        tmp,
        var_names,
        groupby,
        use_raw=False,
        standard_scale=standard_scale,
        ax=ax,
        show=False,
        return_fig=True,
        **kwds,
    )
    if return_fig:
        return dp
    axes = dp.get_axes()
    fig = axes["mainplot_ax"].figure
    return u.finish(fig, axes, writekey, show=show, save=save)
