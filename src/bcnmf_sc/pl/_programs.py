"""The target programs of a fit: their top genes and their score per cell group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib import rcParams
from scanpy.plotting import palettes

from bcnmf_sc import get
from bcnmf_sc._docs import doc_adata, doc_key, doc_params, doc_save, doc_show

from . import _utils as u

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["programs"]


def _title(name: str, row: pd.Series) -> str:
    """``"program_1 (topics 3,4; target-only)"`` from a row of the programs table."""
    topics = [t.strip() for t in str(row["topics"]).split(",") if t.strip()]
    if all(t.startswith("topic_") for t in topics):
        topics = [t.removeprefix("topic_") for t in topics]
    which = "topic" if len(topics) == 1 else "topics"
    only = "target-only" if bool(row.get("target_only", False)) else "not target-only"
    return f"{name} ({which} {','.join(topics)}; {only})"


def _groups(adata: AnnData, uns: Mapping, groupby: str | None):
    """Group labels, per-group cell masks, colours and the axis label of the score panels."""
    if groupby is not None:
        if not isinstance(groupby, str) or groupby not in adata.obs.columns:
            raise KeyError(
                f"groupby {groupby!r} is not a column of adata.obs; "
                f"available: {list(adata.obs.columns)}."
            )
        col = adata.obs[groupby]
        if not isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype("category")
        cats = list(col.cat.categories)
        colors = adata.uns.get(f"{groupby}_colors")
        if colors is None or len(colors) != len(cats):
            colors = u.topic_colors(len(cats))
        values = col.to_numpy()
        keep = [i for i, c in enumerate(cats) if (values == c).any()]
        masks = [np.asarray(values == cats[i]) for i in keep]
        return [str(cats[i]) for i in keep], masks, [colors[i] for i in keep], groupby
    params = uns.get("params", {})
    bkey = params.get("background_key") if isinstance(params, Mapping) else None
    if bkey is None or bkey not in adata.obs.columns:
        raise KeyError(
            f"The fit's background_key {bkey!r} is not a column of adata.obs; pass "
            f"groupby= (available: {list(adata.obs.columns)})."
        )
    col = adata.obs[bkey].astype(str)
    labels, masks = [], []
    for side in ("target", "background"):
        values = [str(v) for v in np.atleast_1d(params.get(side, []))]
        labels.append(", ".join(values) or side)
        masks.append(col.isin(values).to_numpy())
    return labels, masks, [palettes.default_20[3], "lightgray"], bkey


@doc_params(adata=doc_adata, key=doc_key, show=doc_show, save=doc_save("bcnmf_programs"))
def programs(
    adata: AnnData,
    *,
    key: str = "bcnmf",
    programs: str | Sequence[str] | None = None,
    n_genes: int = 10,
    groupby: str | None = None,
    ncols: int = 2,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
    **kwds,
):
    """The target programs a fit found: their top genes and which cells carry them.

    Reads ``.uns[key]["programs"]`` and ``.obsm[f"{key}_programs"]`` written by
    :func:`bcnmf_sc.tl.bcnmf`. Two panels per program, side by side: a bar per top gene
    at its ``excess`` (the genes of :func:`bcnmf_sc.get.program_genes`, largest at the
    top), titled with the program's topics and whether it is target-only
    (``"program_1 (topics 3,4; target-only)"``); and a box per cell group of the
    program's score (the share of each cell's counts the program explains).

    Parameters
    ----------
    {adata}
    {key}
    programs
        Program names (``"program_1"``...); default all, in the table's order.
    n_genes
        Top genes per program (genes the program does not load above the mean are never
        shown).
    groupby
        Column of ``adata.obs`` to group cells by in the score panels (its colours in
        ``adata.uns[f"{groupby}_colors"]`` are used when present); default the target
        and background cells of the fit (its ``background_key``; cells in neither are
        left out).
    ncols
        Programs per row (each takes two panels).
    {show}
    {save}
    return_fig
        Return the Figure.
    **kwds
        Passed to :meth:`~matplotlib.axes.Axes.barh`.

    Returns
    -------
    The Figure if ``return_fig``; else, when the figure is not shown, a list with one
    ``(genes_ax, score_ax)`` pair of Axes per program, in the order asked: the y tick
    labels of ``genes_ax`` are the program's genes, top to bottom; the x tick labels of
    ``score_ax`` the groups. ``None`` when shown.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate(n_target=250, n_background=250, n_genes=200, n_markers=20)
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=4)  # doctest: +SKIP

    The program's top genes and its score in target and background cells:

    .. plot::

        bc.pl.programs(adata)

    Its score per cell type:

    .. plot::

        bc.pl.programs(adata, programs="program_1", groupby="cell_type")
    """
    uns = u.check_result(adata, key, need=("uns",))
    u.check_positive_int(n_genes, "n_genes")
    u.check_positive_int(ncols, "ncols")
    table = uns.get("programs")
    scores = adata.obsm.get(f"{key}_programs")
    if not isinstance(table, pd.DataFrame) or scores is None:
        raise KeyError(
            f"No programs table in .uns[{key!r}]['programs'] (with "
            f".obsm['{key}_programs']); run bcnmf_sc.tl.bcnmf(..., key_added={key!r}) first."
        )
    if len(table) == 0:
        raise ValueError(
            f"The fit under key {key!r} found no target-enriched program: nothing to draw."
        )
    names = list(table.index)
    wanted = (
        names if programs is None else [programs] if isinstance(programs, str) else list(programs)
    )
    unknown = [p for p in wanted if p not in names]
    if unknown:
        raise KeyError(f"Unknown programs {unknown}; the fit's programs are {names}.")
    if not wanted:
        raise ValueError("programs= is empty: name at least one program.")
    scores = pd.DataFrame(scores, index=adata.obs_names, columns=names)
    genes = get.program_genes(adata, key=key, n_genes=int(n_genes), programs=wanted)
    labels, masks, group_colors, xlabel = _groups(adata, uns, groupby)

    width = rcParams["figure.figsize"][0] * 0.6
    height = max(2.4, 0.9 + 0.22 * int(n_genes))
    n_cols = 2 * min(int(ncols), len(wanted))
    fig, flat = u.panel_grid(2 * len(wanted), n_cols, (width, height))
    colors = u.topic_colors(len(names))
    pairs: list[tuple[Axes, Axes]] = []
    for i, name in enumerate(wanted):
        bars, box = flat[2 * i], flat[2 * i + 1]
        sub = genes[genes["program"] == name]
        y = np.arange(len(sub))
        bars.barh(y, sub["excess"].to_numpy(), **{"color": colors[names.index(name)], **kwds})
        bars.set_yticks(y, labels=[str(g) for g in sub["gene"]])
        bars.set_ylim(max(len(sub), 1) - 0.5, -0.5)  # rank 1 at the top
        bars.set_xlabel("excess")
        bars.set_title(_title(str(name), table.loc[name]))
        bars.grid(False)
        values = scores[name].to_numpy(dtype=float)
        parts = box.boxplot(
            [values[m] for m in masks],
            patch_artist=True,
            widths=0.6,
            flierprops={"ms": 2},
            medianprops={"color": "black"},
        )
        for patch, c in zip(parts["boxes"], group_colors, strict=True):
            patch.set_facecolor(c)
        # two short labels stay level; longer ones lean, many stand upright
        rotation = 90 if len(labels) > 2 else 30 if sum(map(len, labels)) > 12 else 0
        box.set_xticks(
            np.arange(1, len(labels) + 1),
            labels=labels,
            rotation=rotation,
            ha="right" if rotation == 30 else "center",
        )
        box.set_xlabel(xlabel)
        box.set_ylabel(f"{name} score")
        box.grid(False)
        pairs.append((bars, box))
    return u.finish(fig, pairs, "bcnmf_programs", show=show, save=save, return_fig=return_fig)
