"""Shared plumbing of the plotting functions: result lookup, topics, layout, save/show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib import pyplot as plt
from matplotlib import rcParams
from scanpy import logging as logg
from scanpy import settings
from scanpy.plotting import palettes

from bcnmf_sc._utils import resolve_topics, topic_names

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

_WHAT = {
    "uns": lambda key: f".uns[{key!r}]",
    "obsm": lambda key: f".obsm['X_{key}']",
    "varm": lambda key: f".varm['{key}_loadings']",
}


def _result_keys(adata: AnnData) -> list[str]:
    """Keys of ``.uns`` that look like a :func:`bcnmf_sc.tl.bcnmf` result."""
    return [
        k
        for k, v in adata.uns.items()
        if isinstance(v, Mapping) and "params" in v and "topics" in v and "history" in v
    ]


def check_result(adata: AnnData, key: str, need: Sequence[str] = ("uns",)) -> Mapping:
    """The ``.uns[key]`` dict of a bcNMF fit; a clear error when (part of) it is missing."""
    if not isinstance(adata, AnnData):
        raise TypeError(f"Expected an AnnData, got {type(adata).__name__}.")
    if not isinstance(key, str) or not key:
        raise TypeError(f"key must be a non-empty string, got {key!r}.")
    present = {
        "uns": key in adata.uns and isinstance(adata.uns[key], Mapping),
        "obsm": f"X_{key}" in adata.obsm,
        "varm": f"{key}_loadings" in adata.varm,
    }
    missing = [_WHAT[w](key) for w in need if not present[w]]
    if missing:
        found = _result_keys(adata)
        hint = f" Keys holding a bcNMF result: {found}." if found else ""
        raise KeyError(
            f"No bcNMF result under key {key!r} (missing {', '.join(missing)}); run "
            f"bcnmf_sc.tl.bcnmf(..., key_added={key!r}) first.{hint}"
        )
    return adata.uns[key] if present["uns"] else {}


def n_topics_of(adata: AnnData, key: str) -> int:
    """Number of topics of the fit (from the usages, the loadings or the stored names)."""
    if f"X_{key}" in adata.obsm:
        return int(np.shape(adata.obsm[f"X_{key}"])[1])
    if f"{key}_loadings" in adata.varm:
        return int(np.shape(adata.varm[f"{key}_loadings"])[1])
    return len(adata.uns[key].get("topics", []))


def select_topics(adata: AnnData, key: str, topics) -> tuple[list[int], list[str]]:
    """Indices and names of the requested topics (names, 0-based positions).

    ``None``: all topics, or the target topics of a fit with shared topics (the
    ``n_shared`` recorded in its params, the last topics); ``"all"``: every topic.
    """
    names = topic_names(adata, key, n_topics_of(adata, key))
    if topics is None:
        uns = adata.uns.get(key, {})
        params = uns.get("params", {}) if hasattr(uns, "get") else {}
        n_shared = int(params.get("n_shared", 0) or 0) if hasattr(params, "get") else 0
        if 0 < n_shared < len(names):
            topics = list(range(len(names) - n_shared))
    elif isinstance(topics, str) and topics == "all" and "all" not in names:
        topics = None
    idx = resolve_topics(topics, names)
    return idx, [names[i] for i in idx]


def enriched_topics(uns: Mapping) -> list[str]:
    """Names of the target-enriched topics of the stored enrichment table, in its order."""
    table = uns.get("enrichment") if hasattr(uns, "get") else None
    if not isinstance(table, pd.DataFrame) or "enriched" not in table.columns:
        return []
    return [str(t) for t in table.index[table["enriched"].to_numpy(dtype=bool)]]


def topic_colors(n_topics: int) -> list[str]:
    """One colour per topic from scanpy's categorical palettes (as for ``n_topics`` groups)."""
    if n_topics <= 20:
        pal = palettes.default_20
    elif n_topics <= 28:
        pal = palettes.default_28
    else:
        pal = palettes.default_102
    return [pal[i % len(pal)] for i in range(n_topics)]


def check_positive_int(value, name: str, *, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_choice(value, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}: use one of {tuple(choices)}.")


def panel_grid(n: int, ncols: int, panel_size: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels in rows of ``ncols``; unused grid cells are removed."""
    check_positive_int(ncols, "ncols")
    ncols = min(int(ncols), n)
    nrows = int(np.ceil(n / ncols))
    w, h = panel_size
    fig, axs = plt.subplots(
        nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False, layout="constrained"
    )
    flat = list(axs.ravel())
    for extra in flat[n:]:
        extra.remove()
    return fig, flat[:n]


def single_ax(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """The given Axes and its figure, or a new figure with one Axes."""
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax  # type: ignore[return-value]


def savefig_or_show(
    writekey: str, fig: Figure, *, show: bool | None, save: bool | str | None
) -> bool:
    """Save and/or show ``fig`` as scanpy does; returns whether it was shown.

    ``save=True`` writes ``settings.figdir / f"{writekey}{settings.plot_suffix}.{ext}"``
    with ``ext = settings.file_format_figs``; a string is appended to the file name, and a
    trailing ``.png``, ``.pdf`` or ``.svg`` sets the format. ``None`` follows
    ``settings.autosave`` / ``settings.autoshow``.
    """
    ext = None
    if isinstance(save, str):
        for try_ext in (".svg", ".pdf", ".png"):
            if save.endswith(try_ext):
                ext = try_ext[1:]
                save = save[: -len(try_ext)]
                break
        writekey += save
        save = True
    save = settings.autosave if save is None else bool(save)
    show = settings.autoshow if show is None else bool(show)
    if save:
        dpi: Any = rcParams["savefig.dpi"]
        dpi = None if isinstance(dpi, str) else dpi
        figdir = Path(settings.figdir)
        figdir.mkdir(parents=True, exist_ok=True)
        filename = figdir / f"{writekey}{settings.plot_suffix}.{ext or settings.file_format_figs}"
        logg.warning(f"saving figure to file {filename}")
        fig.savefig(filename, dpi=dpi, bbox_inches="tight")
    if show:
        plt.show()
        if save:  # nobody holds the figure any more (as scanpy does)
            plt.close(fig)
    return show


def finish(
    fig: Figure | SubFigure,
    axes,
    writekey: str,
    *,
    show: bool | None,
    save: bool | str | None,
    return_fig: bool = False,
):
    """Save/show, then return the Figure (``return_fig``), the Axes (not shown) or None."""
    shown = savefig_or_show(writekey, fig, show=show, save=save)  # type: ignore[arg-type]
    if return_fig:
        return fig
    if not shown:
        return axes
    return None
