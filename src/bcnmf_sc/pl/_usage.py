"""Topic usage by cell groups and on an embedding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from matplotlib import rcParams
from matplotlib.ticker import MaxNLocator

from bcnmf_sc import get
from bcnmf_sc._docs import doc_adata, doc_key, doc_params, doc_save, doc_show, doc_topics
from bcnmf_sc._utils import usage_proportions

from . import _utils as u

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap

__all__ = ["topics", "usage"]

_KINDS = ("violin", "matrix")


def _usages(adata: AnnData, key: str, idx: list[int], proportions: bool) -> np.ndarray:
    W = np.asarray(adata.obsm[f"X_{key}"], dtype=float)
    if proportions:
        W = usage_proportions(W)
    return W[:, idx]


def _value_label(proportions: bool) -> str:
    return "usage proportion" if proportions else "usage"


@doc_params(
    adata=doc_adata,
    key=doc_key,
    topics=doc_topics,
    show=doc_show,
    save=doc_save("bcnmf_usage_{kind}_{groupby}"),
)
def usage(
    adata: AnnData,
    *,
    key: str = "bcnmf",
    groupby: str,
    topics: str | int | Sequence[str | int] | None = None,
    kind: Literal["violin", "matrix"] = "violin",
    proportions: bool = True,
    ncols: int = 4,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
    **kwds,
):
    """Usage of the topics in the groups of any ``.obs`` column (condition, cell type...).

    Reads the usages ``.obsm[f"X_{key}"]`` written by :func:`bcnmf_sc.tl.bcnmf`; the
    user's AnnData is never modified (scanpy's plots are drawn from a throwaway AnnData
    holding the usages).

    Parameters
    ----------
    {adata}
    {key}
    groupby
        Column of ``adata.obs`` to group cells by (its colours in
        ``adata.uns[f"{groupby}_colors"]`` are used when present).
    {topics}
    kind
        ``"violin"``: one panel per topic, titled with the topic name, with a violin per
        group (:func:`scanpy.pl.violin`); ``"matrix"``: mean usage of each topic (columns)
        in each group (rows) (:func:`scanpy.pl.matrixplot`; pass
        ``standard_scale="var"`` to scale each topic to 0..1).
    proportions
        ``True`` (default): per-cell usage proportions (usage divided by the cell's total
        usage, what the enrichment statistics compare); ``False``: raw usages, which
        mostly follow each cell's sequencing depth.
    ncols
        ``"violin"``: panels per row.
    ax
        Axes to draw into: for ``"violin"`` only when a single topic is drawn.
    {show}
    {save}
    return_fig
        Return the Figure (``"violin"``) or the unrendered :class:`scanpy.pl.MatrixPlot`
        (``"matrix"``; ``save`` is then ignored, as in scanpy).
    **kwds
        Passed to :func:`scanpy.pl.violin` (default ``stripplot=False`` and group labels
        turned upright, ``rotation=90``, so that they never overlap) or
        :func:`scanpy.pl.matrixplot`.

    Returns
    -------
    With ``return_fig=True`` the Figure (or the MatrixPlot). Otherwise, if the figure is
    not shown: ``"violin"``, a list of Axes, one per topic in the order asked;
    ``"matrix"``, scanpy's dict of Axes (``"mainplot_ax"``...). ``None`` when shown.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate(n_target=250, n_background=250, n_genes=200, n_markers=20)
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=4)  # doctest: +SKIP

    Usage of each topic in target and background cells:

    .. plot::

        bc.pl.usage(adata, groupby="condition")

    Mean usage of each topic in each cell type:

    .. plot::

        bc.pl.usage(adata, groupby="cell_type", kind="matrix")
    """
    u.check_result(adata, key, need=("uns", "obsm"))
    u.check_choice(kind, "kind", _KINDS)
    if not isinstance(groupby, str) or groupby not in adata.obs.columns:
        raise KeyError(
            f"groupby {groupby!r} is not a column of adata.obs; "
            f"available: {list(adata.obs.columns)}."
        )
    idx, names = u.select_topics(adata, key, topics)
    W = _usages(adata, key, idx, proportions)
    col = adata.obs[groupby]
    if not isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype("category")
    cats = col.cat.remove_unused_categories().cat.categories
    # a throwaway AnnData: scanpy may write to it (colours...), never to the user's data
    tmp = AnnData(
        X=W.astype(np.float32),
        obs=pd.DataFrame(
            {groupby: pd.Categorical(col.to_numpy(), categories=cats)},
            index=adata.obs_names.copy(),
        ),
        var=pd.DataFrame(index=pd.Index(names)),
    )
    colors = adata.uns.get(f"{groupby}_colors")
    if colors is not None and len(colors) == len(col.cat.categories):
        keep = [i for i, c in enumerate(col.cat.categories) if c in set(cats)]
        tmp.uns[f"{groupby}_colors"] = [colors[i] for i in keep]
    label = _value_label(proportions)
    writekey = f"bcnmf_usage_{kind}_{groupby}"

    if kind == "matrix":
        title = kwds.pop("colorbar_title", "mean\nproportion" if proportions else "mean\nusage")
        if ax is None:  # scanpy sizes by the topics alone: too narrow for the colour bar
            kwds.setdefault("figsize", (0.5 * len(names) + 3.0, 0.3 * len(cats) + 1.6))
        mp = sc.pl.matrixplot(
            tmp, names, groupby, use_raw=False, ax=ax, show=False, return_fig=True, **kwds
        )
        mp.legend(title=title)
        if return_fig:
            return mp
        axes = mp.get_axes()
        if "color_legend_ax" in axes:  # scanpy's narrow colour bar: three ticks fit
            axes["color_legend_ax"].xaxis.set_major_locator(MaxNLocator(3))
        return u.finish(axes["mainplot_ax"].figure, axes, writekey, show=show, save=save)

    if ax is not None:
        if len(idx) != 1:
            raise ValueError(
                f"ax= takes a single topic, but {len(idx)} topics were asked for; pass "
                "topics=<one topic> or leave ax=None for a grid of panels."
            )
        fig, axes = ax.figure, [ax]
    else:
        w = max(2.5, 0.5 * len(cats) + 1.5)
        fig, axes = u.panel_grid(len(idx), ncols, (w, rcParams["figure.figsize"][1] * 0.8))
    kwds.setdefault("stripplot", False)
    kwds.setdefault("rotation", 90)
    for a, name in zip(axes, names, strict=True):
        sc.pl.violin(tmp, name, groupby=groupby, use_raw=False, ax=a, show=False, **kwds)
        a.set_title(name)
        a.set_ylabel(label)
    return u.finish(fig, axes, writekey, show=show, save=save, return_fig=return_fig)


def _panels(adata: AnnData, key: str, topics, color) -> list[str]:
    """What :func:`topics` draws: the ``color`` entries, then the topics asked for."""
    if color is None:
        color = []
    elif isinstance(color, str):
        color = [color]
    if not all(isinstance(c, str) for c in color):
        raise TypeError(f"color must be .obs column names or topic names, got {color!r}.")
    all_names = u.select_topics(adata, key, "all")[1]
    clash = [c for c in all_names if c in adata.obs.columns]
    if clash:
        raise ValueError(
            f".obs columns {clash} have the names of topics; rename them to draw topics."
        )
    unknown = [c for c in color if c not in adata.obs.columns and c not in all_names]
    if unknown:
        raise KeyError(
            f"color {unknown} are neither .obs columns nor topics; .obs columns: "
            f"{list(adata.obs.columns)}, topics: {all_names}."
        )
    names_topic = any(c in all_names for c in color)
    extra = [] if topics is None and names_topic else u.select_topics(adata, key, topics)[1]
    return list(dict.fromkeys([*color, *extra]))


def _numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _basis_key(adata: AnnData, basis: str) -> str:
    if not isinstance(basis, str) or not basis:
        raise TypeError(f"basis must be a non-empty string, got {basis!r}.")
    for cand in (basis, f"X_{basis}"):
        if cand in adata.obsm:
            return cand
    raise KeyError(
        f"Basis {basis!r} not found: neither .obsm[{basis!r}] nor .obsm['X_{basis}'] exists; "
        f"available .obsm keys: {list(adata.obsm.keys())}. Compute the embedding first "
        "(e.g. sc.tl.umap(adata))."
    )


@doc_params(topics=doc_topics, show=doc_show, save=doc_save("bcnmf_topics_{basis}"))
def topics(
    adata: AnnData,
    *,
    basis: str = "umap",
    key: str = "bcnmf",
    topics: str | int | Sequence[str | int] | None = None,
    color: str | Sequence[str] | None = None,
    proportions: bool = True,
    ncols: int = 4,
    cmap: str | Colormap | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
    **kwds,
):
    """The embedding coloured by the usage of each topic, one panel per topic.

    Draws :func:`scanpy.pl.embedding` with the usage proportions of ``.obsm[f"X_{key}"]``
    written by :func:`bcnmf_sc.tl.bcnmf` as colours, next to any ``.obs`` columns, without
    copying them into ``adata.obs`` (the user's AnnData is never modified; scanpy draws
    from :func:`bcnmf_sc.get.usage_adata`, which any scanpy plot accepts as well).

    Parameters
    ----------
    adata
        Data on which :func:`bcnmf_sc.tl.bcnmf` was run, with an embedding in ``.obsm``.
    basis
        The embedding: ``"umap"`` or ``"X_umap"`` (any ``.obsm`` key, with or without the
        ``X_`` prefix); its first two columns are drawn.
    key
        The ``key_added`` of the bcNMF run.
    {topics}
    color
        ``.obs`` columns (e.g. ``"leiden"``) and topic names to draw, in this order,
        before the topics of ``topics``. When ``color`` names a topic and ``topics`` is
        not given, only the topics named in ``color`` are drawn.
    proportions
        ``True`` (default): colour by per-cell usage proportions (comparable between
        cells); ``False``: by raw usages, which mostly follow sequencing depth.
    ncols
        Panels per row.
    cmap
        Colormap (default scanpy's).
    ax
        Axes to draw into, only when a single topic is drawn.
    {show}
    {save}
    return_fig
        Return the Figure.
    **kwds
        Passed to :func:`scanpy.pl.embedding` (e.g. ``vmax="p99"``, ``size``, ``frameon``;
        ``wspace`` defaults to 0.5 when a categorical ``.obs`` column is drawn, leaving
        room for its legend).

    Returns
    -------
    The Figure if ``return_fig``; else, when the figure is not shown, a list of Axes (the
    panels, titled with the topic names, in the order asked; colorbars excluded).
    ``None`` when shown.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate(n_target=250, n_background=250, n_genes=200, n_markers=20)
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=4)  # doctest: +SKIP
    >>> import scanpy as sc
    >>> sc.pp.normalize_total(adata); sc.pp.log1p(adata)  # doctest: +SKIP
    >>> sc.pp.pca(adata); sc.pp.neighbors(adata); sc.tl.umap(adata)  # doctest: +SKIP

    The UMAP coloured by the usage of each topic:

    .. plot::

        bc.pl.topics(adata, basis="umap")

    The cell types next to two topics:

    .. plot::

        bc.pl.topics(adata, color=["cell_type", "topic_1", "topic_2"])
    """
    u.check_result(adata, key, need=("uns", "obsm"))
    bkey = _basis_key(adata, basis)
    coords = np.asarray(adata.obsm[bkey])
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise ValueError(f".obsm[{bkey!r}] needs at least 2 columns, got shape {coords.shape}.")
    u.check_positive_int(ncols, "ncols")
    panels = _panels(adata, key, topics, color)
    if ax is not None and len(panels) != 1:
        raise ValueError(
            f"ax= takes a single panel, but {len(panels)} were asked for ({panels}); pass "
            "topics=<one topic> or leave ax=None for a grid of panels."
        )
    name = bkey[2:] if bkey.startswith("X_") and len(bkey) > 2 else bkey
    tmp = get.usage_adata(adata, key=key, proportions=proportions)
    tmp.obsm = {f"X_{name}": coords[:, :2].astype(float)}
    if cmap is not None:
        kwds["color_map"] = cmap
    if any(c in adata.obs.columns and not _numeric(adata.obs[c]) for c in panels):
        kwds.setdefault("wspace", 0.5)  # room for a categorical legend beside its panel
    out = sc.pl.embedding(
        tmp, name, color=panels, ncols=ncols, ax=ax, show=False, save=None, use_raw=False, **kwds
    )
    axes = list(out) if isinstance(out, list | tuple | np.ndarray) else [out]
    fig = axes[0].figure
    return u.finish(fig, axes, f"bcnmf_topics_{name}", show=show, save=save, return_fig=return_fig)
