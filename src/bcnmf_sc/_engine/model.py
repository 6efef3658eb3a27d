"""The background-contrastive NMF estimator (matrices only; no AnnData here)."""

from __future__ import annotations

import math
import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from .._progress import progress_bar
from . import sparse as _sparse
from ._dist import LocalComm, TorchComm
from .init import init_components
from .losses import EPS, get_loss
from .sparse import Batch, InMemoryRows, RowSource, as_csr

__all__ = ["BcNMF", "ConvergenceWarning", "resolve_device"]

try:  # reuse scikit-learn's warning class when it is there, so filters written for it work
    from sklearn.exceptions import ConvergenceWarning
except ImportError:  # pragma: no cover - scikit-learn comes with scanpy

    class ConvergenceWarning(UserWarning):
        """The solver stopped at ``max_epochs`` before reaching ``tol``."""


_SOLVERS = ("auto", "full", "minibatch")
_SCALINGS = ("deviance", "raw")
_INITS = ("auto", "contrastive", "nndsvda", "nndsvd", "random")
_AUTO_MINIBATCH_CELLS = 500
_BATCH_SIZE = 512
_MINIBATCH_WINDOW = 5
# minibatch: background usages are solved per batch to this relative tolerance (at most
# this many steps); with fewer steps W learns to exploit lagging background fits
_BG_SOLVE = (20, 1e-5)
# over-relaxation of the usage solves (see _solve): 20 steps at 1.5 fitted as well as 50
# plain ones (benchmarks/recovery.py K=2, seeds 0-2: objective -1.0149 vs -1.0152, same
# AUROCs and ARI) with 30% fewer passes
_RELAX = 1.5
# usages after training and in transform(): each cell solved until the loss changes by
# less than this (relative, over 5 steps) for the final topics
_FINAL_ITER, _FINAL_TOL = 200, 1e-5
_SOLVE_TOL = 1e-7  # relative tolerance of the background usage solve in full batch
# groups larger than this initialise from a random sample of this many cells (in blocks
# of SHUFFLE_BLOCK consecutive rows), read through the row source like everything else
_INIT_CELLS = 20_000
# minibatch: the running statistics that update W forget over at most this many cells (an
# epoch of smaller data); 100k cells, training objective: 20k reached in 15 epochs what
# forgetting over an epoch reached in 29; 10k was no better than 20k, and a horizon
# doubling every epoch (20k, 40k, ...) lost most of the gain
_FORGET_CELLS = 20_000
_LOCAL = LocalComm()


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"Unknown device {device!r}: use 'auto', 'cpu' or 'cuda'.") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA GPU; use 'auto'.")
    return dev


def _resolve_dtype(dtype) -> torch.dtype:
    table = {"float32": torch.float32, "float64": torch.float64}
    if isinstance(dtype, torch.dtype) and dtype in table.values():
        return dtype
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in table:
        raise ValueError(f"Unknown dtype {dtype!r}: use 'float32' (default) or 'float64'.")
    return table[key]


def _check_matrix(X, name: str) -> sp.csr_matrix:
    if X is None:
        raise ValueError(f"{name} is missing: pass a cells x genes matrix.")
    if isinstance(X, RowSource):
        raise TypeError("pass matrices to fit(); row sources go through fit_source().")
    X = as_csr(X, name=name)
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}.")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no cells (0 rows): both groups need at least one cell.")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has no genes (0 columns).")
    if X.nnz and not np.all(np.isfinite(X.data)):
        raise ValueError(
            f"{name} contains NaN or infinite values; remove or impute them before fitting."
        )
    if X.nnz and X.data.min() < 0:
        raise ValueError(
            f"{name} contains negative values (min {X.data.min():.3g}); NMF needs non-negative "
            "data. Use raw counts (not scaled or centred data)."
        )
    return X


@dataclass
class _Set:
    """One side of the contrast (target or background) as the solver sees it."""

    source: RowSource
    colsum: np.ndarray
    rowsum: np.ndarray  # of this process's rows
    null: float
    weight: float  # multiplies D(set | H W) in the objective
    H: torch.Tensor | None = None  # usages of this process's rows
    profile: torch.Tensor | None = None  # background only: the fixed null-model topic
    cache: list[tuple[int, Batch | None]] = field(default_factory=list)
    offset: int = 0  # data-parallel: this process holds rows offset .. offset + n_local - 1
    n_total: int = 0  # ... of n_total rows (all processes together)

    @property
    def n(self) -> int:
        return self.n_total

    @property
    def n_local(self) -> int:
        return self.source.n_obs


class BcNMF:
    """Background-contrastive non-negative matrix factorization.

    Fits one shared non-negative gene basis ``W`` (``components_``, K x genes) to target
    cells ``X`` and background cells ``Y`` (cells x genes each, same genes) by minimising

    .. math::

        L(W) = a\\,D(X \\mid H_X W) - \\alpha\\, b\\, D(Y \\mid H_Y W + s_Y p_Y^T),
        \\qquad (H_Y, s_Y) = \\arg\\min D(Y \\mid H W + s p_Y^T),

    over ``W, H_X >= 0``: topics are pulled toward structure that explains the target and
    pushed away from structure the background explains as well, so the topics left are
    target-enriched gene programs.

    The background model carries one fixed extra topic, the background's mean gene profile
    ``p_Y`` with free per-cell weights ``s_Y`` (the null model). This bounds the background
    term: however the topics move, the background is never fitted worse than by its null
    model, so ``-alpha D(Y)`` cannot run to minus infinity (the failure of the published
    KL updates) and "explain nothing in the background" stops paying off beyond that point.
    The reported background usages use the K topics alone, like every other cell.

    Parameters
    ----------
    n_components
        Number of topics K.
    alpha
        Strength of the contrast; ``alpha=0`` is plain NMF of the target. With the default
        ``alpha_scaling="deviance"`` the value means the same on every data set (see below):
        ``alpha=1`` is the balance point, where structure that explains the same fraction
        of the target's and the background's deviance (shared cell types) is neutral; above
        1 such structure is penalised and only target-enriched structure pays. The default
        2 removes shared structure reliably on simulated data; values between 1.5 and 3 are
        reasonable, larger values leave topics that explain little of the target (watch
        ``target_term_`` approach 1).
    loss
        ``"kl"`` (generalised KL divergence, i.e. a Poisson likelihood; for counts) or
        ``"frobenius"`` (squared error; for continuous, e.g. log-normalised, data).
    solver
        ``"full"``: full-batch multiplicative updates with a backtracking safeguard that
        makes the recorded objective non-increasing (background usages are re-solved for
        every trial step, which makes it slow: meant for small data and checks).
        ``"minibatch"``: online updates over batches of cells; ``W`` is updated after every
        batch from running statistics (as in scikit-learn's ``MiniBatchNMF``), each batch
        holding target and background cells in proportion to the sizes of the two sets.
        ``"auto"``: ``"minibatch"`` above 500 cells in total, else ``"full"``.
    batch_size
        Cells (target and background together) per minibatch step; default 512.
        Ignored by the full-batch solver.
    max_epochs
        Maximum number of passes over the data (default 400 full-batch, 100 minibatch).
    tol
        Stop when the relative change of the contrastive objective per epoch falls below
        ``tol``. Full batch: ``|L_{t-1} - L_t| / max(|L_t|, a D(X))``. Minibatch, whose
        per-epoch objective is noisy: the improvement of the mean objective of the last
        ``w = 5`` epochs over the mean of the 5 before, per epoch, ``(mean(L_{t-2w+1..t-w})
        - mean(L_{t-w+1..t})) / (w * max(|L_t|, a D(X)))``, so a fit that only fluctuates
        around its floor stops. (The denominator keeps the criterion meaningful when the
        contrastive objective crosses zero.)
    init
        ``"auto"`` (default): ``"contrastive"`` when ``alpha > 0``, else ``"nndsvda"``.
        ``"contrastive"``: the non-negative parts of the leading contrastive principal
        directions of log-normalised target against background (cPCA), so the fit starts
        near the target-enriched structure instead of near the shared cell types (from
        which multiplicative updates escape very slowly). ``"nndsvda"``, ``"nndsvd"``:
        NNDSVD of the target; ``"random"``.
    n_init
        Number of restarts; restarts after the first perturb the initial basis with
        log-normal noise. The restart with the lowest final objective is kept.
    random_state
        Seed (int) or ``numpy.random.Generator``. Same seed, same result on CPU.
    device
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    dtype
        ``"float32"`` (default) or ``"float64"``.
    progress
        Show a tqdm progress bar over epochs.
    alpha_scaling
        ``"deviance"`` (default): ``a = 1 / D0(X)`` and ``b = 1 / D0(Y)``, where ``D0`` is
        the loss of the rank-one null model (each cell's total times the set's mean gene
        profile). Each term is then the fraction of its set's deviance left unexplained, so
        the balance does not depend on cell numbers, sequencing depth or the loss.
        ``"raw"``: ``a = b = 1``, the published objective, where the same ``alpha`` means
        different things on different data.
    w_floor
        KL only: every loading is kept at or above ``w_floor * p_j``, where ``p_j`` is gene
        j's share of all counts (target and background pooled), so zeros do not stick
        under multiplicative updates and no topic predicts a gene at a vanishing rate.
    inner_iter
        Target usage updates per batch before each update of ``W`` (default 5 full-batch,
        10 minibatch, warm-started; the minibatch steps are over-relaxed like the
        background solves, about 8% more per step for a better fit of each batch).
        Background usages are always solved close to their optimum (the contrastive
        objective needs them there: a lagging background fit is something W would learn
        to exploit).
    forget_factor
        Minibatch only: weight of the statistics of one epoch ago (as scikit-learn's
        ``MiniBatchNMF``, whose default is 0.7; 0.1 adapts faster and reached better
        contrastive solutions in our tests); per step the old statistics are multiplied by
        ``forget_factor ** (1 / steps per epoch)``. Above 20,000 cells the horizon is
        20,000 cells instead of one epoch (``forget_factor ** (batch_size / 20,000)`` per
        step): statistics of 20,000 random cells estimate those of all cells well, and
        forgetting on that horizon lets ``W`` make progress within an epoch instead of once
        per epoch (``benchmarks/bench_converge.py``, 100k cells: together with the
        over-relaxed usage steps, 5 epochs now fit better than 15 did before).
    distributed
        ``True``: data-parallel training. This process is one rank of an initialised
        ``torch.distributed`` process group (``gloo`` on CPU, ``nccl`` on GPUs; see
        :mod:`bcnmf_sc.distributed` for a ready entry point launched with ``torchrun``),
        and ``fit`` / ``fit_source`` receive this rank's shard of the cells. Every rank
        calls ``fit`` with the same parameters; the shards in rank order make up the data
        (rank 0 holds the first target cells, rank 1 the next, ...; the same for the
        background; shards may differ in size, even be empty). Every rank draws the same
        global order of cells and works on its own cells of every batch; the statistics
        that update the basis, the losses and the column sums are summed over the ranks, so
        the basis is the same on every rank, while usages stay on the rank that owns the
        cells (``usage_target_`` and ``usage_background_`` are this rank's cells). The
        result equals a single-process fit of the concatenated shards with the same seed up
        to float rounding (the same sums are added in another order). Minibatch solver
        only.

    Attributes
    ----------
    components_ : ndarray (K, genes)
        Gene loadings; non-negative, each row sums to one.
    usage_target_, usage_background_ : ndarray (cells, K)
        Fitted usages; ``usage @ components_`` approximates the counts, so a cell's usage
        sums to about its total count.
    baseline_background_ : ndarray (background cells,)
        The background cells' weights on the fixed null-model topic.
    history_ : dict of lists
        Per epoch: ``epoch``, ``objective``, ``target`` (``a D(X)``), ``background``
        (``b D(Y)``), ``seconds`` (since the start of the restart);
        ``objective = target - alpha * background``.
    objective_ : float
        Contrastive objective at the end, with usages refitted to the final basis.
    n_epochs_, converged_, n_iter_ : int, bool, int
        Passes over the data, whether ``tol`` was reached, and ``n_iter_ == n_epochs_``.
        A fit that stops at ``max_epochs`` warns (:class:`ConvergenceWarning`), except
        with ``tol=0``, which asks for all ``max_epochs``.
    scale_target_, scale_background_ : float
        The weights ``a`` and ``b`` above.
    solver_ : str
        The solver that ran.

    Examples
    --------
    >>> from bcnmf_sc import BcNMF
    >>> model = BcNMF(n_components=5, alpha=1.0).fit(X_target, X_background)  # doctest: +SKIP
    >>> model.components_.shape  # doctest: +SKIP
    (5, 2000)
    """

    _comm = _LOCAL  # what the processes of a data-parallel fit exchange (see _dist.py)

    def __init__(
        self,
        n_components: int = 10,
        *,
        alpha: float = 2.0,
        loss: str = "kl",
        solver: str = "auto",
        batch_size: int | None = None,
        max_epochs: int | None = None,
        tol: float = 1e-5,
        init: str = "auto",
        n_init: int = 1,
        random_state: int | np.random.Generator | None = 0,
        device: str | torch.device = "auto",
        dtype: str = "float32",
        progress: bool = False,
        alpha_scaling: str = "deviance",
        w_floor: float = 1e-2,
        inner_iter: int | None = None,
        forget_factor: float = 0.1,
        distributed: bool = False,
    ):
        self.n_components = n_components
        self.alpha = alpha
        self.loss = loss
        self.solver = solver
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.tol = tol
        self.init = init
        self.n_init = n_init
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.progress = progress
        self.alpha_scaling = alpha_scaling
        self.w_floor = w_floor
        self.inner_iter = inner_iter
        self.forget_factor = forget_factor
        self.distributed = distributed

    # ------------------------------------------------------------------ checks
    def get_params(self) -> dict:
        """Constructor parameters (as scikit-learn's ``get_params``)."""
        keys = (
            "n_components alpha loss solver batch_size max_epochs tol init n_init "
            "random_state device dtype progress alpha_scaling w_floor inner_iter forget_factor "
            "distributed"
        ).split()
        return {k: getattr(self, k) for k in keys}

    def _check_params(self) -> None:
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"n_components must be an integer >= 1, got {k!r}.")
        if not isinstance(self.alpha, numbers.Real) or not math.isfinite(self.alpha):
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}.")
        if self.alpha < 0:
            raise ValueError(
                f"alpha must be >= 0, got {self.alpha}; alpha=0 is plain NMF of the target, "
                "larger values suppress what the background also explains."
            )
        get_loss(self.loss)
        if self.solver not in _SOLVERS:
            raise ValueError(f"Unknown solver {self.solver!r}: use one of {_SOLVERS}.")
        if self.alpha_scaling not in _SCALINGS:
            raise ValueError(
                f"Unknown alpha_scaling {self.alpha_scaling!r}: use one of {_SCALINGS}."
            )
        for name in ("batch_size", "max_epochs", "inner_iter"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, numbers.Integral) or v < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {v!r}.")
        if not isinstance(self.n_init, numbers.Integral) or self.n_init < 1:
            raise ValueError(f"n_init must be a positive integer, got {self.n_init!r}.")
        if not (self.tol >= 0):
            raise ValueError(f"tol must be >= 0, got {self.tol!r}.")
        if not (0 <= self.w_floor < 1):
            raise ValueError(f"w_floor must be in [0, 1), got {self.w_floor!r}.")
        if not (0 < self.forget_factor <= 1):
            raise ValueError(f"forget_factor must be in (0, 1], got {self.forget_factor!r}.")
        _resolve_dtype(self.dtype)
        if self.init not in _INITS:
            raise ValueError(f"Unknown init {self.init!r}: use one of {_INITS}.")

    # --------------------------------------------------------------------- fit
    def fit(self, X_target, X_background) -> BcNMF:
        """Fit to target cells and background cells (cells x genes, same genes).

        Parameters
        ----------
        X_target, X_background
            scipy.sparse (CSR/CSC, any numeric dtype, integer counts included) or dense
            arrays. Never densified.

        Returns
        -------
        self
        """
        self._check_params()
        X = _check_matrix(X_target, "X_target")
        Y = _check_matrix(X_background, "X_background")
        return self.fit_source(InMemoryRows(X), InMemoryRows(Y))

    def fit_source(self, target: RowSource, background: RowSource) -> BcNMF:
        """Fit from two :class:`~bcnmf_sc._engine.sparse.RowSource` objects.

        This is what :meth:`fit` calls, with :class:`~bcnmf_sc._engine.sparse.InMemoryRows`.
        Other sources stream rows from other storage, e.g.
        :class:`~bcnmf_sc._engine.sparse.H5adRows` from an ``.h5ad`` file on disk: the
        solver then never holds more than one window of rows
        (:data:`~bcnmf_sc._engine.sparse.WINDOW_ROWS`), and peak memory is set by the
        window and the model (``O((cells + genes) * K)``: the usages of every cell stay in
        memory), not by the data. Rows are validated as they are read, in one pass.
        ``solver="auto"`` picks ``"minibatch"`` above 500 cells for every source;
        ``"full"`` on more cells needs sources that are in memory.

        Groups of more than 20,000 cells are initialised from a random sample of 20,000 of
        their cells (blocks of consecutive rows), whatever the source.

        With ``distributed=True`` the sources are this process's shards (see the class
        docstring).
        """
        self._check_params()
        if target.shape[1] != background.shape[1]:
            raise ValueError(
                f"Target and background must have the same genes: got {target.shape[1]} and "
                f"{background.shape[1]} columns. Subset both to the same genes in the same order."
            )
        comm = TorchComm() if self.distributed else _LOCAL
        self._comm = comm
        try:
            return self._fit_sources(target, background, comm)
        finally:
            del self._comm

    def _fit_sources(self, target: RowSource, background: RowSource, comm) -> BcNMF:
        sizes = np.array(comm.all_gather([target.n_obs, background.n_obs, target.shape[1]]))
        if np.any(sizes[:, 2] != sizes[0, 2]):
            raise ValueError(f"The processes hold different numbers of genes: {sizes[:, 2]}.")
        offsets = sizes[: comm.rank, :2].sum(0)
        totals = sizes[:, :2].sum(0)
        for name, n in zip(("target", "background"), totals, strict=True):
            if n == 0:
                raise ValueError(f"The {name} group has no cells; both groups need cells.")
        n_t, g = int(totals[0]), target.shape[1]
        k = int(self.n_components)
        if k > min(n_t, g):
            raise ValueError(
                f"n_components={k} is too large for {n_t} target cells x {g} genes; "
                f"use at most {min(n_t, g)}."
            )
        self.device_ = resolve_device(self.device)
        self.dtype_ = _resolve_dtype(self.dtype)
        self.loss_ = get_loss(self.loss)
        total = n_t + int(totals[1])
        solver = self.solver
        if solver == "auto":
            solver = "minibatch" if total > _AUTO_MINIBATCH_CELLS or comm.world > 1 else "full"
        if solver == "full" and comm.world > 1:
            raise ValueError(
                "Data-parallel training (distributed=True) uses the minibatch solver; "
                "use solver='minibatch' or 'auto'."
            )
        if solver == "full" and total > _AUTO_MINIBATCH_CELLS:
            if not (target.in_memory and background.in_memory):
                raise ValueError(
                    "solver='full' holds every cell on the device at once; for rows read "
                    "from disk (e.g. a backed AnnData) use solver='minibatch' or 'auto'."
                )
        self.solver_ = solver

        sets = [
            self._summarise(target, "target", int(offsets[0]), n_t),
            self._summarise(background, "background", int(offsets[1]), int(totals[1])),
        ]
        pooled = sets[0].colsum + sets[1].colsum
        share = pooled / max(pooled.sum(), EPS)
        floor = self.w_floor * share if self.loss == "kl" else np.zeros_like(share)
        self._floor = torch.as_tensor(np.maximum(floor, EPS), dtype=self.dtype_).to(self.device_)
        if self.alpha_scaling == "deviance":
            sets[0].weight = 1.0 / max(sets[0].null, EPS)
            sets[1].weight = 1.0 / max(sets[1].null, EPS)
        self.scale_target_, self.scale_background_ = sets[0].weight, sets[1].weight

        rng = np.random.default_rng(self.random_state)
        with _flush_denormals():
            return self._fit_sets(target, background, sets, rng)

    def _fit_sets(self, target: RowSource, background: RowSource, sets, rng) -> BcNMF:
        init = self.init
        if init == "auto":
            init = "contrastive" if self.alpha > 0 else "nndsvda"
        self.init_ = init
        init_X = init_Y = None
        if init != "random":
            init_X = self._init_sample(sets[0], rng)
        if init == "contrastive":
            init_Y = self._init_sample(sets[1], rng)
        best = None
        for restart in range(int(self.n_init)):
            seed = int(rng.integers(2**31 - 1))
            result = self._fit_once(sets, (init_X, init_Y), seed, perturb=restart > 0)
            if best is None or result["objective"] < best["objective"]:
                best = result
        self._finish(best)
        return self

    def _summarise(self, src: RowSource, name: str, offset: int, n_total: int) -> _Set:
        """Validate, column and row sums (one pass), then the null deviance (a second pass).

        Column sums and deviances are summed over processes; a validation error on one
        process is raised on all of them.
        """
        comm = self._comm
        n, g = src.shape
        colsum = np.zeros(g)
        rowsum = np.zeros(n)
        step = min(_sparse.WINDOW_ROWS, max(1, 2_000_000 // max(g, 1)))
        error = None
        try:
            for idx, B in src.blocks(step):
                B = _check_matrix(B, f"the {name} matrix")
                colsum += np.asarray(B.sum(0, dtype=np.float64)).ravel()
                rowsum[idx] = np.asarray(B.sum(1, dtype=np.float64)).ravel()
        except ValueError as e:
            error = e
        failed = comm.sum_scalar(float(error is not None))
        if error is not None:
            raise error
        if failed:
            raise ValueError(f"The {name} matrix failed validation on another process.")
        colsum = comm.sum_array(colsum)
        if colsum.sum() <= 0:
            raise ValueError(f"The {name} matrix is all zeros; nothing to factorise.")
        null = 0.0
        for _, B in src.blocks(step):
            null += self.loss_.null_deviance(as_csr(B), colsum)
        null = comm.sum_scalar(null)
        return _Set(
            source=src,
            colsum=colsum,
            rowsum=rowsum,
            null=null,
            weight=1.0,
            offset=offset,
            n_total=n_total,
        )

    def _init_sample(self, s: _Set, rng: np.random.Generator) -> sp.csr_matrix:
        """The cells the initialisation sees: all of them, or above ``_INIT_CELLS`` a random
        sample of blocks of consecutive rows (cheap to read from disk), read in windows."""
        n, block = s.n, _sparse.SHUFFLE_BLOCK
        rows = None
        if n > _INIT_CELLS:
            n_blocks = -(-n // block)
            pick = rng.choice(n_blocks, size=min(n_blocks, -(-_INIT_CELLS // block)), replace=False)
            rows = (np.sort(pick)[:, None] * block + np.arange(block)).ravel()
            rows = rows[rows < n]
        lo, hi = s.offset, s.offset + s.n_local
        local = np.arange(s.n_local) if rows is None else rows[(rows >= lo) & (rows < hi)] - lo
        step = _sparse.WINDOW_ROWS
        parts = [
            _sparse._checked_rows(s.source, local[i : i + step]) for i in range(0, len(local), step)
        ]
        if not parts:
            parts = [sp.csr_matrix((0, s.source.shape[1]))]
        parts = [p for ps in self._comm.all_gather(parts) for p in ps]  # in process order
        return as_csr(parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr"))

    # ------------------------------------------------------------ the solver
    def _init_usage(self, s: _Set, rng: np.random.Generator) -> torch.Tensor:
        k = int(self.n_components) + (s.profile is not None)
        # the same random numbers as one draw for all cells; each process keeps its rows
        lo, hi = s.offset, s.offset + s.n_local
        U = np.empty((s.n_local, k))
        step = 65_536
        for start in range(0, s.n, step):
            stop = min(s.n, start + step)
            u = rng.uniform(0.8, 1.2, size=(stop - start, k))
            a, b = max(start, lo), min(stop, hi)
            if a < b:
                U[a - lo : b - lo] = u[a - start : b - start]
        H = np.maximum(s.rowsum, 1e-3)[:, None] / k * U
        return torch.as_tensor(H, dtype=self.dtype_).to(self.device_)

    @staticmethod
    def _basis(s: _Set, W: torch.Tensor) -> torch.Tensor:
        """The basis a set is fitted with: W, plus the null-model profile for the background."""
        return W if s.profile is None else torch.cat([W, s.profile[None, :]])

    @staticmethod
    def _hscale(s: _Set, scale: torch.Tensor) -> torch.Tensor:
        return scale if s.profile is None else torch.cat([scale, scale.new_ones(1)])

    def _batches(self, s: _Set, size: int, rng: np.random.Generator | None):
        """``(cells in the batch, this process's Batch or None)`` for each batch of a pass:
        in a random order (:func:`~bcnmf_sc._engine.sparse.epoch_order`) with ``rng``."""
        if size >= s.n:  # full batch: build once, keep on the device
            if not s.cache:
                s.cache = list(self._parts(s, s.n, None))
            return iter(s.cache)
        order = _sparse.epoch_order(s.n, size, rng) if rng is not None else None
        return self._parts(s, size, order)

    def _parts(self, s: _Set, size: int, order: np.ndarray | None):
        return _sparse.iter_parts(
            s.source,
            size,
            dtype=self.dtype_,
            device=self.device_,
            order=order,
            offset=s.offset,
            n_total=s.n,
        )

    def _update_W(self, W, target, gamma):
        W_new = target if gamma == 1.0 else W ** (1.0 - gamma) * target**gamma
        W_new = torch.maximum(W_new, self._floor)
        scale = W_new.sum(1)
        if not torch.all(torch.isfinite(scale)):
            raise FloatingPointError(
                "The fit diverged (non-finite loadings). Try loss='kl' on raw counts, a "
                "smaller alpha, dtype='float64', or a larger w_floor."
            )
        return W_new / scale[:, None], scale

    def _fit_once(self, sets, init_X, seed: int, perturb: bool) -> dict:
        rng = np.random.default_rng(seed)
        k = int(self.n_components)
        tgt, bg = sets
        init_X, init_Y = init_X
        W0 = init_components(
            init_X if init_X is not None else sp.csr_matrix((1, tgt.source.shape[1])),
            k,
            method=self.init_,
            rng=rng,
            perturb=perturb,
            Y=init_Y,
            alpha=min(float(self.alpha), 1.0),
        )
        W = torch.as_tensor(W0, dtype=self.dtype_).to(self.device_)
        W, _ = self._update_W(W, W, 1.0)
        self._comm.broadcast_(W)
        bg.profile = torch.as_tensor(bg.colsum / bg.colsum.sum(), dtype=self.dtype_).to(
            self.device_
        )
        for s in sets:
            s.H = self._init_usage(s, rng)
        coef = (tgt.weight, float(self.alpha) * bg.weight)
        full = self.solver_ == "full"
        max_epochs = self.max_epochs or (400 if full else 100)

        history = {"epoch": [], "objective": [], "target": [], "background": [], "seconds": []}
        start = time.perf_counter()
        state = {"gamma": 1.0, "acc": None}
        converged, epoch = False, 0
        bar = progress_bar(total=max_epochs, enabled=self.progress, desc="bcNMF", unit="epoch")
        try:
            for epoch in range(1, max_epochs + 1):
                if full:
                    W, losses, stationary = self._full_epoch(sets, W, coef, state)
                else:
                    W, losses = self._minibatch_epoch(sets, W, coef, state, rng)
                    stationary = False
                obj = coef[0] * losses[0] - coef[1] * losses[1]
                if not math.isfinite(obj):
                    raise FloatingPointError(_DIVERGED)
                history["epoch"].append(epoch)
                history["objective"].append(obj)
                history["target"].append(tgt.weight * losses[0])
                # alpha=0: the background is not fitted during training (NaN here); its
                # final term is still computed after the fit
                history["background"].append(bg.weight * losses[1] if coef[1] else math.nan)
                history["seconds"].append(time.perf_counter() - start)
                bar.update(1)
                bar.set_postfix(objective=f"{obj:.5g}")
                window = 1 if full else _MINIBATCH_WINDOW
                scale = max(abs(obj), tgt.weight * losses[0], EPS)
                converged = _settled(history["objective"], window, scale, self.tol)
                if converged or stationary:
                    converged = True
                    break
        finally:
            bar.close()

        # refit the usages to the final basis and evaluate the true objective
        # (the background's null-model topic counts in the objective, but the usages
        # reported for background cells use the topics alone, as for any other cell)
        final = []
        usage_bg = torch.zeros_like(bg.H[:, :k])
        for s, size in zip(sets, (tgt.n, bg.n) if full else self._batch_sizes(sets), strict=True):
            lsum = 0.0
            for _, b in self._batches(s, size, None):
                Wa = self._basis(s, W)
                if b is None:  # none of this process's cells: join the others' tests
                    self._solve(None, None, Wa, _FINAL_ITER, _FINAL_TOL)
                    if s is bg:
                        self._solve(None, None, W, _FINAL_ITER, _FINAL_TOL)
                    continue
                rows = torch.as_tensor(b.rows, device=self.device_)
                Hb = self._solve(b, s.H[rows], Wa, _FINAL_ITER, _FINAL_TOL)
                s.H[rows] = Hb
                lsum += self.loss_.loss(b, Hb, Wa)
                if s is bg:  # from a fresh start, exactly as transform() would
                    usage_bg[rows] = self._solve(
                        b, self._fresh_usage(b, k), W, _FINAL_ITER, _FINAL_TOL
                    )
            final.append(self._comm.sum_scalar(lsum))
            s.cache = []
        objective = coef[0] * final[0] - coef[1] * final[1]
        if not math.isfinite(objective):
            raise FloatingPointError(_DIVERGED)
        return {
            "W": W,
            "H": (tgt.H, usage_bg),
            "baseline": bg.H[:, k],
            "history": history,
            "objective": objective,
            "terms": (tgt.weight * final[0], bg.weight * final[1]),
            "n_epochs": epoch,
            "converged": converged,
        }

    def _batch_sizes(self, sets) -> tuple[int, int]:
        """Minibatch: cells per step from each set, in proportion to the set sizes."""
        steps = max(1, math.ceil(sum(s.n for s in sets) / (self.batch_size or _BATCH_SIZE)))
        return tuple(max(1, math.ceil(s.n / steps)) for s in sets)

    def _combine(self, stats, W, coef):
        """Target basis of the contrastive update from per-set (NUM, DEN, cells) statistics."""
        num = torch.zeros_like(W)
        den = torch.zeros_like(W)
        for (a_num, a_den, weight), c in zip(stats, coef, strict=False):
            if weight <= 0 or c == 0:
                continue
            num.add_(a_num, alpha=c * weight)
            den.add_(a_den, alpha=c * weight)
        return num / den.clamp_min(EPS)

    def _full_epoch(self, sets, W, coef, state):
        """One full-batch epoch: usage steps, then a W step with a backtracking safeguard.

        The step ``W <- W**(1-g) * T**g`` (``T`` the published multiplicative update) is
        accepted only if the contrastive objective, with background usages re-solved for
        the new W (to a relative tolerance of 1e-7), does not increase by more than that
        tolerance; otherwise ``g`` is halved (down to 1/256). So the recorded objective
        never increases beyond the solver's tolerance. With ``alpha=0`` the background is
        skipped.
        """
        tgt, bg = sets
        k = W.shape[0]
        contrast = coef[1] > 0
        inner = self.inner_iter or 5
        bx = next(self._batches(tgt, tgt.n, None))[1]
        by = next(self._batches(bg, bg.n, None))[1] if contrast else None
        if contrast and state.get("started") is None:  # background solved for the first basis
            bg.H = self._solve(by, bg.H, self._basis(bg, W), 3000, _SOLVE_TOL / 100)
            state["started"] = True
        for _ in range(inner):
            tgt.H = self.loss_.h_step(bx, tgt.H, W)
        PX, NX, lx = self.loss_.stats(bx, tgt.H, W)
        parts = [(W * PX, NX, 1.0)]
        ly = 0.0
        if contrast:
            PY, NY, ly = self.loss_.stats(by, bg.H, self._basis(bg, W))
            parts.append((W * NY[:k], PY[:k], 1.0))
        current = coef[0] * lx - coef[1] * ly
        T = self._combine(parts, W, coef)
        gamma = state["gamma"]
        while gamma >= 1.0 / 256:
            W_new, scale = self._update_W(W, T, gamma)
            HX = tgt.H * scale
            lx_new, ly_new, HY = self.loss_.loss(bx, HX, W_new), 0.0, None
            if contrast:
                Wa = self._basis(bg, W_new)
                HY = self._solve(by, bg.H * self._hscale(bg, scale), Wa, 500, _SOLVE_TOL / 100)
                ly_new = self.loss_.loss(by, HY, Wa)
            if coef[0] * lx_new - coef[1] * ly_new <= current + _SOLVE_TOL * abs(current):
                tgt.H = HX
                if contrast:
                    bg.H = HY
                state["gamma"] = min(1.0, gamma * 2.0)
                return W_new, (lx_new, ly_new), False
            gamma *= 0.5
        state["gamma"] = 1.0 / 256
        return W, (lx, ly), True  # no step descends: a stationary point

    def _minibatch_epoch(self, sets, W, coef, state, rng):
        """One pass over all cells in minibatches; W is updated after every batch.

        Running statistics follow the online NMF of Lefèvre et al. (2011) as in
        scikit-learn's ``MiniBatchNMF``: ``NUM = rho NUM + W * P`` and ``DEN = rho DEN + N``
        (parts swapped for the background), each scaled to the size of its set, and
        ``W = NUM / DEN`` after every step.
        """
        k = W.shape[0]
        inner = self.inner_iter or 10
        sizes = self._batch_sizes(sets)
        steps = max(math.ceil(s.n / b) for s, b in zip(sets, sizes, strict=True))
        # statistics forgotten over one epoch or _FORGET_CELLS cells, whichever is shorter
        horizon = max(1.0, min(steps, _FORGET_CELLS / sum(sizes)))
        rho = self.forget_factor ** (1.0 / horizon)
        if state["acc"] is None:
            state["acc"] = [[torch.zeros_like(W), torch.zeros_like(W), 0.0] for _ in sets]
        acc = state["acc"]
        # the scale moved from W into the usages after every step is applied to all cells
        # lazily: stored usages times `lazy` are the true ones (O(K) per step instead of
        # O(cells K), which at a million cells cost more than the batch itself)
        lazy = [s.H.new_ones(s.H.shape[1]) for s in sets]
        iters = [self._batches(s, b, rng) for s, b in zip(sets, sizes, strict=True)]
        losses = [0.0, 0.0]
        for _ in range(steps):
            parts = []  # (set, NUM and DEN contributions, loss, cells) of this step
            for i, (s, it) in enumerate(zip(sets, iters, strict=True)):
                if i == 1 and coef[1] == 0:
                    continue  # alpha=0: the background does not enter the fit
                a = acc[i]
                a[0].mul_(rho)
                a[1].mul_(rho)
                a[2] *= rho
                part = next(it, None)
                if part is None:
                    continue
                count, b = part
                Wa = self._basis(s, W)
                if b is None:  # data-parallel: none of this process's cells in the batch
                    # join the other processes' loss sums of the usage solve
                    self._solve(None, None, Wa, *((inner, 0.0) if i == 0 else _BG_SOLVE))
                    parts.append([i, torch.zeros_like(W), torch.zeros_like(W), 0.0, count])
                    continue
                rows = torch.as_tensor(b.rows, device=self.device_)
                Hb = s.H[rows] * lazy[i]
                if i == 0:  # `inner` over-relaxed steps (tol=0: no early stop)
                    Hb = self._solve(b, Hb, Wa, inner, 0.0)
                else:  # background usages must be near their optimum (see _full_epoch)
                    Hb = self._solve(b, Hb, Wa, *_BG_SOLVE)
                s.H[rows] = Hb / lazy[i]
                P, N, loss = self.loss_.stats(b, Hb, Wa)
                num, den = (W * P[:k], N[:k]) if i == 0 else (W * N[:k], P[:k])
                parts.append([i, num, den, loss, count])
            if self._comm.world > 1:
                self._sum_parts(parts)
            for i, num, den, loss, count in parts:
                a = acc[i]
                losses[i] += loss
                a[0].add_(num)
                a[1].add_(den)
                a[2] += count
            weights = [s.n / a[2] if a[2] > 0 else 0.0 for a, s in zip(acc, sets, strict=True)]
            T = self._combine([(a[0], a[1], w) for a, w in zip(acc, weights, strict=True)], W, coef)
            W, scale = self._update_W(W, T, 1.0)
            for i, (s, a) in enumerate(zip(sets, acc, strict=True)):
                lazy[i].mul_(self._hscale(s, scale))
                a[1].mul_(scale[:, None])
        for s, f in zip(sets, lazy, strict=True):
            s.H.mul_(f)
        self._comm.broadcast_(W)  # the same on every process already; keep it exactly so
        return W, losses

    def _sum_parts(self, parts: list) -> None:
        """Data-parallel: sum one step's statistics and losses over processes, in place."""
        flat = torch.cat([torch.cat([p[1].reshape(-1), p[2].reshape(-1)]) for p in parts])
        self._comm.sum_(flat)
        losses = self._comm.sum_array(np.array([p[3] for p in parts]))
        size = parts[0][1].numel()
        for j, p in enumerate(parts):
            chunk = flat[2 * j * size : 2 * (j + 1) * size]
            p[1] = chunk[:size].view_as(p[1])
            p[2] = chunk[size:].view_as(p[1])
            p[3] = float(losses[j])

    @staticmethod
    def _fresh_usage(b: Batch, k: int) -> torch.Tensor:
        """Starting usages for cells never seen: each cell's total spread evenly."""
        lib = _row_sums(b).clamp_min(1e-3)
        return (lib[:, None] / k).expand(b.n, k).contiguous()

    def _solve(self, b: Batch | None, H, W: torch.Tensor, max_iter: int, tol: float):
        """Usages of a batch with W fixed: multiplicative steps until the loss settles.

        Data-parallel: the loss tested is summed over the processes, so all of them stop
        at the same step as one process would with the whole batch; a process without
        cells in the batch passes ``b=None`` and only joins the sums.
        """
        # the loss comes with each step (at the usages the step starts from), so the test
        # runs every step at no extra cost; ``tol`` bounds the change over 5 steps.
        # Steps are over-relaxed (multiplicative factor ** _RELAX), which reaches the
        # optimum in fewer steps; should the loss rise, the step is undone and the solve
        # goes on with plain multiplicative steps (each of which never increases it).
        prev, power, H_prev = None, _RELAX, None
        for _ in range(max_iter):
            cur = 0.0
            if b is not None:
                H_next, cur = self.loss_.h_step_loss(b, H, W, power)
            cur = self._comm.sum_scalar(cur)
            if prev is not None and cur > prev and power != 1.0:
                power = 1.0  # (every process sees the same summed losses: same decision)
                H, cur = H_prev, prev
                if b is not None:
                    H_next, _ = self.loss_.h_step_loss(b, H, W, power)
            elif prev is not None and 5.0 * abs(prev - cur) <= tol * max(abs(cur), EPS):
                break  # the last step changed the loss by less than tol / 5
            prev = cur
            if b is not None:
                H_prev, H = H, H_next
        return H

    def _finish(self, best: dict) -> None:
        self.components_ = best["W"].double().cpu().numpy()
        self.usage_target_ = best["H"][0].double().cpu().numpy()
        self.usage_background_ = best["H"][1].double().cpu().numpy()
        self.baseline_background_ = best["baseline"].double().cpu().numpy()
        self.history_ = best["history"]
        self.objective_ = best["objective"]
        self.target_term_, self.background_term_ = best["terms"]
        self.n_epochs_ = self.n_iter_ = best["n_epochs"]
        self.converged_ = best["converged"]
        self.n_features_in_ = self.components_.shape[1]
        if not self.converged_ and self.tol > 0:  # tol=0 asks for all max_epochs
            warnings.warn(
                f"BcNMF stopped after max_epochs={self.n_epochs_} epochs before the objective "
                f"changed by less than tol={self.tol}; increase max_epochs or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._check_collapse()

    def _check_collapse(self) -> None:
        tot = np.concatenate([self.usage_target_, self.usage_background_]).sum(0)
        tot = self._comm.sum_array(tot)
        dead = np.flatnonzero(tot <= 1e-8 * max(tot.max(), EPS))
        if len(dead):
            warnings.warn(
                f"Topics {dead.tolist()} have (almost) no usage in any cell: the fit collapsed "
                "them. Use fewer topics, a smaller alpha, or more restarts (n_init).",
                RuntimeWarning,
                stacklevel=3,
            )
        zero_cells = np.mean(self.usage_target_.sum(1) <= 0) if len(self.usage_target_) else 0.0
        if self._comm.world > 1:
            zeros, cells = self._comm.sum_array(
                np.array([np.sum(self.usage_target_.sum(1) <= 0), len(self.usage_target_)])
            )
            zero_cells = zeros / max(cells, 1.0)
        if zero_cells > 0.01:
            warnings.warn(
                f"{zero_cells:.1%} of target cells have all-zero usage; the fit may have "
                "collapsed (try a smaller alpha).",
                RuntimeWarning,
                stacklevel=3,
            )

    # --------------------------------------------------------------- transform
    @classmethod
    def from_components(cls, components, **params) -> BcNMF:
        """A model that only projects: fixed ``components`` (K x genes), no fit.

        Rows are renormalised to sum to one. ``params`` are constructor parameters
        (``loss``, ``device``, ``dtype`` matter for :meth:`transform`).
        """
        W = np.asarray(components, dtype=np.float64)
        if W.ndim != 2 or W.shape[0] < 1 or np.any(W < 0) or not np.all(np.isfinite(W)):
            raise ValueError("components must be a finite, non-negative K x genes matrix.")
        sums = W.sum(1, keepdims=True)
        if np.any(sums <= 0):
            raise ValueError("Every component needs at least one positive loading.")
        model = cls(n_components=W.shape[0], **params)
        model._check_params()
        model.components_ = W / sums
        model.n_features_in_ = W.shape[1]
        return model

    def transform(self, X, *, batch_size: int = 4096) -> np.ndarray:
        """Usages of new cells (cells x K) with the fitted components fixed."""
        self._check_fitted()
        X = _check_matrix(X, "X")
        if X.shape[1] != self.components_.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} genes but the model was fitted on "
                f"{self.components_.shape[1]}; use the same genes in the same order."
            )
        return self.transform_source(InMemoryRows(X), batch_size=batch_size)

    def transform_source(self, source: RowSource, *, batch_size: int = 4096) -> np.ndarray:
        """Usages for the rows of a :class:`RowSource` (see :meth:`transform`)."""
        self._check_fitted()
        device = resolve_device(self.device)
        dtype = _resolve_dtype(self.dtype)
        loss = get_loss(self.loss)
        self.loss_ = loss
        self.dtype_, self.device_ = dtype, device
        W = torch.as_tensor(self.components_, dtype=dtype).to(device)
        out = np.zeros((source.n_obs, W.shape[0]))
        with _flush_denormals():
            for b in source.batches(batch_size, dtype=dtype, device=device):
                H = self._solve(b, self._fresh_usage(b, W.shape[0]), W, _FINAL_ITER, _FINAL_TOL)
                out[b.rows] = H.double().cpu().numpy()
        return out

    def fit_transform(self, X_target, X_background) -> np.ndarray:
        """Fit and return the target usages."""
        return self.fit(X_target, X_background).usage_target_

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise RuntimeError("This BcNMF instance is not fitted yet; call fit() first.")

    def __repr__(self) -> str:
        return f"BcNMF(n_components={self.n_components}, alpha={self.alpha}, loss={self.loss!r})"


_DIVERGED = (
    "The fit diverged (non-finite objective). Check the input for extreme values, use "
    "dtype='float64', a smaller alpha or a larger w_floor."
)


def _settled(past: list[float], window: int, scale: float, tol: float) -> bool:
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


def _row_sums(b: Batch) -> torch.Tensor:
    """Total count of each row of a batch."""
    crow = b.X.crow_indices().long()
    rows = torch.repeat_interleave(torch.arange(b.n, device=crow.device), crow.diff())
    return torch.zeros(b.n, dtype=b.values.dtype, device=crow.device).index_add_(0, rows, b.values)


class _flush_denormals:
    """Flush denormal floats to zero on CPU while fitting.

    Multiplicative updates drive unused entries towards zero; once they are denormal, CPU
    arithmetic on them is up to 100x slower. Flushing changes nothing a user can see
    (values below 1e-38 in float32) and is restored afterwards.
    """

    def __enter__(self):
        self._ok = torch.set_flush_denormal(True)
        return self

    def __exit__(self, *exc):
        if self._ok:
            torch.set_flush_denormal(False)
        return False
