"""Training curves of a bcNMF fit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import rcParams

from bcnmf_sc._docs import doc_adata, doc_key, doc_params, doc_save, doc_show

from . import _utils as u

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["training"]

_TERMS = (
    ("objective", "objective"),
    ("target", "target term"),
    ("background", "background term"),
)


@doc_params(adata=doc_adata, key=doc_key, show=doc_show, save=doc_save("bcnmf_training"))
def training(
    adata,
    *,
    key: str = "bcnmf",
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    return_fig: bool = False,
):
    """The objective and its two terms per epoch: did the fit converge?

    Reads ``.uns[key]["history"]`` written by :func:`bcnmf_sc.tl.bcnmf`. The objective
    is the target term minus ``alpha`` times the background term (both per-entry
    losses, as recorded by :class:`bcnmf_sc.BcNMF`). A dashed line marks the last epoch,
    labelled with whether the fit converged. The y axis shows the range from the second
    epoch on (padded by 5%): the first epoch, often far above the rest, would flatten the
    curve that shows convergence; it is drawn, but may lie above the axis.

    Parameters
    ----------
    {adata}
    {key}
    ax
        Draw the three curves into this one Axes (with a legend) instead of three panels
        (objective, target term, background term) side by side.
    {show}
    {save}
    return_fig
        Return the Figure.

    Returns
    -------
    The Figure if ``return_fig``; else, when the figure is not shown, a list of Axes:
    three panels (titled ``"objective"``, ``"target term"``, ``"background term"``) or
    ``[ax]``. ``None`` when shown.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate(n_target=250, n_background=250, n_genes=200, n_markers=20)
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=4)  # doctest: +SKIP

    The training curves of the fit:

    .. plot::

        bc.pl.training(adata)
    """
    uns = u.check_result(adata, key, need=("uns",))
    hist: Any = uns.get("history")
    if not hasattr(hist, "get") or len(np.atleast_1d(hist.get("objective", []))) == 0:
        raise ValueError(
            f".uns[{key!r}]['history'] holds no per-epoch objective; refit with "
            f"bcnmf_sc.tl.bcnmf(..., key_added={key!r})."
        )
    obj = np.asarray(hist["objective"], dtype=float)
    epoch = np.asarray(hist.get("epoch", np.arange(1, len(obj) + 1)), dtype=float)
    curves = [
        (np.asarray(hist[name], dtype=float), label)
        for name, label in _TERMS
        if name in hist and len(np.atleast_1d(hist[name])) == len(obj)
    ]
    converged = bool(uns.get("converged", False))
    alpha = uns.get("params", {}).get("alpha")
    stop = "converged" if converged else "not converged"
    stop_label = f"{stop} (epoch {int(epoch[-1])})"
    colors = u.topic_colors(len(curves))

    if ax is not None:
        fig, axes = ax.figure, [ax]
        for (vals, label), c in zip(curves, colors, strict=True):
            ax.plot(epoch, vals, marker=".", color=c, label=label)
        _robust_ylim(ax, [vals for vals, _ in curves])
        ax.axvline(epoch[-1], color="gray", ls="--", lw=1, label=stop_label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(key)
        ax.legend(frameon=False, fontsize="small")
    else:
        w, h = rcParams["figure.figsize"]
        fig, axes = u.panel_grid(len(curves), len(curves), (w * 0.8, h * 0.8))
        for a, (vals, label), c in zip(axes, curves, colors, strict=True):
            a.plot(epoch, vals, marker=".", color=c)
            _robust_ylim(a, [vals])
            a.axvline(epoch[-1], color="gray", ls="--", lw=1, label=stop_label)
            a.set_title(label)
            a.set_xlabel("epoch")
            a.grid(False)
        axes[0].set_ylabel("loss")
        axes[0].legend(frameon=False, fontsize="small")
        if alpha is not None:
            fig.suptitle(f"{key}: objective = target term − {alpha:g} × background term")
    return u.finish(fig, axes, "bcnmf_training", show=show, save=save, return_fig=return_fig)


def _robust_ylim(ax: Axes, curves: list[np.ndarray]) -> None:
    """The y limits from the second epoch on (5% padding), with at least 3 epochs."""
    parts = [np.asarray(v, dtype=float)[1:] for v in curves if len(v) >= 3]
    rest = np.concatenate(parts) if parts else np.zeros(0)
    rest = rest[np.isfinite(rest)]
    if rest.size == 0:
        return
    lo, hi = float(rest.min()), float(rest.max())
    pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1e-12)
    ax.set_ylim(lo - pad, hi + pad)
