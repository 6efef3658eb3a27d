"""Scanpy-style wrapper around :class:`bcnmf_sc.BcNMF`."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from anndata import AnnData
from scanpy import logging as logg

from bcnmf_sc._engine import BcNMF
from bcnmf_sc._utils import default_topic_names
from bcnmf_sc._warnings import at_user_line

from ._checks import check_key, check_unique_var_names
from ._consensus import consensus_model, restart_seeds
from ._enrichment import score_weights, target_score
from ._inputs import matrix_source, prepare_inputs, scanpy_n_jobs
from ._outputs import fit_params, fit_result, transform_result, write_result

__all__ = ["bcnmf", "bcnmf_transform"]

# BcNMF parameters that tl.bcnmf sets from its own keyword arguments
_ENGINE_SET = (
    "n_components alpha loss batch_size max_epochs tol n_init random_state device progress n_jobs"
).split()


# ------------------------------------------------------------------------ bcnmf
def _check_args(key_added, n_topics, consensus, n_init) -> None:
    """The checks of :func:`bcnmf`'s own arguments that need no data.

    The engine's parameters (``loss``, ``alpha``, ...) are checked by the estimator's
    ``_check_params``, also before any data is read.
    """
    check_key(key_added)
    if isinstance(n_topics, bool) or not isinstance(n_topics, numbers.Integral) or n_topics < 1:
        raise ValueError(f"n_topics must be an integer >= 1, got {n_topics!r}.")
    if consensus and (
        isinstance(n_init, bool) or not isinstance(n_init, numbers.Integral) or n_init < 2
    ):
        raise ValueError(
            f"consensus=True combines restarts: n_init must be an integer >= 2, got {n_init!r}."
        )


@at_user_line
def bcnmf(
    adata: AnnData,
    background_key: str,
    background: str | Sequence[str] | None = None,
    *,
    target: str | Sequence[str] | None = None,
    n_topics: int = 10,
    n_shared: int | Literal["auto"] = "auto",
    holdout: float | None = None,
    alpha: float | None = None,
    loss: Literal["kl", "frobenius"] = "kl",
    layer: str | None = None,
    mask_var: str | np.ndarray | None = None,
    batch_size: int | None = None,
    max_epochs: int | None = None,
    tol: float | None = None,
    n_init: int = 1,
    consensus: bool = False,
    random_state: int | None = 0,
    device: str = "auto",
    n_jobs: int | None = None,
    engine_kwargs: Mapping[str, Any] | None = None,
    key_added: str = "bcnmf",
    copy: bool = False,
    progress: bool = True,
    check_counts: bool = True,
) -> AnnData | None:
    """Background-contrastive NMF: gene programs of target cells absent from a background.

    Fits :class:`bcnmf_sc.BcNMF` to the target cells against the background cells, then
    projects all other cells (those in neither group) onto the fitted topics.

    Parameters
    ----------
    adata
        Annotated data matrix (cells x genes). Counts for ``loss="kl"``; integer or float,
        sparse (CSR/CSC) or dense; views are accepted. An AnnData opened with
        ``sc.read_h5ad(path, backed="r")`` is streamed from disk in blocks of rows (``.X``
        stored as CSR; the file is never written): memory then grows with the numbers of
        cells and genes times ``n_topics``, not with the data, and the result is the same
        as from the data in memory.
    background_key
        Column of ``adata.obs`` that defines the groups.
    background
        Category (or list of categories) of ``background_key`` that is the background.
        Not needed for a boolean column, where ``True`` marks target cells and ``False``
        background cells.
    target
        Category or categories that are the target; default all categories that are not
        background. Cells in neither group (and cells with a missing value) are not used
        for fitting; their usages are computed by projection onto the fitted topics.
    n_topics
        Number of target topics K (the contrastive model: of topics).
    n_shared
        ``"auto"`` (default): 16 for ``loss="kl"`` when ``alpha`` is not given, else 0.
        ``S > 0``: the shared-topic model (:class:`bcnmf_sc.BcNMF`'s ``n_shared``):
        ``n_topics`` target topics (``topic_1``...) plus ``S`` topics both groups use
        (``shared_1``...; cell types and other shared structure, including changes of
        their abundance), so every result has ``n_topics + S`` topics; background cells
        are fitted with the shared topics alone. ``0``: the contrastive model, tuned by
        ``alpha``. See docs/method.md, "Shared topics".
    holdout
        Share of the target and of the background cells (each) left out of training and
        projected afterwards, like cells of neither group; the enrichment table compares
        these cells only, so that both groups meet the topics as new cells (topics
        trained on target cells also fit their noise, which makes training cells look
        enriched where nothing is). Default ``0.2`` for the shared-topic model, else
        ``0`` (the enrichment compares the training cells). The held-out cells are drawn
        with ``random_state``.
    alpha
        Strength of the contrast (0 is plain NMF of the target). Giving ``alpha`` selects
        the contrastive model (``n_shared="auto"`` resolves to 0; with ``n_shared > 0``
        it is an error). ``None``: the shared-topic model for counts, the engine's
        default alpha (2) for the contrast; the value used is recorded in
        ``.uns[key_added]["params"]``.
    loss
        ``"kl"`` (Poisson; raw counts) or ``"frobenius"`` (non-negative continuous data,
        e.g. log1p-normalised counts).
    layer
        Layer to use instead of ``.X``.
    mask_var
        Genes to use: a boolean ``.var`` column name or a boolean mask. Default
        ``"highly_variable"`` when that column exists, else all genes. Genes left out get
        zero loadings.
    batch_size, max_epochs, tol, n_init, random_state, device
        Passed to :class:`bcnmf_sc.BcNMF` (``n_init`` restarts, the one with the lowest
        objective is kept), unless ``consensus=True``.
    n_jobs
        CPU threads for torch during the fit and the projections (restored afterwards).
        ``None``: ``scanpy.settings.n_jobs``, as scanpy's functions do (scanpy's default
        is 1: one thread, which never oversubscribes a shared machine; set
        ``sc.settings.n_jobs`` or pass ``n_jobs`` for more; ``-1`` uses every CPU). Not
        recorded in ``params``: it does not change the result beyond float rounding.
    consensus
        Combine the ``n_init`` restarts (at least 2) into consensus topics instead of
        keeping the best one: restart ``r`` is fitted with seed ``r`` drawn from
        ``random_state``; topics are matched across restarts by cosine similarity of
        their loadings, matched topics that disagree with the consensus are dropped, each
        consensus topic is the gene-wise median of the rest, and all usages are refitted
        to the consensus topics (see :func:`bcnmf_sc.tl._consensus.consensus_components`).
        The enrichment table then gains a ``stability`` column.
    engine_kwargs
        Further :class:`bcnmf_sc.BcNMF` parameters (e.g. ``solver``, ``init``,
        ``w_floor``); recorded in ``params`` as ``engine_<name>``.
    key_added
        Results are stored under this key (see Returns).
    copy
        Return a modified copy instead of writing to ``adata``.
    progress
        Show a progress bar over epochs.
    check_counts
        With ``loss="kl"``, check that the values are counts: a sample of the stored values
        (about 100,000, from a few blocks of rows; never a full pass) must be integers up
        to float error, else a ``ValueError`` suggests ``layer="counts"``. ``False``
        skips the check (e.g. for ambient-corrected, non-integer counts). Recorded in
        ``params``.

    Returns
    -------
    ``None``, or a new AnnData when ``copy=True``. Sets

    ``.obsm[f"X_{key_added}"]`` : ndarray (n_obs, n_topics + n_shared)
        Topic usages of every cell (target topics first, then the shared ones).
    ``.varm[f"{key_added}_loadings"]`` : ndarray (n_vars, n_topics + n_shared)
        Gene loadings; each topic's loadings over the used genes sum to one.
    ``.obs[f"{key_added}_target_score"]`` : float
        Each cell's estimated share of usage that the background does not have:
        ``sum_k p_k * excess_k``, its topic proportions weighted by the ``excess`` column
        of the enrichment table (``1 - mean_background / mean_target`` for topics used
        significantly more by target cells, else 0; 0 everywhere when there are none).
        Shared topics weigh nothing: both groups' fits use them, so their excess is a
        change of abundance of shared structure (a composition shift), not a program.
        This is the representation to cluster or threshold to find the target cells that
        carry target-only programs: with many topics, one program is often split over
        several topics, some of them mixed with a cell type and only mildly enriched,
        and the score adds the parts up in proportion to how target-specific they are.
    ``.obsm[f"{key_added}_programs"]`` : DataFrame (n_obs, n_programs)
        One score per target program (the rows of ``.uns[key_added]["programs"]``): the
        share of the cell's counts the program explains. A fit with more topics than
        programs splits a program over topics that load the same genes; the programs
        table puts them back together, each program's topics are merged into one gene
        profile, and every cell is projected onto the program profiles and the topics
        the background is fitted with (the shared topics; in the contrast, the topics in
        no program), so that two programs get two scores (the target score adds them
        up) and the target topics outside any program take no counts from them. To find
        the cells of one program, cluster or threshold its column.
    ``.varm[f"{key_added}_programs"]`` : DataFrame (n_vars, n_programs)
        Each program's gene profile: the mean of its topics' loadings weighted by the
        counts each explains (sums to one over the used genes).
    ``.uns[key_added]`` : dict
        ``params`` (everything needed to reproduce the fit; parameters that were
        ``None`` are left out), ``history`` (per-epoch objective), ``topics`` (names),
        ``objective``, ``n_epochs``, ``converged``, ``swapped_topics`` (shared-topic
        model: rows ``[shared, target]`` of topic positions, 0-based, whose places the
        fit swapped because the shared one held target-only structure; see
        ``BcNMF.swapped_topics_``; no rows when none were) and ``enrichment``: a
        DataFrame with one row per topic comparing target and background cells (see
        :func:`bcnmf_sc.tl.topic_enrichment`), most target-enriched topic (largest
        ``log2fc``) first. With ``consensus=True`` the table has a ``stability`` column
        (per topic, the mean cosine similarity of the loadings matched to it in every
        pair of restarts; 1: every seed finds the same topic, well below 1: a seed
        artefact), ``objective`` is that of the consensus topics, ``history``,
        ``n_epochs`` and ``converged`` are those of the restart with the lowest
        objective, and ``consensus`` holds ``stability``, ``n_kept`` (restarts whose
        topic joined each consensus topic), ``objectives`` (of the restarts) and
        ``reference`` (the restart the matching started from). Without consensus the
        table has no ``stability`` column.
        ``programs``: a DataFrame with one row per program (``program_1``, ...): the
        ``enriched`` target topics grouped by the genes they load most above the mean
        profile (average linkage on the share of their top 50 genes they have in common,
        joined at 0.15 or more); columns ``topics`` (comma-separated names),
        ``n_topics``, ``excess`` (the largest of its topics') and ``overlap`` (the mean
        share of top genes its topics have in common). No enriched topic, no row.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate()
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=5)  # doctest: +SKIP
    >>> adata.uns["bcnmf"]["enrichment"].head()  # doctest: +SKIP
    """
    # ---- validate everything before touching adata
    _check_args(key_added, n_topics, consensus, n_init)
    if not isinstance(check_counts, bool | np.bool_):
        raise TypeError(f"check_counts must be True or False, got {check_counts!r}.")
    engine_kwargs = dict(engine_kwargs or {})
    clash = sorted(set(engine_kwargs) & set(_ENGINE_SET))
    if clash:
        raise ValueError(f"engine_kwargs cannot set {clash}; use the keyword arguments.")

    def check_k(n_target: int, n_genes: int) -> None:
        if n_topics > min(n_target, n_genes):
            raise ValueError(
                f"n_topics={n_topics} is too large for {n_target} target cells x "
                f"{n_genes} genes; use at most {min(n_target, n_genes)}."
            )

    model, share = checked_model(
        holdout,
        n_components=int(n_topics),
        alpha=alpha,
        n_shared=n_shared,
        loss=loss,
        batch_size=batch_size,
        max_epochs=max_epochs,
        tol=tol,
        n_init=1 if consensus else n_init,
        random_state=random_state,
        device=device,
        progress=progress,
        n_jobs=scanpy_n_jobs(n_jobs),
        **engine_kwargs,
    )
    n_shared_used = model.resolved_model()[0]
    seeds = restart_seeds(random_state, int(n_init)) if consensus else [random_state]
    model.random_state = seeds[0]
    inp = prepare_inputs(
        adata, background_key, background, target,
        layer=layer, mask_var=mask_var, loss=loss, check=check_k, check_counts=check_counts,
    )  # fmt: skip
    start = logg.info(
        f"computing bcNMF with {n_topics} "
        + (f"target + {n_shared_used} shared topics" if n_shared_used else "topics")
        + f" on {inp.n_target} target vs "
        f"{int(inp.is_background.sum())} background cells x {inp.n_genes} genes"
    )
    held = held_out_cells(inp.is_target, inp.is_background, share, random_state)
    train_t, train_b = inp.is_target & ~held, inp.is_background & ~held
    data = (inp.rows(train_t), inp.rows(train_b))
    model, info = _fit_runs(model, seeds, data, consensus)
    swapped = getattr(model, "swapped_topics_", [])
    if swapped:
        names = default_topic_names(model.components_.shape[0], n_shared_used)
        moved = ", ".join(f"{names[s]} -> {names[t]}" for s, t in swapped)
        logg.info(
            f"    placement check: target-only structure of shared topics moved into the "
            f"target block and refitted ({moved})"
        )

    # ---- assemble results, then write
    usage = np.zeros((adata.n_obs, model.components_.shape[0]))
    usage[train_t] = model.usage_target_
    usage[train_b] = model.usage_background_
    projected = inp.other | held
    if projected.any():
        usage[projected] = model.transform_source(inp.rows(projected))
    params = fit_params(
        inp, model, background_key=background_key, n_topics=n_topics, loss=loss,
        layer=layer, batch_size=batch_size, max_epochs=max_epochs, tol=tol, n_init=n_init,
        consensus=consensus, seeds=seeds, random_state=random_state, device=device,
        check_counts=bool(check_counts), holdout=share,
    )  # fmt: skip
    result = fit_result(
        model,
        usage,
        is_target=inp.is_target,
        is_background=inp.is_background,
        genes=inp.genes,
        params=params,
        engine_kwargs=engine_kwargs,
        consensus=info,
        held_out=held if share > 0 else None,
        project=lambda V: model.project_onto(V, inp.source),  # every cell, obs order
    )
    if copy:
        adata = adata.copy()
    write_result(adata, key_added, result)
    logg.info("    finished", time=start, deep=_added(key_added))
    return adata if copy else None


def _added(key: str) -> str:
    return (
        f"added\n    .obsm['X_{key}'], topic usages\n"
        f"    .varm['{key}_loadings'], gene loadings\n"
        f"    .obs['{key}_target_score'], share of usage specific to the target\n"
        f"    .obsm['{key}_programs'], each program's share of the cells' counts\n"
        f"    .varm['{key}_programs'], each program's gene profile\n"
        f"    .uns['{key}'], params, history, enrichment and programs"
    )


def checked_model(holdout, **params: Any) -> tuple[BcNMF, float]:
    """The estimator of a fit and the share of cells held out, checked before any data is read.

    ``params`` are :class:`~bcnmf_sc.BcNMF`'s; the engine's parameter rules run here, so a
    bad value fails before the AnnData (or the h5ad file) is touched.
    """
    model = BcNMF(**params)
    model._check_params()
    return model, holdout_share(holdout, model.resolved_model()[0])


def holdout_share(holdout, n_shared: int) -> float:
    """The share of cells to hold out (``holdout``, default by ``n_shared``), or an error."""
    share = (0.2 if n_shared else 0.0) if holdout is None else holdout
    if isinstance(share, bool) or not isinstance(share, numbers.Real) or not 0 <= float(share) < 1:
        raise ValueError(f"holdout must be a number in [0, 1), got {holdout!r}.")
    return float(share)


def held_out_cells(
    is_target: np.ndarray, is_background: np.ndarray, share: float, random_state
) -> np.ndarray:
    """A random ``share`` of the target cells and of the background cells (a mask).

    At least one cell of each group stays in training.
    """
    held = np.zeros(len(is_target), dtype=bool)
    if share <= 0:
        return held
    rng = np.random.default_rng(random_state)
    for group in (is_target, is_background):
        idx = np.flatnonzero(group)
        n = min(int(round(share * len(idx))), len(idx) - 1)
        held[rng.choice(idx, size=max(n, 0), replace=False)] = True
    return held


def _fit_runs(model: BcNMF, seeds: list, data: tuple, consensus: bool):
    """Fit ``model`` (one seed), or its restarts and their consensus: ``(model, info)``."""
    runs: list[BcNMF] = []
    for seed in seeds:  # one fit, or the restarts of a consensus
        run = model if not runs else BcNMF(**{**model.get_params(), "random_state": seed})
        runs.append(run.fit_source(*data))
    info = None
    if consensus:
        model, info = consensus_model(runs, *data)
        logg.info(
            f"    consensus of {len(runs)} restarts: topic stability "
            f"{info['stability'].min():.3f} to {info['stability'].max():.3f}"
        )

    return model, info


# -------------------------------------------------------------------- transform
@at_user_line
def bcnmf_transform(
    adata_query: AnnData,
    adata_reference: AnnData,
    *,
    key: str = "bcnmf",
    layer: str | None = None,
    n_jobs: int | None = None,
) -> None:
    """Topic usages of new cells from the loadings fitted on a reference.

    Genes are matched by name (``var_names``); loadings of the reference genes found in
    the query are renormalised so each topic sums to one over them.

    Parameters
    ----------
    adata_query
        New cells (same kind of values as the reference was fitted on). A backed query
        (``backed="r"``, ``.X`` stored as CSR) is streamed from disk in blocks of rows.
    adata_reference
        Data on which :func:`bcnmf_sc.tl.bcnmf` was run.
    key
        The ``key_added`` used for the reference fit, and the key the query's results are
        written under (see below).
    layer
        Layer of the query to use. Default: the layer the reference was fitted on
        (``adata_reference.uns[key]["params"]["layer"]``; ``.X`` when none is recorded),
        so a reference fitted on ``layer="counts"`` projects the query's counts too.
        ``layer="X"`` uses the query's ``.X`` whatever the reference used.
    n_jobs
        CPU threads for torch during the projection, as for :func:`bcnmf_sc.tl.bcnmf`.

    Returns
    -------
    ``None``. Sets, on the query, what :func:`bcnmf_sc.tl.bcnmf` sets on the reference,
    so that ``pl.*``, ``get.*`` and :func:`~bcnmf_sc.tl.topic_enrichment` work on it:

    ``.obsm[f"X_{key}"]``
        Topic usages of the query cells.
    ``.varm[f"{key}_loadings"]``
        The reference's loadings on the query's genes (renormalised over the matched
        genes; 0 for genes the reference did not load).
    ``.obs[f"{key}_target_score"]``
        The target score, weighted by the reference's enrichment table.
    ``.uns[key]``
        The reference's ``params`` (plus ``projected=True``, the query's ``layer`` and
        ``n_genes_matched``), ``topics``, ``history``, ``n_epochs``, ``converged``,
        ``swapped_topics``, ``enrichment`` (the reference's target vs background table)
        and ``programs``.
    ``.obsm[f"{key}_programs"]``, ``.varm[f"{key}_programs"]``
        The reference's programs scored on the query (the query cells projected onto
        the reference's program profiles and shared topics), and the profiles on the
        query's genes; when the reference has them.

    Raises
    ------
    ValueError
        If fewer than half of the reference's loaded genes are in the query.
    """
    threads = scanpy_n_jobs(n_jobs)
    lkey = f"{key}_loadings"
    if lkey not in adata_reference.varm or key not in adata_reference.uns:
        raise KeyError(f"No bcNMF result under key {key!r} in the reference; run tl.bcnmf first.")
    params = adata_reference.uns[key].get("params", {})
    loss = str(params.get("loss", "kl"))
    check_unique_var_names(adata_reference, "the reference")
    check_unique_var_names(adata_query, "the query")
    if layer is None:
        layer = params.get("layer")
        if layer is not None and layer not in adata_query.layers:
            raise KeyError(
                f"The reference was fitted on layer {layer!r}, which the query lacks; pass "
                f"layer= (one of {list(adata_query.layers)}, or 'X' for .X)."
            )
    elif layer == "X" and "X" not in adata_query.layers:
        layer = None
    L = np.asarray(adata_reference.varm[lkey], dtype=float)
    loaded = L.sum(1) > 0
    ref_genes = adata_reference.var_names[loaded]
    pos = adata_query.var_names.get_indexer(ref_genes)
    found = pos >= 0
    frac = found.mean() if len(found) else 0.0
    if frac < 0.5:
        raise ValueError(
            f"Only {found.sum()} of the reference's {len(ref_genes)} loaded genes "
            f"({frac:.0%}) are in the query's var_names; at least 50% must match."
        )
    W = L[loaded][found].T  # K x matched genes
    W = W / np.maximum(W.sum(1, keepdims=True), 1e-12)
    device = params.get("device_used", "auto")  # the reference's device, where it is here
    model = BcNMF.from_components(W, loss=loss, device=_available(str(device)), n_jobs=threads)
    src = matrix_source(adata_query, layer, pos[found], loss, "The query data")
    usage = model.transform_source(src)
    topics = list(adata_reference.uns[key].get("topics", []))
    enr = adata_reference.uns[key].get("enrichment")
    weights = np.zeros(W.shape[0])
    if len(topics) == W.shape[0]:
        n_shared = int(dict(adata_reference.uns[key].get("params", {})).get("n_shared", 0))
        weights = score_weights(enr, topics, n_shared)
    loadings = np.zeros((adata_query.n_vars, W.shape[0]))
    loadings[pos[found]] = W.T
    profiles = None
    pkey = f"{key}_programs"
    if pkey in adata_reference.varm:  # each program's gene profile, on the query's genes
        P = np.asarray(adata_reference.varm[pkey], dtype=float)[loaded][found]
        profiles = np.zeros((adata_query.n_vars, P.shape[1]))
        profiles[pos[found]] = P
    result = transform_result(
        adata_reference.uns[key],
        usage,
        loadings,
        target_score(usage, weights),
        layer=layer,
        genes=pos[found],
        project=lambda V: model.project_onto(V, src),
        profiles=profiles,
    )
    write_result(adata_query, key, result)
    logg.info(
        f"projected {adata_query.n_obs} cells onto {W.shape[0]} topics "
        f"using {int(found.sum())} of {len(ref_genes)} genes"
    )


def _available(device: str) -> str:
    """``device`` when torch can use it here, else ``"auto"``."""
    import torch

    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        usable = torch.cuda.is_available() and index < torch.cuda.device_count()
        return device if usable else "auto"
    return "cpu" if device == "cpu" else "auto"
