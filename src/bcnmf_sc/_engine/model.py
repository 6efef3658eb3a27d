"""The estimator alone: parameters (a declarative table), fitted attributes, transform.

Set-up is :mod:`~bcnmf_sc._engine.setup`, restarts :mod:`~bcnmf_sc._engine.training`,
steps :mod:`~bcnmf_sc._engine.solver`, the objective :mod:`~bcnmf_sc._engine.problem`.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import torch

from . import _validation as v
from ._dist import LocalComm, TorchComm
from ._validation import ConvergenceWarning, check_matrix, resolve_device
from .evaluate import score_components
from .options import get_options
from .problem import resolve_model
from .projection import check_genes, normalised_components, projection_runtime
from .rows import InMemoryRows, RowSource
from .setup import prepare
from .threads import N_JOBS_MESSAGE, torch_threads, valid_n_jobs
from .training import (
    Restart,
    collapse_messages,
    fit_restarts,
    fitted_attributes,
    objective_messages,
    project,
    settled,
)

__all__ = ["BcNMF", "ConvergenceWarning", "resolve_device"]

_settled = settled  # backward compatibility (tests import it from here)


class BcNMF:
    r"""Background-contrastive non-negative matrix factorization.

    Fits one shared non-negative gene basis ``W`` (``components_``, K x genes) to target
    cells ``X`` and background cells ``Y`` (cells x genes each, same genes) by minimising

    .. math::

        L(W) = a\,D(X \mid H_X W) - \alpha\, b\, D(Y \mid H_Y W + s_Y p_Y^T),
        \qquad (H_Y, s_Y) = \arg\min D(Y \mid H W + s p_Y^T),

    over ``W, H_X >= 0``: topics are pulled toward structure that explains the target and
    pushed away from structure the background explains as well, so the topics left are
    target-enriched gene programs.

    For the KL loss the background model carries one fixed extra topic, the background's
    mean gene profile ``p_Y`` with free per-cell weights ``s_Y`` (the null model;
    ``null_topic``). This bounds the background term: however the topics move, the
    background is never fitted worse than by its null model, so ``-alpha D(Y)`` cannot run
    to minus infinity (the failure of the published KL updates). The squared error is
    bounded without it, and there it is off by default (it makes the background's mean
    free for the topics, which then spend themselves on it: see the method page). The
    reported background usages use the K topics alone, like every other cell.

    Parameters
    ----------
    n_components
        Number of topics K.
    alpha
        Strength of the contrast; ``alpha=0`` is plain NMF of the target. Giving an
        ``alpha`` selects the contrastive model (``n_shared="auto"`` resolves to 0);
        ``None`` (default): 2 for the contrast, none for the shared-topic model. With the
        default ``alpha_scaling="deviance"`` the value means the same on every data set
        (see below): ``alpha=1`` is the balance point, where structure that explains the
        same fraction of the target's and the background's deviance (shared cell types) is
        neutral; above 1 such structure is penalised and only target-enriched structure
        pays. Values between 1.5 and 3 are reasonable, larger values leave topics that
        explain little of the target (watch ``target_term_`` approach 1).
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
        Maximum number of passes over the data (default 400 full-batch, 100 minibatch,
        200 for the shared-topic model).
    tol
        Default (``None``): ``1e-5``, and ``5e-5`` for the shared-topic model, whose
        objective keeps creeping down long after the topics have settled (on the
        recovery suite its program recovery at 50 and at 200 epochs agreed to 0.01 of
        AUROC). Stop when the relative change of the objective per epoch falls below
        ``tol``. Full batch: ``|L_{t-1} - L_t| / max(|L_t|, a D(X))``. Minibatch, whose
        per-epoch objective is noisy: the improvement of the mean objective of the last
        ``w = 5`` epochs over the mean of the 5 before, per epoch, ``(mean(L_{t-2w+1..t-w})
        - mean(L_{t-w+1..t})) / (w * max(|L_t|, a D(X)))``, so a fit that only fluctuates
        around its floor stops. (The denominator keeps the criterion meaningful when the
        contrastive objective crosses zero.)
    init
        ``"auto"`` (default): for the shared-topic model (below) ``"random"``, or
        ``"nndsvda"`` above 5,000 genes (on all 20,000 genes of a sparse simulation
        random target topics fitted the target's noise); ``"contrastive"`` for the
        contrast with ``loss="kl"`` and ``alpha > 0``; else ``"nndsvda"`` (the
        contrastive start is built from log-normalised counts). With shared topics, the
        components of a deterministic start are ordered so that the K the target uses
        most (Welch t of the cells' depth-free weights, target against background)
        become the target topics.
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
        ``"auto"`` (default): ``"deviance"`` for ``loss="kl"``, ``"cells"`` for
        ``loss="frobenius"``. ``"deviance"``: ``a = 1 / D0(X)`` and ``b = 1 / D0(Y)``,
        where ``D0`` is the loss of the rank-one null model (each cell's total times the
        set's mean gene profile). Each term is then the fraction of its set's deviance left
        unexplained, so the balance does not depend on cell numbers, sequencing depth or
        the loss. ``"cells"``: ``a = 1 / n_X`` and ``b = 1 / n_Y``, the mean loss per cell
        of each group, so ``alpha`` weighs a background cell against a target cell
        whatever the group sizes. ``"raw"``: ``a = b = 1``, the published objective, where
        the same ``alpha`` means different things on different data.
    null_topic
        ``"auto"`` (default): ``"background"`` for ``loss="kl"``, ``"none"`` for
        ``loss="frobenius"``. ``"background"``: the background is fitted with the K topics
        plus its fixed mean profile (see above). ``"none"``: with the K topics alone, as
        published; for ``loss="kl"`` the background term is then bounded only by
        ``w_floor``. The published objective is ``null_topic="none",
        alpha_scaling="raw", init="random"``.
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
        over-relaxed usage steps, 5 epochs now fit better than 15 did before). The
        shared-topic model forgets over an eighth of an epoch, at least 5,000 and at
        most 20,000 cells (``benchmarks/bench_forget.py``: at 20,000 + 20,000 cells 1.4x
        fewer epochs to a lower objective).
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
    n_shared
        ``"auto"`` (default): 16 for ``loss="kl"`` when no ``alpha`` is given, else 0.
        ``0``: the contrastive objective above. ``S > 0``: the shared-topic model. The
        basis holds the ``n_components`` target topics followed by ``S`` shared topics;
        background cells are fitted with the shared topics only, target cells with all
        of them, and both terms are minimised, ``a D(X | H_X W) + b D(Y | H_Y W_shared)``
        (there is no ``alpha``; giving one is an error). The shared topics absorb what
        both groups have (cell types, shared programs, and changes of their abundance),
        so the target topics are left with what the background cannot explain. ``S``
        should exceed the number of shared structures (say 10-20 for a few cell types);
        see docs/method.md. On the recovery suite the contrast folds chance differences
        in cell-type composition into its program topics; this model does not, which is
        why it is the default for counts. Minibatch solver; ``init="auto"`` is
        ``"random"`` up to 5,000 genes, else NNDSVDa of the target with its most
        target-enriched components as the target topics (see ``init``). Background
        usages are reported for all topics (fitted from a fresh start, as
        :meth:`transform` would), so the enrichment of a target topic compares how both
        groups use it.
    n_jobs
        CPU threads torch may use while this model computes (``fit``, ``transform``,
        ``score_source``); the caller's setting is restored afterwards. ``None``
        (default): the physical cores available to the process, at most torch's own
        default (``torch.get_num_threads()``); ``-1``: every available CPU. On a machine
        shared with other work, fewer threads are often much faster: the solver's
        products are small, and every parallel region waits for its slowest thread. The
        result does not depend on ``n_jobs`` beyond float rounding (sums split over
        threads may add in another order). Ignored for the GPU's work.

    Attributes
    ----------
    components_ : ndarray (K, genes)
        Gene loadings; non-negative, each row sums to one. With ``n_shared=S`` there are
        ``K + S`` rows: the target topics, then the shared ones.
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
    init_, alpha_scaling_, null_topic_ : str
        The start, the scaling and the null-topic choice that ran (``"auto"`` resolved).
    tol_ : float
        The tolerance that ran (``tol=None`` resolved).
    n_shared_ : int
        Shared topics of the model that ran (``n_shared="auto"`` resolved; 0: the
        contrast).
    swapped_topics_ : list of [int, int]
        Shared-topic model: the ``[shared, target]`` pairs of topics whose places the
        fit swapped because the shared one held target-only structure (a second fit
        from the swapped basis reached a lower objective; docs/method.md, "Topics in
        the wrong block"); empty when none were.
    alpha_ : float or None
        The contrast's ``alpha`` that ran; ``None`` for the shared-topic model.

    Examples
    --------
    >>> from bcnmf_sc import BcNMF
    >>> model = BcNMF(n_components=5, alpha=1.0).fit(X_target, X_background)  # doctest: +SKIP
    >>> model.components_.shape  # doctest: +SKIP
    (5, 2000)
    """

    # fitted attributes (see Attributes above)
    components_: np.ndarray
    usage_target_: np.ndarray
    usage_background_: np.ndarray
    baseline_background_: np.ndarray
    history_: dict[str, list]
    objective_: float
    target_term_: float
    background_term_: float
    n_epochs_: int
    n_iter_: int
    converged_: bool
    swapped_topics_: list[list[int]]
    n_features_in_: int
    init_: str
    alpha_scaling_: str
    null_topic_: str
    tol_: float
    n_shared_: int
    alpha_: float | None

    #: Every constructor parameter, in order, with the rules its value must satisfy
    #: (checked by :meth:`_check_params` before anything is read).
    _parameter_constraints: ClassVar[dict[str, tuple[v.Check, ...]]] = {
        "n_components": (
            v.integer(1, message="n_components must be an integer >= 1, got {value!r}."),
        ),
        "alpha": v.ALPHA,
        "loss": (v.one_of(v.LOSSES, "Unknown loss {value!r}: use 'kl' (counts) or 'frobenius'."),),
        "solver": (v.one_of(v.SOLVERS),),
        "batch_size": (v.integer(1, none=True),),
        "max_epochs": (v.integer(1, none=True),),
        "tol": (v.TOL,),
        "init": (v.one_of(v.INITS),),
        "n_init": (v.integer(1, message="n_init must be a positive integer, got {value!r}."),),
        "random_state": (v.RANDOM_STATE,),
        "device": (v.DEVICE,),
        "dtype": (v.DTYPE,),
        "progress": (),
        "alpha_scaling": (v.one_of(v.SCALINGS),),
        "null_topic": (v.one_of(v.NULL_TOPICS),),
        "w_floor": (v.real(lambda x: 0 <= x < 1, "w_floor must be in [0, 1), got {value!r}."),),
        "inner_iter": (v.integer(1, none=True),),
        "forget_factor": (
            v.real(lambda x: 0 < x <= 1, "forget_factor must be in (0, 1], got {value!r}."),
        ),
        "distributed": (),
        "n_shared": (v.N_SHARED,),
        "n_jobs": (v.Check(valid_n_jobs, N_JOBS_MESSAGE),),
    }

    def __init__(
        self,
        n_components: int = 10,
        *,
        alpha: float | None = None,
        loss: str = "kl",
        solver: str = "auto",
        batch_size: int | None = None,
        max_epochs: int | None = None,
        tol: float | None = None,
        init: str = "auto",
        n_init: int = 1,
        random_state: int | np.random.Generator | None = 0,
        device: str | torch.device = "auto",
        dtype: str = "float32",
        progress: bool = False,
        alpha_scaling: str = "auto",
        null_topic: str = "auto",
        w_floor: float = 1e-2,
        inner_iter: int | None = None,
        forget_factor: float = 0.1,
        distributed: bool = False,
        n_shared: int | str = "auto",
        n_jobs: int | None = None,
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
        self.null_topic = null_topic
        self.w_floor = w_floor
        self.inner_iter = inner_iter
        self.forget_factor = forget_factor
        self.distributed = distributed
        self.n_shared = n_shared
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ checks
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (as scikit-learn's ``get_params``)."""
        return {k: getattr(self, k) for k in self._parameter_constraints}

    def _check_params(self) -> None:
        v.check_params(self.get_params(), self._parameter_constraints)
        self.resolved_model()  # an alpha with n_shared > 0 fails here, before any data

    def resolved_model(self) -> tuple[int, float | None]:
        """``(n_shared, alpha)`` of the model these parameters select (``"auto"`` resolved).

        ``(S, None)``: the shared-topic model with ``S`` shared topics; ``(0, alpha)``: the
        contrast. Raises ``ValueError`` for an ``alpha`` given with ``n_shared > 0``.
        """
        return resolve_model(self.n_shared, self.alpha, self.loss)

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
        X = check_matrix(X_target, "X_target")
        Y = check_matrix(X_background, "X_background")
        return self._fit(InMemoryRows(X), InMemoryRows(Y))

    def fit_source(self, target: RowSource, background: RowSource) -> BcNMF:
        """Fit from two :class:`~bcnmf_sc._engine.rows.RowSource` objects.

        This is what :meth:`fit` calls, with :class:`~bcnmf_sc._engine.rows.InMemoryRows`.
        Other sources stream rows from other storage, e.g.
        :class:`~bcnmf_sc._engine.rows.H5adRows` from an ``.h5ad`` file on disk: the
        solver then never holds more than one window of rows (the option
        ``window_rows``, see :mod:`~bcnmf_sc._engine.options`): peak memory is set by the
        window and the model (``O((cells + genes) * K)``), not by the data. Rows are
        validated as they are read. ``"full"`` above 500 cells needs in-memory sources.
        Groups of more than 20,000 cells are initialised from a random sample of 20,000 of
        their cells (blocks of consecutive rows). With ``distributed=True`` the sources are
        this process's shards (see the class docstring).
        """
        for name, src in (("target", target), ("background", background)):
            if not isinstance(src, RowSource):
                raise TypeError(
                    f"fit_source() takes RowSource objects, got {type(src).__name__} as "
                    f"{name}; pass matrices (arrays, scipy.sparse) to fit(X_target, "
                    "X_background)."
                )
        self._check_params()
        return self._fit(target, background)

    def _fit(self, target: RowSource, background: RowSource) -> BcNMF:
        with torch_threads(self.n_jobs):
            comm = TorchComm() if self.distributed else LocalComm()
            rt, pb, plan, self.solver_ = prepare(
                self.get_params(), target, background, comm, get_options()
            )
            self.device_, self.dtype_, self.loss_ = rt.device, rt.dtype, rt.loss
            self.scale_target_, self.scale_background_ = pb.target.weight, pb.background.weight
            self.init_ = plan.init
            self.tol_ = plan.tol
            self.n_shared_ = plan.n_components - int(self.n_components)
            self.alpha_ = None if pb.shared else float(pb.alpha)
            self.alpha_scaling_, self.null_topic_ = pb.scaling, pb.null_topic
            v.check_scale(
                [(g.role, float(g.colsum.sum()) / max(g.n, 1)) for g in (pb.target, pb.background)],
                rt.dtype,
            )
            best = fit_restarts(rt, pb, plan, int(self.n_init), self.random_state)
        # the target's loss relative to explaining nothing, whatever the scaling
        trivial, name = pb.trivial_target()
        relative = best.terms[0] / max(pb.target.weight * trivial, 1e-300)
        self._set_fitted(best, comm, relative, name)
        return self

    def _set_fitted(
        self, best: Restart, comm: LocalComm, relative_target: float, trivial: str
    ) -> None:
        """Copy the best restart into the fitted attributes; every end-of-fit warning."""
        for name, value in fitted_attributes(best).items():
            setattr(self, name, value)
        if not self.converged_ and self.tol_ > 0:  # tol=0 asks for all max_epochs
            warnings.warn(
                f"BcNMF stopped after max_epochs={self.n_epochs_} epochs before the objective "
                f"changed by less than tol={self.tol_:g}; increase max_epochs or tol.",
                ConvergenceWarning,
                stacklevel=4,
            )
        messages = collapse_messages(self.usage_target_, self.usage_background_, comm)
        for message in [*messages, *objective_messages(relative_target, trivial)]:
            warnings.warn(message, RuntimeWarning, stacklevel=4)

    # --------------------------------------------------------------- transform
    @classmethod
    def from_components(cls, components, **params) -> BcNMF:
        """A model that only projects: fixed ``components`` (K x genes), no fit.

        Rows are renormalised to sum to one. ``params`` are constructor parameters
        (``loss``, ``device``, ``dtype`` matter for :meth:`transform`).
        """
        W = normalised_components(components)
        params = {"n_shared": 0, **params}  # without n_shared: the rows of W, all alike
        n_shared, _ = resolve_model(
            params["n_shared"], params.get("alpha"), params.get("loss", "kl")
        )
        n_target = W.shape[0] - n_shared
        if n_target < 1:
            raise ValueError(
                f"{W.shape[0]} components leave no target topic beside "
                f"n_shared={n_shared} shared ones."
            )
        model = cls(n_components=n_target, **params)
        model._check_params()
        model.components_, model.n_features_in_ = W, W.shape[1]
        return model

    def transform(self, X, *, batch_size: int = 4096) -> np.ndarray:
        """Usages of new cells (cells x K) with the fitted components fixed."""
        self._check_fitted()
        X = check_matrix(X, "X")
        check_genes(X.shape[1], self.components_.shape[1])
        return self.transform_source(InMemoryRows(X), batch_size=batch_size)

    def transform_source(self, source: RowSource, *, batch_size: int = 4096) -> np.ndarray:
        """Usages for the rows of a :class:`RowSource` (see :meth:`transform`).

        Runs on the fit's device and dtype (``device_``, ``dtype_``) when the model was
        fitted, else on those its parameters name; the fitted attributes are not changed.
        """
        self._check_fitted()
        rt = projection_runtime(
            self.loss,
            self.dtype,
            self.device,
            fitted_dtype=getattr(self, "dtype_", None),
            fitted_device=getattr(self, "device_", None),
        )
        with torch_threads(self.n_jobs):
            return project(rt, self.components_, source, batch_size)

    def score_source(self, target: RowSource, background: RowSource) -> BcNMF:
        """Usages, terms and objective of the fixed ``components_`` on these data.

        No training: sets ``usage_target_``, ``usage_background_``, ``target_term_``,
        ``background_term_`` and ``objective_`` as a fit would for these components.
        """
        self._check_fitted()
        params = self.get_params()
        with torch_threads(self.n_jobs):
            s = score_components(self.project_onto, self.components_, target, background, params)
        self.usage_target_, self.usage_background_ = s.usage_target, s.usage_background
        self.target_term_, self.background_term_ = s.terms
        self.objective_ = s.objective
        return self

    def project_onto(self, W: np.ndarray, source: RowSource) -> np.ndarray:
        """Usages of ``source`` for the fixed components ``W`` (this model's, or others).

        Other components are projected with this model's loss, device, dtype and threads.
        """
        if W is self.components_:
            return self.transform_source(source)
        # projection needs no topic split: the rows of W, whatever they are
        params = {
            k: v for k, v in self.get_params().items() if k not in ("n_components", "n_shared")
        }
        return type(self).from_components(W, **params).transform_source(source)

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise RuntimeError("This BcNMF instance is not fitted yet; call fit() first.")

    def fit_transform(self, X_target, X_background) -> np.ndarray:
        """Fit and return the target usages."""
        return self.fit(X_target, X_background).usage_target_

    def __repr__(self) -> str:
        return (
            f"BcNMF(n_components={self.n_components}, n_shared={self.n_shared!r}, "
            f"alpha={self.alpha}, loss={self.loss!r})"
        )
