"""From estimator parameters and two row sources to what the solver runs on.

:func:`prepare` decides everything a fit decides once, before its first epoch: the
shards' sizes and offsets, the solver, device and dtype, the two
:class:`~bcnmf_sc._engine.problem.Group` summaries, their weights, the loading floor and
the initialisation method. It returns the :class:`~bcnmf_sc._engine.solver.Runtime`,
the :class:`~bcnmf_sc._engine.problem.Problem` and the
:class:`~bcnmf_sc._engine.training.Schedule`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ._dist import LocalComm
from ._validation import resolve_device, resolve_dtype
from .losses import EPS, get_loss
from .options import Options
from .problem import (
    Problem,
    group_weights,
    null_profile,
    resolve_model,
    resolve_null_topic,
    resolve_scaling,
    summarise,
)
from .rows import RowSource
from .solver import Runtime
from .training import Schedule

__all__ = ["choose_solver", "prepare", "resolve_init"]


def resolve_init(
    init: str, alpha: float, loss: str = "kl", n_shared: int = 0, wide: bool = False
) -> str:
    """``"auto"`` -> ``"contrastive"`` for counts (KL) with ``alpha > 0``, else ``"nndsvda"``.

    The contrastive start is built from log-normalised counts; for continuous data
    (squared error) NNDSVDa of the target starts closer to what the contrast finds. The
    shared-topic model (``n_shared > 0``) starts from random loadings, or on ``wide``
    data (more than ``Options.auto_nndsvda_genes`` genes) from NNDSVDa of the target with
    its most target-enriched components as the target topics
    (:func:`~bcnmf_sc._engine.init.order_by_enrichment`).
    """
    if init == "auto":
        if n_shared:
            return "nndsvda" if wide else "random"
        return "contrastive" if alpha > 0 and loss == "kl" else "nndsvda"
    return init


def choose_solver(solver: str, total: int, world: int, in_memory: bool, options: Options) -> str:
    """The solver that runs (``"auto"`` resolved), or an error for an impossible choice."""
    if solver == "auto":
        big = total > options.auto_minibatch_cells
        solver = "minibatch" if big or world > 1 else "full"
    if solver == "full" and world > 1:
        raise ValueError(
            "Data-parallel training (distributed=True) uses the minibatch solver; "
            "use solver='minibatch' or 'auto'."
        )
    if solver == "full" and total > options.auto_minibatch_cells and not in_memory:
        raise ValueError(
            "solver='full' holds every cell on the device at once; for rows read "
            "from disk (e.g. a backed AnnData) use solver='minibatch' or 'auto'."
        )
    return solver


def _shards(comm: LocalComm, target: RowSource, background: RowSource):
    """Offsets and totals of the two groups over the processes (one process: 0, n)."""
    if target.shape[1] != background.shape[1]:
        raise ValueError(
            f"Target and background must have the same genes: got {target.shape[1]} and "
            f"{background.shape[1]} columns. Subset both to the same genes in the same order."
        )
    sizes = np.array(comm.all_gather([target.n_obs, background.n_obs, target.shape[1]]))
    if np.any(sizes[:, 2] != sizes[0, 2]):
        raise ValueError(f"The processes hold different numbers of genes: {sizes[:, 2]}.")
    offsets = sizes[: comm.rank, :2].sum(0)
    totals = sizes[:, :2].sum(0)
    for name, n in zip(("target", "background"), totals, strict=True):
        if n == 0:
            raise ValueError(f"The {name} group has no cells; both groups need cells.")
    return [int(v) for v in offsets], [int(v) for v in totals]


def prepare(
    params: Mapping[str, Any],
    target: RowSource,
    background: RowSource,
    comm: LocalComm,
    options: Options,
) -> tuple[Runtime, Problem, Schedule, str]:
    """Runtime, problem and schedule of a fit with estimator ``params``; and the solver."""
    offsets, totals = _shards(comm, target, background)
    n_t, g = totals[0], target.shape[1]
    k = int(params["n_components"])
    if k > min(n_t, g):
        raise ValueError(
            f"n_components={k} is too large for {n_t} target cells x {g} genes; "
            f"use at most {min(n_t, g)}."
        )
    n_shared, alpha = resolve_model(params["n_shared"], params["alpha"], params["loss"])
    in_memory = target.in_memory and background.in_memory
    if n_shared and params["solver"] == "full":
        raise ValueError(
            "The shared-topic model (n_shared > 0, the default for counts) is trained by "
            "the minibatch solver; use solver='minibatch' or 'auto', or n_shared=0 (the "
            "contrastive model) for the full-batch solver."
        )
    solver = "minibatch" if n_shared else params["solver"]
    solver = choose_solver(solver, sum(totals), comm.world, in_memory, options)
    rt = Runtime(
        loss=get_loss(params["loss"]),
        comm=comm,
        dtype=resolve_dtype(params["dtype"]),
        device=resolve_device(params["device"]),
        options=options,
        inner_iter=params["inner_iter"],
        forget_factor=params["forget_factor"],
        batch_size=params["batch_size"],
    )
    win = options.window_rows
    tgt = summarise(
        target, "target", rt.loss, comm=comm, window=win, offset=offsets[0], n_total=n_t
    )
    bg = summarise(
        background,
        "background",
        rt.loss,
        comm=comm,
        window=win,
        offset=offsets[1],
        n_total=totals[1],
    )
    pooled = tgt.colsum + bg.colsum
    share = pooled / max(pooled.sum(), EPS)
    floor = params["w_floor"] * share if params["loss"] == "kl" else np.zeros_like(share)
    scaling = resolve_scaling(params["alpha_scaling"], params["loss"])
    tgt.weight, bg.weight = group_weights((tgt.null, bg.null), scaling, (tgt.n, bg.n))
    if n_shared:  # the background is fitted with the shared topics alone, rows k..k+S-1
        bg.topics = slice(k, k + n_shared)
    elif resolve_null_topic(params["null_topic"], params["loss"]) == "background":
        bg.profile = torch.as_tensor(null_profile(bg.colsum), dtype=rt.dtype).to(rt.device)
    pb = Problem(
        target=tgt,
        background=bg,
        alpha=0.0 if alpha is None else alpha,
        floor=torch.as_tensor(np.maximum(floor, EPS), dtype=rt.dtype).to(rt.device),
        scaling=scaling,
    )
    full = solver == "full"
    plan = Schedule(
        n_components=k + n_shared,
        init=resolve_init(
            params["init"], alpha or 0.0, params["loss"], n_shared, g > options.auto_nndsvda_genes
        ),
        full=full,
        max_epochs=params["max_epochs"] or (400 if full else 200 if n_shared else 100),
        tol=(5e-5 if n_shared else 1e-5) if params["tol"] is None else float(params["tol"]),
        init_alpha=min(alpha or 0.0, 1.0),
        progress=bool(params["progress"]),
    )
    return rt, pb, plan, solver
