"""Which topics are target-enriched: effect size and significance per topic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from matplotlib import rcParams
from scanpy.plotting import palettes

from bcnmf_sc._docs import doc_adata, doc_key, doc_params, doc_save, doc_show

from . import _utils as u

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["topic_enrichment"]

_METRICS = {
    "log2fc": ("log2 fold change of usage proportion", 0.0),
    "auroc": ("AUROC (target vs background usage proportion)", 0.5),
}


def _stars(p: float) -> str:
    if not np.isfinite(p) or p >= 0.05:
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*"


@doc_params(adata=doc_adata, key=doc_key, show=doc_show, save=doc_save("bcnmf_topic_enrichment"))
def topic_enrichment(
    adata,
    *,
    key: str = "bcnmf",
    n_topics: int | None = None,
    metric: Literal["log2fc", "auroc"] = "log2fc",
    pval_cutoff: float | None = None,
    color: str | None = None,
    groupby: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
):
    """One glance at which topics are target-enriched.

    A lollipop per topic of the effect size from the ``enrichment`` table that
    :func:`bcnmf_sc.tl.bcnmf` stores in ``.uns[key]["enrichment"]`` (target vs background
    cells), in the table's order (most target-enriched topic at the top). Target-enriched
    topics are highlighted in colour, all others are grey; stars give the adjusted p-value
    (``*`` below 0.05, ``**`` below 0.01, ``***`` below 0.001).

    Parameters
    ----------
    {adata}
    {key}
    n_topics
        Show only the first ``n_topics`` rows of the table (the most target-enriched);
        default all (a number above the number of topics shows all).
    metric
        ``"log2fc"``: log2 ratio of the mean usage proportion in target vs background
        cells (0 = no change); ``"auroc"``: probability that a target cell uses the topic
        more than a background cell (0.5 = no change).
    pval_cutoff
        Which topics to highlight. ``None``: those of the table's ``enriched`` column
        (the call made by :func:`bcnmf_sc.tl.bcnmf`; for a table without that column,
        adjusted p-value below 0.05 and effect above the no-change line). A number: adjusted
        p-value (Benjamini-Hochberg) below it and effect above the no-change line.
    color
        Colour of target-enriched topics; default red from scanpy's palette (one
        comparison only).
    groupby
        Instead of target vs background, the per-group table that
        :func:`bcnmf_sc.tl.topic_enrichment` wrote for this ``obs`` column
        (``.uns[key][f"enrichment_{groupby}"]``): a heatmap of the effect, groups x topics
        (topics in the order of the target vs background table when there is one, most
        target-enriched first), in a diverging colour map centred on no change that runs
        to the 90th percentile of the table's deviations from no change (the few cells
        beyond it take the end colours, so one extreme cell does not wash out the rest),
        with stars on the cells that count as enriched (as above: the table's
        ``enriched`` column, or ``pval_cutoff``).
    ax
        Axes to draw into; default a new figure.
    {show}
    {save}
    return_fig
        Return the Figure instead of the Axes.

    Returns
    -------
    The Figure if ``return_fig``; else, when the figure is not shown, the Axes: its y
    tick labels are the topic names, top to bottom in the table's order, and
    ``ax.collections[1]`` holds one marker per topic in that order (with ``groupby``: y
    tick labels are the groups, x tick labels the topics, and ``ax.images[0]`` holds the
    groups x topics effects). ``None`` when shown.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate(n_target=250, n_background=250, n_genes=200, n_markers=20)
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=4)  # doctest: +SKIP

    Which topics are target-enriched (here one topic, in red):

    .. plot::

        bc.pl.topic_enrichment(adata)

    The effect as AUROC instead, for the three most target-enriched topics:

    .. plot::

        bc.pl.topic_enrichment(adata, metric="auroc", n_topics=3)

    Per cell type, each against the other cell types:

    .. plot::

        bc.tl.topic_enrichment(adata, "cell_type")
        bc.pl.topic_enrichment(adata, groupby="cell_type")
    """
    uns = u.check_result(adata, key, need=("uns",))
    u.check_choice(metric, "metric", tuple(_METRICS))
    u.check_positive_int(n_topics, "n_topics", allow_none=True)
    if pval_cutoff is not None and (
        isinstance(pval_cutoff, bool)
        or not isinstance(pval_cutoff, int | float)
        or not 0 < pval_cutoff <= 1
    ):
        raise ValueError(f"pval_cutoff must be a number in (0, 1], got {pval_cutoff!r}.")
    if groupby is not None:
        fig, ax = _by_group(uns, key, groupby, metric, n_topics, pval_cutoff, ax)
        return u.finish(
            fig, ax, "bcnmf_topic_enrichment", show=show, save=save, return_fig=return_fig
        )
    table = uns.get("enrichment")
    if not isinstance(table, pd.DataFrame):
        raise KeyError(
            f"No enrichment table in .uns[{key!r}]['enrichment']; run "
            f"bcnmf_sc.tl.bcnmf(..., key_added={key!r}) first."
        )
    df = table if n_topics is None else table.iloc[: int(n_topics)]
    xlabel, null = _METRICS[metric]
    effect = df[metric].to_numpy(dtype=float)
    padj = df["pval_adj"].to_numpy(dtype=float)
    enriched = _highlight(df, effect, padj, null, pval_cutoff)
    hi = color if color is not None else palettes.default_20[3]
    colors = [hi if e else "lightgray" for e in enriched]

    width = rcParams["figure.figsize"][0]
    fig, ax = u.single_ax(ax, (width, max(2.0, 0.35 * len(df) + 1.2)))
    y = np.arange(len(df))
    ax.hlines(y, null, effect, colors=colors, lw=2.5)
    ax.scatter(effect, y, c=colors, s=60, zorder=3, edgecolors="none")
    ax.axvline(null, color="black", lw=0.8)
    ax.set_yticks(y, labels=[str(t) for t in df.index])
    ax.set_ylim(len(df) - 0.5, -0.5)  # first row of the table at the top
    span = np.nanmax(np.abs(effect - null)) if len(effect) else 1.0
    span = span if np.isfinite(span) and span > 0 else 1.0
    pad = 0.06 * span
    for yi, (e, p) in enumerate(zip(effect, padj, strict=True)):
        s = _stars(p)
        if s:
            ax.text(
                e + (pad if e >= null else -pad),
                yi,
                s,
                va="center",
                ha="left" if e >= null else "right",
                fontsize="small",
            )
    ax.set_xlim(null - 1.25 * span, null + 1.25 * span)
    ax.set_xlabel(xlabel)
    ax.grid(False)
    params = uns.get("params", {}) if isinstance(uns.get("params", {}), Mapping) else {}
    tg = ", ".join(map(str, params.get("target", ["target"])))
    bg = ", ".join(map(str, params.get("background", ["background"])))
    ax.set_title(f"{tg} vs {bg}")
    return u.finish(fig, ax, "bcnmf_topic_enrichment", show=show, save=save, return_fig=return_fig)


def _highlight(df: pd.DataFrame, effect, padj, null: float, pval_cutoff) -> np.ndarray:
    """Which rows count as enriched: the table's call, or the cutoff rule."""
    if pval_cutoff is None and "enriched" in df.columns:
        return df["enriched"].to_numpy(dtype=bool)
    cutoff = 0.05 if pval_cutoff is None else pval_cutoff
    return (padj < cutoff) & (effect > null)


#: The heatmap's colours run to this quantile of |effect - no change| over the table.
ROBUST_QUANTILE = 0.9


def _robust_span(values: np.ndarray, null: float) -> tuple[float, bool]:
    """Half-width of the colour scale: ``ROBUST_QUANTILE`` of ``|values - null|``.

    One extreme cell (a topic a group hardly uses, with a log2FC of 10) would otherwise
    set the scale and wash out every real difference; cells beyond the scale are drawn
    in its end colours (the colour bar then has arrows). Also returns whether any cell is
    beyond it.
    """
    dev = np.abs(np.asarray(values, dtype=float) - null)
    dev = dev[np.isfinite(dev)]
    if dev.size == 0:
        return 1.0, False
    span = float(np.quantile(dev, ROBUST_QUANTILE))
    if not span > 0:
        span = float(dev.max()) if dev.max() > 0 else 1.0
    return span, bool((dev > span * (1 + 1e-9)).any())


def _by_group(uns, key: str, groupby: str, metric: str, n_topics, pval_cutoff, ax):
    """Heatmap groups x topics of the per-group table of ``tl.topic_enrichment``."""
    table = uns.get(f"enrichment_{groupby}")
    if not isinstance(table, pd.DataFrame):
        raise KeyError(
            f"No per-group enrichment for {groupby!r} in .uns[{key!r}]; run "
            f"bcnmf_sc.tl.topic_enrichment(adata, {groupby!r}, key={key!r}) first."
        )
    label, null = _METRICS[metric]
    flags = _highlight(
        table,
        table[metric].to_numpy(dtype=float),
        table["pval_adj"].to_numpy(dtype=float),
        null,
        pval_cutoff,
    )
    keyed = table.assign(
        _flag=flags, group=table["group"].astype(str), topic=table["topic"].astype(str)
    )
    topics = list(pd.unique(keyed["topic"]))
    main = uns.get("enrichment")
    if isinstance(main, pd.DataFrame):  # the target vs background order, when there is one
        present = set(topics)
        order = [str(t) for t in main.index if str(t) in present]
        topics = order + [t for t in topics if t not in set(order)]
    if n_topics is not None:
        topics = topics[: int(n_topics)]
    groups = list(pd.unique(keyed["group"]))
    wide = keyed.pivot(index="group", columns="topic", values=[metric, "_flag"])
    values = wide[metric].loc[groups, topics].to_numpy(dtype=float)
    flag = wide["_flag"].loc[groups, topics]

    width = max(3.0, 0.55 * len(topics) + 2.2)
    fig, ax = u.single_ax(ax, (width, max(2.0, 0.4 * len(groups) + 1.2)))
    span, clipped = _robust_span(values, null)
    image = ax.imshow(values, cmap="RdBu_r", vmin=null - span, vmax=null + span, aspect="auto")
    for (i, j), f in np.ndenumerate(flag.to_numpy(dtype=bool)):
        if f:
            ax.text(j, i, "*", ha="center", va="center", fontsize="medium")
    ax.set_xticks(np.arange(len(topics)), labels=topics, rotation=90)
    ax.set_yticks(np.arange(len(groups)), labels=groups)
    ax.grid(False)
    extend = "both" if clipped else "neither"
    fig.colorbar(image, ax=ax, label=label.split(" (")[0], shrink=0.8, extend=extend)
    reference = table["reference"].iloc[0] if "reference" in table.columns else "rest"
    ax.set_title(f"{groupby}: each group vs {reference}")
    return fig, ax
