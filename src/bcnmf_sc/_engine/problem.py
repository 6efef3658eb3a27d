"""The problem a fit solves: two groups of cells with explicit roles, and its objective.

The contrastive objective is ``L = a D(X | H_X W) - alpha b D(Y | H_Y W + s_Y p_Y^T)``
(see :class:`~bcnmf_sc._engine.model.BcNMF`). Everything that defines it lives here, once:
each :class:`Group`'s data summaries (column sums, the null model's loss), its weight
(``a`` or ``b``: :func:`group_weights`), the background's null-model topic
(:meth:`Group.basis`) and the objective itself (:func:`objective`). The solver, the
consensus of restarts and the sweep all use these functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from ._dist import LocalComm
from ._validation import check_matrix
from .losses import EPS, Loss
from .options import get_options
from .rows import RowSource
from .sparse import Batch, as_csr, make_batch

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_SHARED",
    "Group",
    "block_rows",
    "Problem",
    "Role",
    "deviance_terms",
    "group_weights",
    "objective",
    "resolve_model",
    "summarise",
]

Role = Literal["target", "background"]


@dataclass
class Group:
    """One side of the contrast as the solver sees it.

    ``role`` says which side. With ``null_topic="background"`` the background's basis
    carries one extra, fixed topic (``profile``, its mean gene profile; the null model);
    the target's never does.
    """

    role: Role
    source: RowSource
    colsum: np.ndarray  # over all processes
    rowsum: np.ndarray  # of this process's rows
    null: float  # D of the rank-one null model, over all processes
    zero: float = math.inf  # D of the model that predicts nothing (inf for KL with counts)
    weight: float = 1.0  # multiplies D(group | H W) in the objective: a or b
    offset: int = 0  # data-parallel: this process holds rows offset .. offset + n_local - 1
    n_total: int = 0  # ... of n_total rows (all processes together)
    profile: torch.Tensor | None = None  # the null-model topic (background, or None)
    topics: slice | None = None  # the rows of W this group is fitted with (None: all)
    # usages of this process's rows (K columns, K + 1 for the background; set per restart)
    H: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    cache: list[tuple[int, Batch | None]] = field(default_factory=list)

    @property
    def is_background(self) -> bool:
        return self.role == "background"

    @property
    def n(self) -> int:
        return self.n_total

    @property
    def n_local(self) -> int:
        return self.source.n_obs

    def basis(self, W: torch.Tensor) -> torch.Tensor:
        """The basis this group is fitted with: its rows of W, plus its null-model topic."""
        if self.topics is not None:
            W = W[self.topics]
        if self.profile is None:
            return W
        return torch.cat([W, self.profile[None, :]])

    def width(self, k: int) -> int:
        """Columns of this group's usages when W has ``k`` rows."""
        used = k if self.topics is None else len(range(k)[self.topics])
        return used + (self.profile is not None)

    def usage_scale(self, scale: torch.Tensor) -> torch.Tensor:
        """The factor usages take when W's rows are divided by ``scale``."""
        if self.topics is not None:
            scale = scale[self.topics]
        return scale if self.profile is None else torch.cat([scale, scale.new_ones(1)])


@dataclass
class Problem:
    """Target and background groups, the contrast strength and the loading floor."""

    target: Group
    background: Group
    alpha: float
    floor: torch.Tensor  # every loading stays at or above this (per gene)
    scaling: str = "deviance"  # how the groups' weights were set (resolved alpha_scaling)

    def trivial_target(self) -> tuple[float, str]:
        """The target's loss when the topics explain nothing, and what that model is.

        With the background's null topic the contrast is measured against the null model
        (the target term is then at most about 1 for topics that explain something);
        without it, against the model that predicts nothing where that loss is finite
        (squared error), else against the null model.
        """
        tgt = self.target
        if self.background.profile is None and math.isfinite(tgt.zero):
            return tgt.zero, "a model that predicts nothing"
        return tgt.null, "the null model"

    @property
    def null_topic(self) -> str:
        """``"background"`` when the background is fitted with its null topic, else ``"none"``."""
        return "none" if self.background.profile is None else "background"

    @property
    def groups(self) -> tuple[Group, Group]:
        return self.target, self.background

    @property
    def shared(self) -> bool:
        """The shared-topic model (``n_shared > 0``): both terms enter with a plus sign."""
        return self.background.topics is not None

    @property
    def coef(self) -> tuple[float, float]:
        """Weights of the two losses: ``(a, alpha * b)``, or ``(a, b)`` with shared topics."""
        b = self.background.weight
        return self.target.weight, b if self.shared else float(self.alpha) * b

    def objective(self, losses: tuple[float, float] | list[float]) -> float:
        """The objective from the two losses ``D(X | ...)`` and ``D(Y | ...)``."""
        return objective(losses, self.coef, shared=self.shared)


def objective(losses, coef, *, shared: bool = False) -> float:
    """``coef[0] * D_target - coef[1] * D_background``: the contrastive objective.

    With shared topics (``shared=True``) the two terms are added: a joint fit in which
    the background may use only the shared topics.
    """
    sign = 1.0 if shared else -1.0
    return coef[0] * losses[0] + sign * coef[1] * losses[1]


#: The contrast's ``alpha`` when none is given (``n_shared=0``).
DEFAULT_ALPHA = 2.0
#: Shared topics of ``n_shared="auto"`` (counts, no ``alpha`` given). On the recovery
#: suite 8 were too few for a family with 12 shared structures; 16 and 24 agreed.
DEFAULT_SHARED = 16


def resolve_model(n_shared: int | str, alpha: float | None, loss: str) -> tuple[int, float | None]:
    """The model a fit runs: ``(n_shared, alpha)``, ``"auto"`` and ``None`` resolved.

    ``n_shared="auto"``: the shared-topic model with :data:`DEFAULT_SHARED` shared topics
    for counts (``loss="kl"``) when no ``alpha`` is given; the contrast otherwise (an
    ``alpha`` asks for the contrast, whose strength it is; for ``loss="frobenius"`` the
    contrast reproduces the published image demo). ``alpha=None``: :data:`DEFAULT_ALPHA`
    for the contrast, ``None`` for the shared-topic model, which has no alpha. An
    ``alpha`` with ``n_shared > 0`` is an error.
    """
    if n_shared == "auto":
        n_shared = DEFAULT_SHARED if loss == "kl" and alpha is None else 0
    n_shared = int(n_shared)
    if n_shared:
        if alpha is not None:
            raise ValueError(
                f"alpha={alpha} has no effect in the shared-topic model (n_shared="
                f"{n_shared}), which minimises both groups' losses; alpha is the strength "
                "of the contrastive model: pass n_shared=0 with it, or drop alpha."
            )
        return n_shared, None
    return 0, DEFAULT_ALPHA if alpha is None else float(alpha)


def resolve_scaling(alpha_scaling: str, loss: str) -> str:
    """``"auto"`` -> ``"deviance"`` for the KL loss, ``"cells"`` for the squared error."""
    if alpha_scaling == "auto":
        return "deviance" if loss == "kl" else "cells"
    return alpha_scaling


def resolve_null_topic(null_topic: str, loss: str) -> str:
    """``"auto"`` -> ``"background"`` for the KL loss, ``"none"`` for the squared error.

    The KL background term is unbounded without the null topic (the basis can predict
    background-only genes at a vanishing rate); the squared error's is bounded by
    ``||Y||^2 / 2`` already, and there the null topic makes the background's mean free
    for the topics (see docs/method.md, "Why the image demo failed").
    """
    if null_topic == "auto":
        return "background" if loss == "kl" else "none"
    return null_topic


def group_weights(
    nulls: tuple[float, float], alpha_scaling: str, sizes: tuple[int, int] = (1, 1)
) -> tuple[float, float]:
    """``(a, b)``, the weights of the two terms, for a resolved ``alpha_scaling``.

    ``"deviance"``: ``1 / D0`` of each group (``nulls``); ``"cells"``: ``1 / cells`` of
    each group (``sizes``); ``"raw"``: ``(1, 1)``.
    """
    if alpha_scaling == "deviance":
        return 1.0 / max(nulls[0], EPS), 1.0 / max(nulls[1], EPS)
    if alpha_scaling == "cells":
        return 1.0 / max(sizes[0], 1), 1.0 / max(sizes[1], 1)
    return 1.0, 1.0


def null_profile(colsum: np.ndarray) -> np.ndarray:
    """The null model's gene profile: column sums as shares."""
    return colsum / colsum.sum()


def block_rows(n_genes: int, window: int | None = None) -> int:
    """Rows per block when a source is read in order (validation, sums): about 2M values.

    At most ``window`` rows (default the option ``window_rows``).
    """
    window = get_options().window_rows if window is None else window
    return min(window, max(1, 2_000_000 // max(n_genes, 1)))


def summarise(
    src: RowSource,
    role: Role,
    loss: Loss,
    *,
    comm: LocalComm,
    window: int,
    offset: int = 0,
    n_total: int | None = None,
) -> Group:
    """Validate, column and row sums (one pass), then the null deviance (a second pass).

    Column sums and deviances are summed over processes; a validation error on one
    process is raised on all of them.
    """
    n, g = src.shape
    colsum, rowsum = np.zeros(g), np.zeros(n)
    step = block_rows(g, window)
    error = None
    try:
        for idx, B in src.blocks(step):
            B = check_matrix(B, f"the {role} matrix")
            colsum += np.asarray(B.sum(0, dtype=np.float64)).ravel()
            rowsum[idx] = np.asarray(B.sum(1, dtype=np.float64)).ravel()
    except ValueError as e:
        error = e
    failed = comm.sum_scalar(float(error is not None))
    if error is not None:
        raise error
    if failed:
        raise ValueError(f"The {role} matrix failed validation on another process.")
    colsum = comm.sum_array(colsum)
    if colsum.sum() <= 0:
        raise ValueError(f"The {role} matrix is all zeros; nothing to factorise.")
    null = zero = 0.0
    for _, B in src.blocks(step):
        B = as_csr(B)
        null += loss.null_deviance(B, colsum)
        zero += loss.zero_loss(B)
    null, zero = comm.sum_scalar(null), comm.sum_scalar(zero)
    return Group(
        role=role,
        source=src,
        colsum=colsum,
        rowsum=rowsum,
        null=null,
        zero=zero,
        offset=offset,
        n_total=n if n_total is None else int(n_total),
    )


def deviance_terms(
    src: RowSource, usage: np.ndarray, W: np.ndarray, loss: Loss, colsum: np.ndarray
) -> tuple[float, float]:
    """``D(rows | usage @ W)`` and the null model's loss (column sums ``colsum``), float64.

    The same losses the solver minimises, evaluated block by block for given usages.
    """
    Wt = torch.as_tensor(np.asarray(W, dtype=np.float64))
    value = null = 0.0
    for idx, block in src.blocks(block_rows(src.shape[1])):
        X = sp.csr_matrix(block, dtype=np.float64)
        b = make_batch(X, idx, dtype=torch.float64, device=torch.device("cpu"))
        H = torch.as_tensor(np.asarray(usage[idx], dtype=np.float64))
        value += loss.loss(b, H, Wt)
        null += loss.null_deviance(X, np.asarray(colsum, dtype=np.float64))
    return value, null
