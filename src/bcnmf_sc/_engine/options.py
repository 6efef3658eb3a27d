"""Solver settings that are not estimator parameters, in one place.

These were module constants; tests and benchmarks that need other values (small windows
so the streaming paths run on small data, a short forgetting horizon) set them with
:func:`engine_options` for the duration of a ``with`` block, instead of patching modules.
Every fit reads the options once, when it starts, and passes them down explicitly.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Options", "engine_options", "get_options"]


@dataclass(frozen=True)
class Options:
    """Settings of the solver and of the row reading (defaults are the tuned values).

    Attributes
    ----------
    auto_minibatch_cells
        ``solver="auto"`` picks the minibatch solver above this many cells in total.
    auto_nndsvda_genes
        The shared-topic model's ``init="auto"`` starts from ordered NNDSVDa above this
        many genes, from random loadings up to it. On all 20,000 genes of a sparse
        simulation random target topics fitted the target's noise (best target topic
        AUROC 0.64 against 0.95), while on the recovery suite's 1,000-2,000 genes random
        loadings recovered as well or better on fresh seeds (mean best-topic AUROC 0.93
        against 0.92 for the better of both starts; docs/benchmarks.md).
    batch_size
        Default cells per minibatch step (``BcNMF(batch_size=None)``).
    minibatch_window
        Minibatch convergence test: means over windows of this many epochs.
    bg_solve
        Minibatch: background usages are solved per batch to this relative tolerance (at
        most this many steps); with fewer steps W learns to exploit lagging background fits.
    relax
        Over-relaxation of the usage solves: 20 steps at 1.5 fitted as well as 50 plain
        ones (benchmarks/recovery.py K=2, seeds 0-2: objective -1.0149 vs -1.0152, same
        AUROCs and ARI) with 30% fewer passes.
    final_iter, final_tol
        Usages after training and in ``transform()``: each cell solved until the loss
        changes by less than ``final_tol`` (relative, over 5 steps), at most ``final_iter``
        steps.
    solve_tol
        Relative tolerance of the background usage solve in full batch.
    init_cells
        Groups larger than this initialise from a random sample of this many cells (in
        blocks of ``shuffle_block`` consecutive rows), read through the row source.
    repair_placement
        Shared-topic model: after a fit, swap shared topics that hold target-only
        structure with target topics that do not and train again, keeping the lower
        objective (:func:`~bcnmf_sc._engine.training.repair_placement`).
    forget_cells
        Minibatch, the contrast: the running statistics that update W forget over at
        most this many cells (an epoch of smaller data); 100k cells, training objective:
        20k reached in 15 epochs what forgetting over an epoch reached in 29; 10k was no
        better than 20k, and a horizon doubling every epoch (20k, 40k, ...) lost most of
        the gain.
    forget_cells_shared
        The horizon of the shared-topic model (the default for counts), as ``(cells,
        share)``: the larger of ``cells`` and ``share`` of an epoch's cells, at most
        ``forget_cells`` (and at most an epoch). Its W follows the statistics of fewer
        cells well on mid-sized data: on 20,000 + 20,000 simulated cells, K = 10, a
        horizon of 5,000 cells stopped in 23-25 epochs instead of 33-34 (1.4x sooner) at
        a lower objective and with better recovery of the planted program; at 100,000
        cells 5,000 stopped early at a worse objective (1e-3), 12,500 (an eighth of the
        epoch) matched 20,000 (``benchmarks/bench_forget.py``, ``bench_large.py``;
        docs/benchmarks.md). Above 160,000 cells this is ``forget_cells``.
    window_rows
        Rows read from a source with one call while training or projecting (a window).
    shuffle_block
        Above one window, an epoch shuffles blocks of this many consecutive rows as units
        (large enough that a block of a file on disk is read whole: HDF5 reads whole
        chunks, anndata's are about 100 KB).
    """

    auto_minibatch_cells: int = 500
    auto_nndsvda_genes: int = 5000
    batch_size: int = 512
    minibatch_window: int = 5
    bg_solve: tuple[int, float] = (20, 1e-5)
    relax: float = 1.5
    final_iter: int = 200
    final_tol: float = 1e-5
    solve_tol: float = 1e-7
    init_cells: int = 20_000
    repair_placement: bool = True
    forget_cells: float = 20_000
    forget_cells_shared: tuple[float, float] = (5_000, 0.125)
    window_rows: int = 16_384
    shuffle_block: int = 128


_CURRENT: contextvars.ContextVar[Options] = contextvars.ContextVar(
    "bcnmf_engine_options",
    default=Options(),  # noqa: B039 (frozen: immutable)
)


def get_options() -> Options:
    """The options in effect (the defaults outside any :func:`engine_options` block)."""
    return _CURRENT.get()


@contextlib.contextmanager
def engine_options(**changes) -> Iterator[Options]:
    """Run a block with some options changed, e.g. ``engine_options(window_rows=256)``.

    Unknown names raise ``TypeError``. Fits started inside the block use the changed
    options; the previous options are restored on leaving it.
    """
    token = _CURRENT.set(dataclasses.replace(_CURRENT.get(), **changes))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)
