"""Choosing alpha and the number of topics: fit a grid, measure, recommend."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scanpy import logging as logg

from bcnmf_sc._engine import BcNMF, ConvergenceWarning
from bcnmf_sc._progress import progress_bar
from bcnmf_sc._warnings import at_user_line

from ._checks import check_key
from ._consensus import restart_seeds
from ._inputs import LOSSES, prepare_inputs, scanpy_n_jobs
from ._outputs import plain, plain_params
from ._sweep_measures import _COLUMNS, MIN_STABILITY, TOLERANCE, check_grid, evaluate, recommend

__all__ = ["bcnmf_sweep"]

# constructor parameters the sweep sets itself
_RESERVED = ("n_components", "alpha", "loss", "n_init", "random_state", "progress", "n_jobs")


def _check_args(key_added, loss, alphas, n_topics, n_init, heldout, min_stability, tolerance):
    """The checks of :func:`bcnmf_sweep`'s arguments that need no data; the grid."""
    check_key(key_added)
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}: use one of {LOSSES}.")
    alpha_list, k_list = check_grid(alphas, n_topics)
    if isinstance(n_init, bool) or not isinstance(n_init, numbers.Integral) or n_init < 2:
        raise ValueError(
            f"n_init must be an integer >= 2 (stability compares restarts), got {n_init!r}."
        )
    if not isinstance(heldout, numbers.Real) or not 0 <= heldout <= 0.5:
        raise ValueError(f"heldout must be a fraction in [0, 0.5], got {heldout!r}.")
    if not isinstance(min_stability, numbers.Real) or not 0 <= min_stability <= 1:
        raise ValueError(f"min_stability must be in [0, 1], got {min_stability!r}.")
    if not isinstance(tolerance, numbers.Real) or not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}.")
    return alpha_list, k_list


def _run_grid(grid, progress: bool, measure) -> list[dict]:
    """``measure(alpha, k)`` at every grid point; convergence warnings counted, one log."""
    rows, n_unconverged = [], 0
    bar = progress_bar(grid, enabled=progress, desc="bcNMF sweep", unit="setting")
    try:
        for a, k in bar:
            bar.set_postfix(alpha=f"{a:g}", n_topics=k)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                row = measure(a, k)
            for w in caught:
                if issubclass(w.category, ConvergenceWarning):
                    n_unconverged += 1
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            rows.append(row)
    finally:
        bar.close()
    if n_unconverged:
        logg.warning(
            f"{n_unconverged} fits stopped at max_epochs before reaching tol (see the "
            "'converged' column); consider a larger max_epochs"
        )
    return rows


def _heldout_split(random_state, n_t: int, n_test: int):
    """``(train, test)`` positions among the target cells, or ``None`` without held-out cells."""
    if not n_test:
        return None
    order = np.random.default_rng(random_state).permutation(n_t)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _table(rows: list[dict], tolerance: float) -> tuple[pd.DataFrame, dict, str]:
    """The sweep's table with its recommended row, the recommendation and its rule step."""
    table = pd.DataFrame(rows)
    table.index = table.index.astype(str)
    pick, step = recommend(table, tolerance=float(tolerance))
    table["recommended"] = table.index == pick
    table = table[_COLUMNS]
    recommended = {
        "alpha": float(table.at[pick, "alpha"]),
        "n_topics": int(table.at[pick, "n_topics"]),
    }
    if step == "none":
        logg.warning(
            "no setting has a stable target-enriched topic; the recommendation is the "
            "setting with the largest target_score_effect and may not be meaningful"
        )

    return table, recommended, step


@at_user_line
def bcnmf_sweep(
    adata: AnnData,
    background_key: str,
    background: str | Sequence[str] | None = None,
    *,
    target: str | Sequence[str] | None = None,
    alphas: Sequence[float] = (0.0, 1.0, 2.0, 3.0),
    n_topics: Sequence[int] = (5, 10, 15),
    n_init: int = 3,
    loss: Literal["kl", "frobenius"] = "kl",
    layer: str | None = None,
    mask_var: str | np.ndarray | None = None,
    heldout: float = 0.1,
    min_stability: float = MIN_STABILITY,
    tolerance: float = TOLERANCE,
    batch_size: int | None = None,
    max_epochs: int | None = None,
    tol: float | None = None,
    random_state: int | None = 0,
    device: str = "auto",
    n_jobs: int | None = None,
    engine_kwargs: Mapping[str, Any] | None = None,
    key_added: str = "bcnmf_sweep",
    progress: bool = True,
    check_counts: bool = True,
) -> pd.DataFrame:
    """Fit the contrastive model over a grid of ``alpha`` and ``n_topics``; recommend one.

    This chooses the settings of the contrastive model (``n_shared=0``), whose ``alpha``
    must be chosen. The default of :func:`bcnmf_sc.tl.bcnmf` for counts, the shared-topic
    model, has no ``alpha``: it needs no sweep. The recommended setting holds ``alpha``,
    so ``tl.bcnmf(adata, ..., **recommended)`` fits the contrast.

    For every pair ``(alpha, n_topics)`` the target cells are fitted against the
    background cells ``n_init`` times with different seeds, and the fits are measured:
    how well they explain each group, how strongly their topics are target-enriched, how
    stable the topics are across seeds and how well they describe target cells they have
    not seen. This costs ``len(alphas) * len(n_topics) * (n_init + 1)`` fits (``+ 1``
    for the held-out fit; ``n_init`` when ``heldout=0``).

    Parameters
    ----------
    adata
        Annotated data matrix, as for :func:`bcnmf_sc.tl.bcnmf` (a backed AnnData is
        streamed from disk in blocks of rows, as there).
    background_key, background, target
        The two groups, as for :func:`bcnmf_sc.tl.bcnmf`.
    alphas
        Contrast strengths to try (``0`` is plain NMF of the target: a baseline).
    n_topics
        Numbers of topics to try.
    n_init
        Restarts per setting (at least 2: stability compares them). Restart ``r`` uses
        seed ``r`` drawn from ``random_state`` (the same seeds at every setting).
    loss, layer, mask_var
        As for :func:`bcnmf_sc.tl.bcnmf`.
    heldout
        Fraction of target cells held out (drawn with ``random_state``) for
        ``heldout_target``; ``0`` skips the held-out fits (the column is then NaN).
    min_stability
        A target-enriched topic counts as stable when its stability (below) is at least
        this.
    tolerance
        Relative tolerance on ``target_score_effect`` in the recommendation rule.
    batch_size, max_epochs, tol, device
        Passed to :class:`bcnmf_sc.BcNMF`.
    random_state
        Seed of the restart seeds and of the held-out cells.
    n_jobs
        CPU threads for torch in every fit, as for :func:`bcnmf_sc.tl.bcnmf` (default
        ``scanpy.settings.n_jobs``).
    engine_kwargs
        Further :class:`bcnmf_sc.BcNMF` parameters (e.g. ``solver``, ``init``,
        ``w_floor``), the same for every fit.
    key_added
        The results are stored in ``adata.uns[key_added]``.
    progress
        Show a progress bar over the settings.
    check_counts
        With ``loss="kl"``, check on a sample of the values that they are counts, as
        :func:`bcnmf_sc.tl.bcnmf` does; ``False`` skips the check.

    Returns
    -------
    The table, one row per setting (``alpha`` ascending within ``n_topics`` ascending),
    also stored with the recommendation in ``adata.uns[key_added]`` as a dict:
    ``table`` (the DataFrame), ``recommended`` (``{"alpha": float, "n_topics": int}``),
    ``rule`` (which step of the rule chose it: ``"contrastive"``, ``"plain"`` or
    ``"none"``) and ``params``. Measures of the restart with the lowest objective (the
    one :func:`bcnmf_sc.tl.bcnmf` with ``random_state`` equal to the ``random_state``
    column reproduces), unless said otherwise:

    ``objective``, ``target_term``, ``background_term``
        The contrastive objective ``target_term - alpha * background_term``; each term is
        the loss left as a fraction of its group's null-model loss (1: nothing explained).
    ``background_explained``
        ``1 - background_term``: how much of the background the topics still explain.
    ``n_enriched``
        Topics flagged ``enriched`` in the target-vs-background enrichment table of
        :func:`bcnmf_sc.tl.bcnmf` (log2 fold change of the mean usage proportion and
        adjusted Welch p-value past the thresholds of that table).
    ``n_stable_enriched``
        Of those, the topics with ``stability >= min_stability``.
    ``max_log2fc``, ``best_auroc``, ``median_auroc``
        The largest log2 fold change over topics; the largest and the median AUROC of
        usage proportions (target vs background). A topic used by a subset of the
        target cells can have a low AUROC, so read the AUROCs beside the log2FC.
    ``target_score_share``
        Mean target score (as ``.obs["bcnmf_target_score"]``: each cell's share of usage
        specific to the target) of the target cells minus that of the background cells:
        how much of the target's usage goes to target-only structure.
    ``target_score_effect``
        The same difference divided by the pooled standard deviation of the score in
        the two groups (Cohen's d): how cleanly the score separates target from
        background cells. Topics that mix target-only programs with shared structure (too
        few topics for the shared structure, or too weak a contrast) give a noisy score
        and a small effect, even when their ``target_score_share`` is large.
    ``stability``, ``stability_enriched``
        Per topic, the mean cosine similarity of the loadings matched to it in every
        pair of restarts (Hungarian matching, as in :func:`bcnmf_sc.tl.bcnmf` with
        ``consensus=True``; 1: every seed finds the same topic); averaged over all
        topics, and over the enriched topics (NaN when there are none).
    ``heldout_target``
        The restart's seed refitted without the held-out target cells; the loss of the
        held-out cells (usages fitted to the fixed topics) as a fraction of the loss of
        a null model (each cell's total times the training target cells' mean profile,
        with half a count added to every gene, so that genes without counts in the
        training cells keep the measure finite).
        Lower is better; it grows with ``alpha`` as topics give up shared structure.
    ``random_state``
        Seed of the restart measured.
    ``converged``
        Whether every restart of the setting reached ``tol``.
    ``recommended``
        True in the recommended row.

    Notes
    -----
    The recommendation rule:

    1. A setting *qualifies* when it has ``alpha > 0`` and at least one stable enriched
       topic (``n_stable_enriched >= 1``). When no setting qualifies, settings with
       ``alpha = 0`` and a stable enriched topic qualify (plain NMF already isolates
       target-only structure); when none of those exist either, every setting with
       ``alpha > 0`` qualifies (every setting, if the grid has no ``alpha > 0``) and a
       warning says that no stable target-enriched topic was found. So ``alpha = 0`` is
       never recommended while some ``alpha > 0`` yields a stable enriched topic.
    2. Among qualifying settings, keep those whose ``target_score_effect`` is within
       ``tolerance`` (relative) of the largest.
    3. Of these, recommend the one with the fewest topics, then the smallest ``alpha``
       (the simplest model that isolates the target-only programs, and the one that
       keeps most of the target explained).

    Fit the recommended setting with :func:`bcnmf_sc.tl.bcnmf` (``consensus=True`` with
    ``n_init >= 2`` for topics that do not hang on one seed) and use
    ``.obs["bcnmf_target_score"]`` to find the target cells that carry the programs.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate()
    >>> table = bc.tl.bcnmf_sweep(adata, "condition", "background")  # doctest: +SKIP
    >>> best = adata.uns["bcnmf_sweep"]["recommended"]  # doctest: +SKIP
    >>> bc.tl.bcnmf(adata, "condition", "background", **best)  # doctest: +SKIP
    >>> bc.pl.sweep(adata)  # doctest: +SKIP
    """
    # ---- validate everything before touching adata
    alpha_list, k_list = _check_args(
        key_added, loss, alphas, n_topics, n_init, heldout, min_stability, tolerance
    )
    if not isinstance(check_counts, bool | np.bool_):
        raise TypeError(f"check_counts must be True or False, got {check_counts!r}.")
    engine = dict(engine_kwargs or {})
    clash = [k for k in engine if k in _RESERVED]
    if clash:
        raise ValueError(f"engine_kwargs cannot set {clash}: the sweep sets them itself.")
    engine.update(batch_size=batch_size, max_epochs=max_epochs, tol=tol, device=device)
    engine["n_jobs"] = scanpy_n_jobs(n_jobs)
    try:  # bad engine parameters fail here, not mid-sweep
        BcNMF(**{"random_state": random_state, **engine})._check_params()
    except TypeError as e:
        raise ValueError(f"engine_kwargs holds an unknown BcNMF parameter: {e}") from e
    if engine.get("n_shared", 0) not in (0, "auto"):
        raise ValueError(
            "The sweep chooses alpha of the contrastive model (n_shared=0); the shared-topic "
            "model has no alpha. Fit it with tl.bcnmf, or drop n_shared from engine_kwargs."
        )
    n_test = 0

    def check_k(n_t: int, n_genes: int) -> None:
        nonlocal n_test
        n_test = int(round(heldout * n_t)) if heldout > 0 else 0
        if heldout > 0 and n_test < 1:
            raise ValueError(f"heldout={heldout} holds out no cell of {n_t} target cells.")
        largest = min(n_t - n_test, n_genes)
        if k_list[-1] > largest:
            raise ValueError(
                f"n_topics={k_list[-1]} is too large for {n_t - n_test} target cells (fitted) "
                f"x {n_genes} genes; use at most {largest}."
            )

    inp = prepare_inputs(
        adata, background_key, background, target,
        layer=layer, mask_var=mask_var, loss=loss, check=check_k, check_counts=check_counts,
    )  # fmt: skip
    X_t, X_b = inp.rows(inp.is_target), inp.rows(inp.is_background)
    n_t, n_genes = inp.n_target, inp.n_genes

    seeds = restart_seeds(random_state, int(n_init))
    split = _heldout_split(random_state, n_t, n_test)
    grid = [(a, k) for k in k_list for a in alpha_list]
    start = logg.info(
        f"sweeping bcNMF over {len(grid)} settings x {n_init} restarts on {n_t} target vs "
        f"{int(inp.is_background.sum())} background cells x {n_genes} genes"
    )

    rows = _run_grid(grid, progress, lambda a, k: evaluate(
        X_t, X_b, k, a, seeds, loss, engine, split, float(min_stability)
    ))  # fmt: skip
    table, recommended, step = _table(rows, float(tolerance))
    params = {
        "background_key": background_key,
        "background": [plain(v) for v in inp.background],
        "target": [plain(v) for v in inp.target],
        "alphas": alpha_list,
        "n_topics": k_list,
        "n_init": int(n_init),
        "seeds": seeds,
        "loss": loss,
        "layer": layer,
        "mask_var": inp.mask_name,
        "n_genes_used": n_genes,
        "heldout": float(heldout),
        "n_heldout": n_test,
        "min_stability": float(min_stability),
        "tolerance": float(tolerance),
        "batch_size": batch_size,
        "max_epochs": max_epochs,
        "tol": None if tol is None else float(tol),
        "random_state": random_state,
        "device": str(device),
        "check_counts": bool(check_counts),
        **{f"engine_{k}": v for k, v in (engine_kwargs or {}).items()},
    }
    params = plain_params(params)
    adata.uns[key_added] = {
        "table": table,
        "recommended": recommended,
        "rule": step,
        "params": params,
    }
    logg.info(
        f"    finished: recommended alpha={recommended['alpha']:g}, "
        f"n_topics={recommended['n_topics']}",
        time=start,
        deep=f"added\n    .uns['{key_added}'], table, recommended setting and params",
    )
    return table
