"""The alpha x n_topics grid of :func:`bcnmf_sc.tl.bcnmf_sweep`: the trade-off at a glance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib import rcParams
from matplotlib.ticker import MaxNLocator

from bcnmf_sc._docs import doc_key, doc_params, doc_save, doc_show

from . import _utils as u

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["sweep"]

#: Columns that can be drawn, with axis labels.
METRICS = {
    "target_score_effect": "target score effect (Cohen's d)",
    "target_score_share": "target score, target − background",
    "background_explained": "background explained",
    "stability": "stability (mean topic)",
    "stability_enriched": "stability (enriched topics)",
    "heldout_target": "held-out target loss (rel. to null)",
    "n_enriched": "enriched topics",
    "n_stable_enriched": "stable enriched topics",
    "max_log2fc": "largest log2FC",
    "best_auroc": "best topic AUROC",
    "median_auroc": "median topic AUROC",
    "objective": "objective",
    "target_term": "target term (rel. to null)",
    "background_term": "background term (rel. to null)",
}
_DEFAULT = ("target_score_effect", "background_explained", "stability", "heldout_target")
#: Counts: drawn with integer ticks only.
_INTEGER = ("n_enriched", "n_stable_enriched")


def _sweep_result(adata: AnnData, key: str) -> tuple[pd.DataFrame, Mapping]:
    if not isinstance(adata, AnnData):
        raise TypeError(f"Expected an AnnData, got {type(adata).__name__}.")
    if not isinstance(key, str) or not key:
        raise TypeError(f"key must be a non-empty string, got {key!r}.")
    res = adata.uns.get(key)
    table = res.get("table") if isinstance(res, Mapping) else None
    if not isinstance(table, pd.DataFrame):
        raise KeyError(
            f"No sweep result under .uns[{key!r}]; run "
            f"bcnmf_sc.tl.bcnmf_sweep(..., key_added={key!r}) first."
        )
    rec = res.get("recommended", {})
    return table, rec if isinstance(rec, Mapping) else {}


@doc_params(key=doc_key, show=doc_show, save=doc_save("bcnmf_sweep"))
def sweep(
    adata: AnnData,
    *,
    key: str = "bcnmf_sweep",
    metrics: str | Sequence[str] = _DEFAULT,
    ncols: int = 4,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
):
    """Measures of every setting of a sweep against ``alpha``, one line per ``n_topics``.

    Reads ``.uns[key]`` written by :func:`bcnmf_sc.tl.bcnmf_sweep`. The default panels
    show the trade-off that ``alpha`` controls: how cleanly the target score (each
    cell's share of usage specific to the target) separates target from background cells
    (``target_score_effect``, the measure the recommendation maximises) against how much
    of the background the topics still explain (``background_explained``), how stable the
    topics are across restarts, and how well they describe held-out target cells. The
    recommended setting is marked with a black star in every panel and named in the
    title of the legend (right of the last panel). Counts (``n_enriched``,
    ``n_stable_enriched``) get integer ticks.

    Parameters
    ----------
    adata
        Data on which :func:`bcnmf_sc.tl.bcnmf_sweep` was run.
    {key}
    metrics
        Column(s) of the sweep table to draw, one panel each; any of
        ``"target_score_effect"``, ``"target_score_share"``, ``"background_explained"``,
        ``"stability"``, ``"stability_enriched"``, ``"heldout_target"``, ``"n_enriched"``,
        ``"n_stable_enriched"``, ``"max_log2fc"``, ``"best_auroc"``, ``"median_auroc"``,
        ``"objective"``, ``"target_term"``, ``"background_term"``.
    ncols
        Panels per row.
    ax
        Draw a single metric into this Axes.
    {show}
    {save}
    return_fig
        Return the Figure.

    Returns
    -------
    The Figure if ``return_fig``; else, when the figure is not shown, a list of Axes, one
    per metric (titled with the metric's column name). In each, ``ax.lines`` holds one
    line per ``n_topics`` (ascending, labelled ``"K=..."``) and then the star marking the
    recommended setting (label ``"recommended"``). ``None`` when shown.

    Examples
    --------
    A small sweep (18 fits; the default grid is larger):

    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate(n_target=250, n_background=250, n_genes=200, n_markers=20)
    >>> bc.tl.bcnmf_sweep(
    ...     adata, "condition", "background", alphas=[0, 1, 2], n_topics=[3, 4], n_init=2
    ... )  # doctest: +SKIP

    The trade-off that ``alpha`` controls, with the recommended setting starred:

    .. plot::

        bc.pl.sweep(adata)

    Any other columns of the sweep table:

    .. plot::

        bc.pl.sweep(adata, metrics=["max_log2fc", "best_auroc"])
    """
    table, rec = _sweep_result(adata, key)
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise ValueError("metrics is empty: pass at least one column of the sweep table.")
    for m in names:
        u.check_choice(m, "metric", tuple(METRICS))
        if m not in table.columns:
            raise ValueError(f"The sweep table has no column {m!r}; rerun tl.bcnmf_sweep.")
    if ax is not None and len(names) != 1:
        raise ValueError(f"ax= takes a single metric, got {len(names)}: {names}.")
    u.check_positive_int(ncols, "ncols")

    if ax is not None:
        fig, axes = ax.figure, [ax]
    else:
        w, h = rcParams["figure.figsize"]
        fig, axes = u.panel_grid(len(names), ncols, (w * 0.8, h * 0.8))
    alpha = table["alpha"].to_numpy(dtype=float)
    ks = table["n_topics"].to_numpy(dtype=int)
    levels = sorted(set(ks.tolist()))
    colors = u.topic_colors(len(levels))
    has_rec = "alpha" in rec and "n_topics" in rec
    for a, metric in zip(axes, names, strict=True):
        values = table[metric].to_numpy(dtype=float)
        for k, c in zip(levels, colors, strict=True):
            sel = ks == k
            order = np.argsort(alpha[sel])
            a.plot(alpha[sel][order], values[sel][order], marker="o", color=c, label=f"K={k}")
        if has_rec:
            hit = (ks == int(rec["n_topics"])) & np.isclose(alpha, float(rec["alpha"]))
            a.plot(
                alpha[hit],
                values[hit],
                linestyle="none",
                marker="*",
                markersize=16,
                color="black",
                zorder=4,
                label="recommended",
            )
        a.set_xlabel("alpha")
        a.set_ylabel(METRICS[metric])
        a.set_title(metric)
        a.set_xticks(sorted(set(alpha.tolist())))
        if metric in _INTEGER:
            a.yaxis.set_major_locator(MaxNLocator(integer=True))
        a.grid(False)
    # the recommendation in the legend, outside the panels: a suptitle ran into them
    title = (
        f"recommended:\nalpha={float(rec['alpha']):g}, K={int(rec['n_topics'])}"
        if has_rec
        else None
    )
    style: dict[str, Any] = {"frameon": False, "fontsize": "small", "title_fontsize": "small"}
    if ax is None:
        style.update(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axes[-1].legend(title=title, **style)
    return u.finish(fig, axes, "bcnmf_sweep", show=show, save=save, return_fig=return_fig)
