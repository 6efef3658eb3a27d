"""One restart of a fit: the initial state, the loop over epochs, convergence, the finish.

:func:`fit_restart` runs one restart on a :class:`~bcnmf_sc._engine.problem.Problem` and
returns a :class:`Restart` (typed, no dicts); the estimator keeps the best one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from bcnmf_sc._progress import progress_bar

from ._dist import LocalComm
from .init import init_components, order_by_enrichment
from .losses import EPS
from .placement import gene_share, misplaced_topics, swap_order
from .problem import Group, Problem
from .rows import RowSource, checked_rows
from .solver import (
    FullBatchState,
    MinibatchState,
    Runtime,
    batch_sizes,
    batches,
    fresh_usage,
    full_epoch,
    join_usage_solve,
    minibatch_epoch,
    solve_usage,
    update_basis,
)
from .sparse import as_csr

__all__ = [
    "Restart",
    "Schedule",
    "collapse_messages",
    "fit_restart",
    "fit_restarts",
    "fitted_attributes",
    "flush_denormals",
    "init_sample",
    "objective_messages",
    "project",
    "settled",
]

DIVERGED = (
    "The fit diverged (non-finite objective). Check the input for extreme values, use "
    "dtype='float64', a smaller alpha or a larger w_floor."
)


@dataclass(frozen=True)
class Schedule:
    """How a restart trains: the solver, the number of epochs, the stopping rule."""

    n_components: int
    init: str  # the resolved method of :func:`~bcnmf_sc._engine.init.init_components`
    full: bool  # full-batch solver (else minibatch)
    max_epochs: int
    tol: float
    init_alpha: float  # contrast of the contrastive initialisation
    progress: bool = False


@dataclass
class History:
    """Per epoch: the objective, its two terms and the time since the restart began."""

    epoch: list[int] = field(default_factory=list)
    objective: list[float] = field(default_factory=list)
    target: list[float] = field(default_factory=list)
    background: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list]:
        return dict(self.__dict__)

    def then(self, later: History) -> History:
        """The two histories in turn: ``later``'s epochs and seconds continue these."""
        n = self.epoch[-1] if self.epoch else 0
        t = self.seconds[-1] if self.seconds else 0.0
        return History(
            epoch=self.epoch + [n + e for e in later.epoch],
            objective=self.objective + later.objective,
            target=self.target + later.target,
            background=self.background + later.background,
            seconds=self.seconds + [t + x for x in later.seconds],
        )


@dataclass
class Restart:
    """The result of one restart (on the compute device)."""

    W: torch.Tensor
    usage_target: torch.Tensor
    usage_background: torch.Tensor  # K topics alone, solved from a fresh start
    baseline: torch.Tensor  # the background's weights on the null-model topic
    history: History
    objective: float
    terms: tuple[float, float]  # a D(X), b D(Y) at the end
    n_epochs: int
    converged: bool
    # shared-topic model: (shared topic, target topic) pairs the fit swapped (placement)
    swapped: tuple[tuple[int, int], ...] = ()


def fitted_attributes(best: Restart) -> dict[str, Any]:
    """The estimator's fitted attributes from the best restart (numpy, float64)."""
    W = best.W.double().cpu().numpy()
    return {
        "components_": W,
        "usage_target_": best.usage_target.double().cpu().numpy(),
        "usage_background_": best.usage_background.double().cpu().numpy(),
        "baseline_background_": best.baseline.double().cpu().numpy(),
        "history_": best.history.as_dict(),
        "objective_": best.objective,
        "target_term_": best.terms[0],
        "background_term_": best.terms[1],
        "n_epochs_": best.n_epochs,
        "n_iter_": best.n_epochs,
        "converged_": best.converged,
        "swapped_topics_": [list(p) for p in best.swapped],
        "n_features_in_": W.shape[1],
    }


def init_sample(rt: Runtime, g: Group, rng: np.random.Generator) -> sp.csr_matrix:
    """The cells the initialisation sees, read in windows.

    All of them, or above ``options.init_cells`` a random sample of blocks of
    consecutive rows (cheap to read from disk).
    """
    n, block = g.n, rt.options.shuffle_block
    rows = None
    if n > rt.options.init_cells:
        n_blocks = -(-n // block)
        size = min(n_blocks, -(-rt.options.init_cells // block))
        pick = rng.choice(n_blocks, size=size, replace=False)
        rows = (np.sort(pick)[:, None] * block + np.arange(block)).ravel()
        rows = rows[rows < n]
    lo, hi = g.offset, g.offset + g.n_local
    local = np.arange(g.n_local) if rows is None else rows[(rows >= lo) & (rows < hi)] - lo
    step = rt.options.window_rows
    parts = [checked_rows(g.source, local[i : i + step]) for i in range(0, len(local), step)]
    if not parts:
        parts = [sp.csr_matrix((0, g.source.shape[1]))]
    parts = [p for ps in rt.comm.all_gather(parts) for p in ps]  # in process order
    return as_csr(parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr"))


def init_usage(rt: Runtime, g: Group, k: int, rng: np.random.Generator) -> torch.Tensor:
    """Initial usages (K columns, K + 1 with a null-model topic).

    Each cell's total spread evenly, times uniform noise in [0.8, 1.2].
    """
    k = g.width(k)
    # the same random numbers as one draw for all cells; each process keeps its rows
    lo, hi = g.offset, g.offset + g.n_local
    U = np.empty((g.n_local, k))
    step = 65_536
    for start in range(0, g.n, step):
        stop = min(g.n, start + step)
        u = rng.uniform(0.8, 1.2, size=(stop - start, k))
        a, b = max(start, lo), min(stop, hi)
        if a < b:
            U[a - lo : b - lo] = u[a - start : b - start]
    H = np.maximum(g.rowsum, 1e-3)[:, None] / k * U
    return torch.as_tensor(H, dtype=rt.dtype).to(rt.device)


def settled(past: list[float], window: int, scale: float, tol: float) -> bool:
    """Convergence test on the objective per epoch.

    Full batch (``window=1``, non-increasing objective): the relative change of the last
    epoch is below ``tol``. Minibatch: per-epoch objectives are noisy, so the test compares
    the mean objective of the last ``window`` epochs with the mean of the ``window``
    before them: stop when the improvement per epoch is below ``tol`` (relative to
    ``scale``). Averaging damps the noise, and a sequence that only fluctuates around its
    floor (improvement about zero, as often negative as positive) stops instead of running
    to ``max_epochs``.
    """
    if tol <= 0:  # tol=0: run all max_epochs
        return False
    if window == 1:
        return len(past) > 1 and abs(past[-2] - past[-1]) / scale < tol
    if len(past) < 2 * window:
        return False
    gain = (sum(past[-2 * window : -window]) - sum(past[-window:])) / window
    return gain / (window * scale) < tol


def fit_restarts(rt: Runtime, pb: Problem, plan: Schedule, n_init: int, random_state) -> Restart:
    """Run ``n_init`` restarts (seeds from ``random_state``); keep the lowest objective.

    The initialisation sample is read once and shared by the restarts.
    """
    rng = np.random.default_rng(random_state)
    shared = pb.background.topics is not None
    with flush_denormals():
        init_X = init_Y = None
        if plan.init != "random":
            init_X = init_sample(rt, pb.target, rng)
        if plan.init == "contrastive" or (shared and plan.init != "random"):
            init_Y = init_sample(rt, pb.background, rng)
        best: Restart | None = None
        for restart in range(n_init):
            seed = int(rng.integers(2**31 - 1))
            result = fit_restart(rt, pb, init_X, init_Y, plan, seed, perturb=restart > 0)
            if best is None or result.objective < best.objective:
                best = result
    assert best is not None
    return best


def project(rt: Runtime, components: np.ndarray, source: RowSource, batch_size: int) -> np.ndarray:
    """Usages (float64, cells x K) of the rows of ``source`` with ``components`` fixed.

    Each cell is solved from a fresh start to ``options.final_tol``.
    """
    opts = rt.options
    W = torch.as_tensor(components, dtype=rt.dtype).to(rt.device)
    out = np.zeros((source.n_obs, W.shape[0]))
    with flush_denormals():
        for b in source.batches(batch_size, dtype=rt.dtype, device=rt.device):
            H0 = fresh_usage(b, W.shape[0])
            H = solve_usage(rt, b, H0, W, opts.final_iter, opts.final_tol)
            out[b.rows] = H.double().cpu().numpy()
    return out


def fit_restart(
    rt: Runtime,
    pb: Problem,
    init_X: sp.csr_matrix | None,
    init_Y: sp.csr_matrix | None,
    plan: Schedule,
    seed: int,
    perturb: bool,
) -> Restart:
    """One restart: initial state from ``seed``, epochs until ``plan`` says stop.

    Then the usages are refitted to the final basis and the true objective evaluated. In
    the shared-topic model a second fit follows when shared topics hold target-only
    structure (:func:`repair_placement`).
    """
    rng = np.random.default_rng(seed)
    k = plan.n_components
    tgt, bg = pb.groups
    W0 = init_components(
        init_X if init_X is not None else sp.csr_matrix((1, tgt.source.shape[1])),
        k,
        method=plan.init,
        rng=rng,
        perturb=perturb,
        Y=init_Y,
        alpha=plan.init_alpha,
    )
    if bg.topics is not None and init_X is not None and init_Y is not None:
        # shared-topic model: the target topics (rows 0..K-1) start as the components
        # the target has more of (the start of a random basis is left as it is)
        W0 = order_by_enrichment(W0, init_X, init_Y, bg.topics.start)
    W = torch.as_tensor(W0, dtype=rt.dtype).to(rt.device)
    W, _ = update_basis(W, W, 1.0, pb.floor)
    rt.comm.broadcast_(W)
    for g in pb.groups:
        g.H = init_usage(rt, g, k, rng)
    W, history, converged = _train(rt, pb, W, plan, rng)
    return repair_placement(rt, pb, plan, _finish(rt, pb, W, history, converged, plan), rng)


def repair_placement(
    rt: Runtime, pb: Problem, plan: Schedule, first: Restart, rng: np.random.Generator
) -> Restart:
    """Shared-topic model: move target-only structure out of shared topics, if that pays.

    When a shared topic is target-only and a target topic is not, or, failing that, the
    counts on an enriched shared topic's specific genes say it holds a program
    (:func:`~bcnmf_sc._engine.placement.misplaced_topics`, on up to
    ``options.init_cells`` cells of each group), the two swap places in the basis and
    the fit trains again from there (fresh usages, the same schedule). The second fit is
    kept only if its objective is lower; its history continues the first's. Without
    such a pair, or with ``options.repair_placement=False``, ``first`` is returned.
    """
    tgt, bg = pb.groups
    if bg.topics is None or not rt.options.repair_placement:
        return first
    ut = _usage_sample(rt, tgt, first.usage_target)
    ub = _usage_sample(rt, bg, first.usage_background)
    rows: dict[str, sp.csr_matrix] = {}  # each group's sampled counts, read when first asked

    def share(g: Group, genes: np.ndarray) -> np.ndarray:
        if g.role not in rows:
            rows[g.role] = checked_rows(g.source, _sample_rows(rt, g))
        return np.concatenate(rt.comm.all_gather(gene_share(rows[g.role], genes)))

    def shares(genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return share(tgt, genes), share(bg, genes)

    components = first.W.double().cpu().numpy()
    # the target topics come first
    pairs = misplaced_topics(ut, ub, bg.topics.start, components, shares)
    if not pairs:
        return first
    order = torch.as_tensor(swap_order(first.W.shape[0], pairs), device=first.W.device)
    W = first.W[order].clone()
    for g in pb.groups:
        g.H = init_usage(rt, g, plan.n_components, rng)
    W, history, converged = _train(rt, pb, W, plan, rng)
    second = _finish(rt, pb, W, history, converged, plan)
    if not second.objective < first.objective:
        return first
    both = first.history.then(second.history)
    return dataclasses.replace(second, history=both, n_epochs=len(both.epoch), swapped=tuple(pairs))


def _sample_rows(rt: Runtime, g: Group) -> np.ndarray:
    """The rows (of this process) of the placement check's sample: every ``s``-th cell.

    ``s`` is chosen so that about ``options.init_cells`` of the group's cells are kept.
    """
    return np.arange(0, g.n_local, _sample_step(rt, g))


def _sample_step(rt: Runtime, g: Group) -> int:
    return max(1, -(-g.n // rt.options.init_cells))


def _usage_sample(rt: Runtime, g: Group, usage: torch.Tensor) -> np.ndarray:
    """The usages (float64) of the sample's cells (:func:`_sample_rows`), over processes."""
    local = usage[:: _sample_step(rt, g)].double().cpu().numpy()
    return np.concatenate(rt.comm.all_gather(local))


def _train(rt: Runtime, pb: Problem, W: torch.Tensor, plan: Schedule, rng: np.random.Generator):
    """The loop over epochs; returns ``(W, history, converged)``."""
    tgt, bg = pb.groups
    coef = pb.coef
    history = History()
    start = time.perf_counter()
    full_state, mini_state = FullBatchState(), MinibatchState()
    window = 1 if plan.full else rt.options.minibatch_window
    converged = False
    bar = progress_bar(total=plan.max_epochs, enabled=plan.progress, desc="bcNMF", unit="epoch")
    try:
        for epoch in range(1, plan.max_epochs + 1):
            if plan.full:
                W, losses, stationary = full_epoch(rt, pb, W, full_state)
            else:
                W, losses = minibatch_epoch(rt, pb, W, mini_state, rng)
                stationary = False
            obj = pb.objective(losses)
            if not math.isfinite(obj):
                raise FloatingPointError(DIVERGED)
            history.epoch.append(epoch)
            history.objective.append(obj)
            history.target.append(tgt.weight * losses[0])
            # alpha=0: the background is not fitted during training (NaN here); its
            # final term is still computed after the fit
            history.background.append(bg.weight * losses[1] if coef[1] else math.nan)
            history.seconds.append(time.perf_counter() - start)
            bar.update(1)
            bar.set_postfix(objective=f"{obj:.5g}")
            scale = max(abs(obj), tgt.weight * losses[0], EPS)
            converged = settled(history.objective, window, scale, plan.tol)
            if converged or stationary:
                converged = True
                break
    finally:
        bar.close()
    return W, history, converged


def _finish(rt: Runtime, pb: Problem, W, history: History, converged: bool, plan: Schedule):
    """Refit the usages to the final basis and evaluate the true objective.

    The background's null-model topic counts in the objective, but the usages reported
    for background cells use the topics alone, as for any other cell.
    """
    opts, k = rt.options, plan.n_components
    tgt, bg = pb.groups
    final = []
    usage_bg = bg.H.new_zeros((bg.H.shape[0], k))
    sizes = (tgt.n, bg.n) if plan.full else batch_sizes(rt, pb.groups)
    for g, size in zip(pb.groups, sizes, strict=True):
        lsum = 0.0
        for _, b in batches(rt, g, size, None):
            Wa = g.basis(W)
            if b is None:  # none of this process's cells: join the others' tests
                join_usage_solve(rt, Wa, opts.final_iter, opts.final_tol)
                if g.is_background:
                    join_usage_solve(rt, W, opts.final_iter, opts.final_tol)
                continue
            rows = torch.as_tensor(b.rows, device=rt.device)
            Hb = solve_usage(rt, b, g.H[rows], Wa, opts.final_iter, opts.final_tol)
            g.H[rows] = Hb
            lsum += rt.loss.loss(b, Hb, Wa)
            if g.is_background:  # from a fresh start, exactly as transform() would
                usage_bg[rows] = solve_usage(
                    rt, b, fresh_usage(b, k), W, opts.final_iter, opts.final_tol
                )
        final.append(rt.comm.sum_scalar(lsum))
        g.cache = []
    objective = pb.objective(final)
    if not math.isfinite(objective):
        raise FloatingPointError(DIVERGED)
    return Restart(
        W=W,
        usage_target=tgt.H,
        usage_background=usage_bg,
        baseline=bg.H[:, k] if bg.profile is not None else torch.zeros_like(bg.H[:, 0]),
        history=history,
        objective=objective,
        terms=(tgt.weight * final[0], bg.weight * final[1]),
        n_epochs=len(history.epoch),
        converged=converged,
    )


def collapse_messages(usage_t: np.ndarray, usage_b: np.ndarray, comm: LocalComm) -> list[str]:
    """Warnings a fitted model deserves: topics no cell uses, target cells with no usage."""
    out = []
    tot = comm.sum_array(np.concatenate([usage_t, usage_b]).sum(0))
    dead = np.flatnonzero(tot <= 1e-8 * max(tot.max(), EPS))
    if len(dead):
        out.append(
            f"Topics {dead.tolist()} have (almost) no usage in any cell: the fit collapsed "
            "them. Use fewer topics, a smaller alpha, or more restarts (n_init)."
        )
    zeros, cells = comm.sum_array(np.array([np.sum(usage_t.sum(1) <= 0), len(usage_t)]))
    zero_cells = zeros / max(cells, 1.0)
    if zero_cells > 0.01:
        out.append(
            f"{zero_cells:.1%} of target cells have all-zero usage; the fit may have "
            "collapsed (try a smaller alpha)."
        )
    return out


def objective_messages(relative_target: float, trivial: str = "the null model") -> list[str]:
    """Warnings about the fitted objective: a target term above 1 (worse than trivial).

    ``relative_target`` is the target's loss relative to that of the ``trivial`` model
    (:meth:`Problem.trivial_target`; the null model, one topic with the mean profile,
    ``target_term_`` under deviance scaling); above 1 the topics explain the target
    worse than that.
    """
    if math.isfinite(relative_target) and relative_target > 1:
        return [
            f"The fitted topics explain the target worse than {trivial} (target term "
            f"{relative_target:.3g} > 1): the contrast dominates; alpha too large? Try a "
            "smaller alpha (see tl.bcnmf_sweep)."
        ]
    return []


class flush_denormals:
    """Flush denormal floats to zero on CPU while fitting.

    Multiplicative updates drive unused entries towards zero; once they are denormal, CPU
    arithmetic on them is up to 100x slower. Flushing changes nothing a user can see
    (values below 1e-38 in float32). On leaving, flushing is switched off again (torch's
    default; a flag set before entering is not restored).
    """

    def __enter__(self) -> flush_denormals:
        self._ok = torch.set_flush_denormal(True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ok:
            torch.set_flush_denormal(False)
