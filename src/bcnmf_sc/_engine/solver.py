"""The solver's steps: the usage solve, the basis update, and the two kinds of epoch.

Every function takes what it works on explicitly: a :class:`Runtime` (the loss, the
process group, dtype, device, options), the :class:`~bcnmf_sc._engine.problem.Problem`,
the basis ``W`` and the state that one kind of epoch carries from epoch to epoch
(:class:`FullBatchState`, :class:`MinibatchState`). To change the solver's dynamics,
change this file; the objective is :mod:`~bcnmf_sc._engine.problem`'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ._dist import LocalComm
from .losses import EPS, Loss
from .options import Options
from .problem import Group, Problem
from .rows import epoch_order, iter_parts
from .sparse import Batch, row_sums

__all__ = [
    "FullBatchState",
    "MinibatchState",
    "Runtime",
    "batch_sizes",
    "full_epoch",
    "join_usage_solve",
    "minibatch_epoch",
    "solve_usage",
    "update_basis",
]

Part = tuple[int, Batch | None]


@dataclass
class Runtime:
    """What every step needs besides the problem and the state."""

    loss: Loss
    comm: LocalComm
    dtype: torch.dtype
    device: torch.device
    options: Options
    inner_iter: int | None = None  # None: 5 full batch, 10 minibatch
    forget_factor: float = 0.1
    batch_size: int | None = None  # None: options.batch_size


@dataclass
class FullBatchState:
    """Carried between full-batch epochs.

    The step size, and whether the background was solved for the first basis.
    """

    gamma: float = 1.0
    started: bool = False


@dataclass
class Accumulator:
    """Minibatch running statistics of one group: ``W = NUM / DEN`` (see below)."""

    num: torch.Tensor
    den: torch.Tensor
    cells: float = 0.0


@dataclass
class MinibatchState:
    """Carried between minibatch epochs: the running statistics of each group."""

    acc: list[Accumulator] = field(default_factory=list)


def solve_usage(
    rt: Runtime, b: Batch, H: torch.Tensor, W: torch.Tensor, max_iter: int, tol: float
) -> torch.Tensor:
    """Usages of a batch with W fixed: multiplicative steps until the loss settles.

    See :func:`_solve`.
    """
    out = _solve(rt, b, H, W, max_iter, tol)
    assert out is not None
    return out


def join_usage_solve(rt: Runtime, W: torch.Tensor, max_iter: int, tol: float) -> None:
    """Data-parallel: a process without cells in a batch joins the others' loss sums."""
    _solve(rt, None, None, W, max_iter, tol)


def _solve(
    rt: Runtime, b: Batch | None, H: torch.Tensor | None, W: torch.Tensor, max_iter: int, tol: float
) -> torch.Tensor | None:
    """Multiplicative usage steps with W fixed until the loss settles (or ``max_iter``).

    The loss comes with each step (at the usages the step starts from), so the test runs
    every step at no extra cost; ``tol`` bounds the change over 5 steps. What every step
    needs of the data for this ``W`` is computed once (``Loss.prepare``: for the squared
    error one sparse product and the Gram matrix, so a step costs O(cells K^2)). Steps are
    over-relaxed (multiplicative factor ** ``options.relax``), which reaches the optimum
    in fewer steps; should the loss rise, the step is undone and the solve goes on with
    plain multiplicative steps (each of which never increases it).

    Data-parallel: the loss tested is summed over the processes, so all of them stop at
    the same step as one process would with the whole batch; a process without cells in
    the batch passes ``b=None`` and only joins the sums.
    """
    prev, power, H_prev = None, rt.options.relax, None
    H_next = None
    ctx = rt.loss.prepare(b, W) if b is not None else None  # what every step reuses
    for _ in range(max_iter):
        cur = 0.0
        if b is not None:
            assert H is not None
            H_next, cur = rt.loss.h_step_loss(b, H, W, power, ctx)
        cur = rt.comm.sum_scalar(cur)
        if prev is not None and cur > prev and power != 1.0:
            power = 1.0  # (every process sees the same summed losses: same decision)
            H, cur = H_prev, prev
            if b is not None:
                assert H is not None
                H_next, _ = rt.loss.h_step_loss(b, H, W, power, ctx)
        elif prev is not None and 5.0 * abs(prev - cur) <= tol * max(abs(cur), EPS):
            break  # the last step changed the loss by less than tol / 5
        prev = cur
        if b is not None:
            H_prev, H = H, H_next
    return H


def fresh_usage(b: Batch, k: int) -> torch.Tensor:
    """Starting usages for cells never seen: each cell's total spread evenly."""
    lib = row_sums(b).clamp_min(1e-3)
    return (lib[:, None] / k).expand(b.n, k).contiguous()


def update_basis(
    W: torch.Tensor, target: torch.Tensor, gamma: float, floor: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``W**(1-gamma) * target**gamma``, floored, rows renormalised; and the row scale."""
    W_new = target if gamma == 1.0 else W ** (1.0 - gamma) * target**gamma
    W_new = torch.maximum(W_new, floor)
    scale = W_new.sum(1)
    if not torch.all(torch.isfinite(scale)):
        raise FloatingPointError(
            "The fit diverged (non-finite loadings). Try loss='kl' on raw counts, a "
            "smaller alpha, dtype='float64', or a larger w_floor."
        )
    return W_new / scale[:, None], scale


def group_stats(W: torch.Tensor, P: torch.Tensor, N: torch.Tensor, g: Group, contrast: bool):
    """One group's (NUM, DEN) contributions to the update of every row of ``W``.

    ``P``, ``N``: the two parts of the gradient for the rows of ``g.basis(W)``. In the
    contrast the background's parts swap (its term enters with a minus sign); a group
    fitted with some rows of W only (shared topics) contributes nothing to the others.
    """
    if g.is_background and contrast:
        P, N = N, P
    if g.topics is None:
        k = W.shape[0]
        return W * P[:k], N[:k]
    own = W[g.topics]
    n = own.shape[0]
    num, den = torch.zeros_like(W), torch.zeros_like(W)
    num[g.topics] = own * P[:n]
    den[g.topics] = N[:n]
    return num, den


def combine(stats, W: torch.Tensor, coef: tuple[float, float]) -> torch.Tensor:
    """Target basis of the contrastive update from per-group (NUM, DEN, weight) statistics."""
    num = torch.zeros_like(W)
    den = torch.zeros_like(W)
    for (a_num, a_den, weight), c in zip(stats, coef, strict=False):
        if weight <= 0 or c == 0:
            continue
        num.add_(a_num, alpha=c * weight)
        den.add_(a_den, alpha=c * weight)
    return num / den.clamp_min(EPS)


def batch_sizes(rt: Runtime, groups: tuple[Group, Group]) -> tuple[int, int]:
    """Minibatch: cells per step from each group, in proportion to the group sizes."""
    size = rt.batch_size or rt.options.batch_size
    steps = max(1, math.ceil(sum(g.n for g in groups) / size))
    t, b = (max(1, math.ceil(g.n / steps)) for g in groups)
    return t, b


def batches(rt: Runtime, g: Group, size: int, rng: np.random.Generator | None) -> Iterator[Part]:
    """``(cells in the batch, this process's Batch or None)`` for each batch of a pass.

    In a random order (:func:`~bcnmf_sc._engine.rows.epoch_order`) with ``rng``, else in
    order.
    """
    opts = rt.options
    if size >= g.n:  # full batch: build once, keep on the device
        if not g.cache:
            g.cache = list(_parts(rt, g, g.n, None))
        return iter(g.cache)
    order = None
    if rng is not None:
        order = epoch_order(g.n, size, rng, window=opts.window_rows, block=opts.shuffle_block)
    return _parts(rt, g, size, order)


def _parts(rt: Runtime, g: Group, size: int, order: np.ndarray | None) -> Iterator[Part]:
    return iter_parts(
        g.source,
        size,
        dtype=rt.dtype,
        device=rt.device,
        order=order,
        offset=g.offset,
        n_total=g.n,
        window=rt.options.window_rows,
    )


def _whole(rt: Runtime, g: Group) -> Batch:
    """All cells of a group as one batch (full batch: one process, kept on the device)."""
    b = next(batches(rt, g, g.n, None))[1]
    assert b is not None
    return b


def full_epoch(rt: Runtime, pb: Problem, W: torch.Tensor, state: FullBatchState):
    """One full-batch epoch: usage steps, then a W step with a backtracking safeguard.

    The step ``W <- W**(1-g) * T**g`` (``T`` the published multiplicative update) is
    accepted only if the contrastive objective, with background usages re-solved for
    the new W (to a relative tolerance of ``options.solve_tol``), does not increase by
    more than that tolerance; otherwise ``g`` is halved (down to 1/256). So the recorded
    objective never increases beyond the solver's tolerance. With ``alpha=0`` the
    background is skipped. Returns ``(W, (D_target, D_background), stationary)``.
    """
    tgt, bg = pb.groups
    coef, tol = pb.coef, rt.options.solve_tol
    k = W.shape[0]
    contrast = coef[1] > 0
    bx = _whole(rt, tgt)
    by = _whole(rt, bg) if contrast else bx  # (by is not used when alpha=0)
    if contrast and not state.started:  # background solved for the first basis
        bg.H = solve_usage(rt, by, bg.H, bg.basis(W), 3000, tol / 100)
        state.started = True
    ctx = rt.loss.prepare(bx, W)
    for _ in range(rt.inner_iter or 5):
        tgt.H = rt.loss.h_step(bx, tgt.H, W, ctx)
    PX, NX, lx = rt.loss.stats(bx, tgt.H, W)
    parts = [(W * PX, NX, 1.0)]
    ly = 0.0
    if contrast:
        PY, NY, ly = rt.loss.stats(by, bg.H, bg.basis(W))
        parts.append((W * NY[:k], PY[:k], 1.0))
    current = pb.objective((lx, ly))
    T = combine(parts, W, coef)
    gamma = state.gamma
    while gamma >= 1.0 / 256:
        W_new, scale = update_basis(W, T, gamma, pb.floor)
        HX = tgt.H * scale
        lx_new, ly_new, HY = rt.loss.loss(bx, HX, W_new), 0.0, None
        if contrast:
            Wa = bg.basis(W_new)
            HY = solve_usage(rt, by, bg.H * bg.usage_scale(scale), Wa, 500, tol / 100)
            ly_new = rt.loss.loss(by, HY, Wa)
        if pb.objective((lx_new, ly_new)) <= current + tol * abs(current):
            tgt.H = HX
            if HY is not None:  # contrast: the background re-solved for W_new
                bg.H = HY
            state.gamma = min(1.0, gamma * 2.0)
            return W_new, (lx_new, ly_new), False
        gamma *= 0.5
    state.gamma = 1.0 / 256
    return W, (lx, ly), True  # no step descends: a stationary point


def forget_cells(opts: Options, pb: Problem) -> float:
    """Cells over which the minibatch statistics are forgotten (before the epoch's cap).

    The contrast: ``options.forget_cells``. The shared-topic model: the larger of
    ``cells`` and ``share`` of an epoch's cells (``options.forget_cells_shared``), at
    most ``options.forget_cells``.
    """
    if not pb.shared:
        return opts.forget_cells
    cells, share = opts.forget_cells_shared
    return min(opts.forget_cells, max(cells, share * sum(g.n for g in pb.groups)))


def minibatch_epoch(
    rt: Runtime, pb: Problem, W: torch.Tensor, state: MinibatchState, rng: np.random.Generator
):
    """One pass over all cells in minibatches; W is updated after every batch.

    Running statistics follow the online NMF of Lefèvre et al. (2011) as in
    scikit-learn's ``MiniBatchNMF``: ``NUM = rho NUM + W * P`` and ``DEN = rho DEN + N``
    (parts swapped for the background), each scaled to the size of its group, and
    ``W = NUM / DEN`` after every step. Returns ``(W, [D_target, D_background])``.
    """
    groups, coef = pb.groups, pb.coef
    inner = rt.inner_iter or 10
    bg_solve = rt.options.bg_solve
    sizes = batch_sizes(rt, groups)
    steps = max(math.ceil(g.n / b) for g, b in zip(groups, sizes, strict=True))
    # statistics forgotten over one epoch or the horizon of the options, whichever is shorter
    horizon = max(1.0, min(steps, forget_cells(rt.options, pb) / sum(sizes)))
    rho = rt.forget_factor ** (1.0 / horizon)
    if not state.acc:
        state.acc = [Accumulator(torch.zeros_like(W), torch.zeros_like(W)) for _ in groups]
    acc = state.acc
    # the scale moved from W into the usages after every step is applied to all cells
    # lazily: stored usages times `lazy` are the true ones (O(K) per step instead of
    # O(cells K), which at a million cells cost more than the batch itself)
    lazy = [g.H.new_ones(g.H.shape[1]) for g in groups]
    iters = [batches(rt, g, b, rng) for g, b in zip(groups, sizes, strict=True)]
    losses = [0.0, 0.0]
    for _ in range(steps):
        parts: list[list] = []  # (group, NUM and DEN contributions, loss, cells) of this step
        for i, (g, it) in enumerate(zip(groups, iters, strict=True)):
            if g.is_background and coef[1] == 0:
                continue  # alpha=0: the background does not enter the fit
            a = acc[i]
            a.num.mul_(rho)
            a.den.mul_(rho)
            a.cells *= rho
            part = next(it, None)
            if part is None:
                continue
            count, b = part
            Wa = g.basis(W)
            # target: `inner` over-relaxed steps (tol=0: no early stop); background usages
            # must be near their optimum (see full_epoch)
            solve = bg_solve if g.is_background else (inner, 0.0)
            if b is None:  # data-parallel: none of this process's cells in the batch
                join_usage_solve(rt, Wa, *solve)  # join the others' loss sums
                parts.append([i, torch.zeros_like(W), torch.zeros_like(W), 0.0, count])
                continue
            rows = torch.as_tensor(b.rows, device=rt.device)
            Hb = solve_usage(rt, b, g.H[rows] * lazy[i], Wa, *solve)
            g.H[rows] = Hb / lazy[i]
            P, N, loss = rt.loss.stats(b, Hb, Wa)
            num, den = group_stats(W, P, N, g, contrast=not pb.shared)
            parts.append([i, num, den, loss, count])
        if rt.comm.world > 1:
            _sum_parts(rt.comm, parts)
        for i, num, den, loss, count in parts:
            a = acc[i]
            losses[i] += loss
            a.num.add_(num)
            a.den.add_(den)
            a.cells += count
        weights = [g.n / a.cells if a.cells > 0 else 0.0 for a, g in zip(acc, groups, strict=True)]
        stats = [(a.num, a.den, w) for a, w in zip(acc, weights, strict=True)]
        W, scale = update_basis(W, combine(stats, W, coef), 1.0, pb.floor)
        for i, (g, a) in enumerate(zip(groups, acc, strict=True)):
            lazy[i].mul_(g.usage_scale(scale))
            a.den.mul_(scale[:, None])
    for g, f in zip(groups, lazy, strict=True):
        g.H.mul_(f)
    rt.comm.broadcast_(W)  # the same on every process already; keep it exactly so
    return W, losses


def _sum_parts(comm: LocalComm, parts: list[list]) -> None:
    """Data-parallel: sum one step's statistics and losses over processes, in place."""
    flat = torch.cat([torch.cat([p[1].reshape(-1), p[2].reshape(-1)]) for p in parts])
    comm.sum_(flat)
    losses = comm.sum_array(np.array([p[3] for p in parts]))
    size = parts[0][1].numel()
    for j, p in enumerate(parts):
        chunk = flat[2 * j * size : 2 * (j + 1) * size]
        p[1] = chunk[:size].view_as(p[1])
        p[2] = chunk[size:].view_as(p[1])
        p[3] = float(losses[j])
