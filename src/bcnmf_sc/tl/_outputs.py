"""The one way results go out: what a fit writes into an AnnData, built and written once.

:func:`fit_result` assembles everything :func:`bcnmf_sc.tl.bcnmf` stores (usages of all
cells, loadings, topic names, the enrichment table, the target score and the ``.uns``
dict with its ``params``) from a fitted model and the :class:`~bcnmf_sc.tl._inputs.Inputs`
it was fitted on; :func:`write_result` writes it. The torchrun entry point
(:mod:`bcnmf_sc.distributed`) is meant to use the same two functions, so its file holds
exactly what ``tl.bcnmf`` writes. :func:`plain_params` is the one rule for what a
``params`` dict may hold (h5ad-friendly Python scalars, ``None`` left out).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from bcnmf_sc._engine import BcNMF
from bcnmf_sc._engine.programs import program_basis, program_profiles, program_shares
from bcnmf_sc._utils import default_topic_names

from ._enrichment import (
    compare_usage,
    program_groups,
    score_weights,
    target_score,
    topic_programs,
)

#: ``project(W)``: the usages of all cells (obs order) for the fixed components ``W``
#: (rows x the genes the fit used).
Projector = Callable[[np.ndarray], np.ndarray]

__all__ = [
    "FitResult",
    "fit_params",
    "fit_result",
    "plain",
    "plain_params",
    "score_programs",
    "topic_families",
    "transform_result",
    "write_result",
]


def plain(v: Any) -> Any:
    """Numpy scalars -> Python scalars so params stay h5ad-friendly."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` without ``None`` values, numpy scalars made Python scalars."""
    return {k: plain(v) for k, v in params.items() if v is not None}


def fit_params(
    inputs: Any,
    model: BcNMF,
    *,
    background_key: str,
    n_topics: int,
    loss: str,
    layer: str | None,
    batch_size: int | None,
    max_epochs: int | None,
    tol: float | None,
    n_init: int,
    consensus: bool,
    seeds: list | None,
    random_state: Any,
    device: Any,
    holdout: float = 0.0,
    **extra: Any,
) -> dict[str, Any]:
    """The call's ``params`` record, the one rule for :func:`bcnmf_sc.tl.bcnmf` and torchrun.

    ``inputs`` is the :class:`~bcnmf_sc.tl._inputs.Inputs` the model was fitted on;
    ``extra`` (e.g. ``check_counts``, ``n_processes``) is added after ``device``.
    """
    n_shared, alpha = model.resolved_model()
    return {
        "background_key": background_key,
        "background": [plain(v) for v in inputs.background],
        "target": [plain(v) for v in inputs.target],
        "n_topics": int(n_topics),
        "n_shared": n_shared,
        "holdout": float(holdout),
        "alpha": alpha,
        "loss": loss,
        "layer": layer,
        "mask_var": inputs.mask_name,
        "n_genes_used": inputs.n_genes,
        "batch_size": batch_size,
        "max_epochs": max_epochs,
        "tol": float(getattr(model, "tol_", 1e-5 if tol is None else tol)),
        "n_init": int(n_init),
        "consensus": bool(consensus),
        "seeds": seeds if consensus else None,
        "random_state": random_state,
        "device": str(device),
        **extra,
    }


@dataclass
class FitResult:
    """What a fit writes: ``.obsm``, ``.varm``, ``.obs`` and ``.uns`` entries."""

    usage: np.ndarray  # n_obs x K
    loadings: np.ndarray  # n_vars x K
    score: np.ndarray  # n_obs
    uns: dict[str, Any]
    programs: np.ndarray | None = None  # n_obs x programs (uns["programs"] order)
    profiles: np.ndarray | None = None  # n_vars x programs: each program's gene profile


def score_programs(
    components: np.ndarray,
    profiles: np.ndarray,
    groups: list[np.ndarray],
    n_shared: int,
    project: Projector,
) -> np.ndarray:
    """Per cell and program, the share of its counts the program explains (cells x P).

    ``groups``: each program's topics (:func:`~bcnmf_sc.tl._enrichment.program_groups`).
    The cells are projected (``project``) onto the program profiles (programs x genes,
    on the genes of ``components``) and the topics the background is fitted with
    (:func:`bcnmf_sc._engine.programs.program_basis`); the one rule for a fit and for a
    query projected onto it. Needs at least one program.
    """
    basis = program_basis(components, profiles, groups, n_shared)
    return program_shares(project, basis, len(groups))


def topic_families(n_topics: int, n_shared: int) -> list[str] | None:
    """The families the enrichment table adjusts its p-values within (``compare_usage``).

    In the shared-topic model the target topics (the first ``n_topics - n_shared``) are
    one family and the shared topics another; in the contrast, all topics are one.
    """
    if n_shared <= 0:
        return None
    return ["target"] * (int(n_topics) - int(n_shared)) + ["shared"] * int(n_shared)


def fit_result(
    model: BcNMF,
    usage: np.ndarray,
    *,
    is_target: np.ndarray,
    is_background: np.ndarray,
    genes: np.ndarray,
    params: Mapping[str, Any],
    engine_kwargs: Mapping[str, Any] | None = None,
    consensus: Mapping[str, Any] | None = None,
    held_out: np.ndarray | None = None,
    project: Projector,
) -> FitResult:
    """Assemble a fit's results (``usage``: all cells, in obs order).

    ``project`` gives the usages of all cells for other fixed components (the program
    scores re-express the cells on the program profiles, :func:`score_programs`).

    ``params`` are the call's parameters (up to ``device``); the engine's choices
    (``device_used``, ``solver``, ``init``, ``alpha_scaling``, ``dtype``), the group
    sizes and ``engine_kwargs`` (as ``engine_<name>``) are added here, in that order.
    ``held_out``: cells of both groups left out of training; when given, the enrichment
    table compares those cells only (both groups then meet the topics as new cells).
    """
    K = usage.shape[1]
    loadings = np.zeros((len(genes), K))
    loadings[genes] = model.components_.T
    n_shared = model.resolved_model()[0]
    topics = default_topic_names(K, n_shared)
    compared = np.ones_like(is_target) if held_out is None else held_out
    enrichment = compare_usage(
        usage, is_target & compared, is_background & compared, topics,
        names=("target", "background"), families=topic_families(K, n_shared),
    )  # fmt: skip
    weights = score_weights(enrichment, topics, n_shared)
    score = target_score(usage, weights)
    programs = topic_programs(model.components_, usage, enrichment, topics, n_shared)
    groups = program_groups(programs, topics)
    profiles = program_profiles(model.components_, usage, groups)
    scores = np.zeros((len(usage), 0))
    if groups:
        scores = score_programs(model.components_, profiles, groups, n_shared, project)
    profiles_all = np.zeros((len(genes), len(programs)))
    profiles_all[genes] = profiles.T
    if consensus is not None:  # per-topic stability, in the table's (sorted) order
        stability = pd.Series(consensus["stability"], index=topics)
        enrichment["stability"] = stability.reindex(enrichment.index).to_numpy()
    engine = model.get_params()
    other = ~(is_target | is_background)
    record = {
        **params,
        "device_used": str(getattr(model, "device_", params.get("device"))),
        "solver": getattr(model, "solver_", engine.get("solver")),
        "init": engine.get("init"),
        "alpha_scaling": getattr(model, "alpha_scaling_", engine.get("alpha_scaling")),
        "null_topic": getattr(model, "null_topic_", engine.get("null_topic")),
        "dtype": engine.get("dtype"),
        "n_target": int(is_target.sum()),
        "n_background": int(is_background.sum()),
        "n_projected": int(other.sum()),
        "n_held_out": 0 if held_out is None else int(held_out.sum()),
        **{f"engine_{k}": v for k, v in (engine_kwargs or {}).items()},
    }
    uns: dict[str, Any] = {
        "params": plain_params(record),
        "history": {k: np.asarray(v, dtype=float) for k, v in model.history_.items()},
        "topics": topics,
        "objective": float(model.objective_),
        "n_epochs": int(model.n_epochs_),
        "converged": bool(model.converged_),
        "swapped_topics": np.asarray(getattr(model, "swapped_topics_", []), dtype=int).reshape(
            -1, 2
        ),
        "enrichment": enrichment,
        "programs": programs,
    }
    if consensus is not None:
        uns["consensus"] = {
            "stability": np.asarray(consensus["stability"], dtype=float),
            "n_kept": np.asarray(consensus["kept"].sum(1), dtype=int),
            "objectives": np.asarray(consensus["objectives"], dtype=float),
            "reference": int(consensus["reference"]),
        }
    return FitResult(
        usage=usage,
        loadings=loadings,
        score=score,
        uns=uns,
        programs=scores,
        profiles=profiles_all,
    )


def transform_result(
    reference: Mapping[str, Any],
    usage: np.ndarray,
    loadings: np.ndarray,
    score: np.ndarray,
    *,
    layer: str | None,
    genes: np.ndarray,
    project: Projector,
    profiles: np.ndarray | None = None,
) -> FitResult:
    """What :func:`bcnmf_sc.tl.bcnmf_transform` writes on the query.

    ``reference`` is the reference's ``.uns[key]``; ``loadings`` are the reference's
    loadings on the query's genes (``n_vars`` x K, renormalised over the matched genes,
    0 elsewhere). The query's ``.uns[key]`` holds the reference's ``params`` (with
    ``projected=True``, the query's ``layer`` and ``n_genes_matched``), ``topics``,
    ``history``, ``n_epochs``, ``converged``, ``swapped_topics``, ``enrichment``
    (the reference's target vs background table: which topics are target-enriched) and
    ``programs`` (the reference's; ``profiles``, their gene profiles on the query's
    genes, n_vars x programs, are scored on the query with :func:`score_programs`), so
    that ``pl.*``, ``get.*`` and :func:`~bcnmf_sc.tl.topic_enrichment` work on the query as on the
    reference. ``genes``: the query's genes the projection reads (indices into its
    ``var_names``, in the order of ``project``'s columns; their number is
    ``n_genes_matched``); ``project(W)`` gives the query cells' usages for components on
    those genes.
    """
    params = dict(reference.get("params", {}))
    params.pop("layer", None)
    genes = np.asarray(genes, dtype=int)
    record = {**params, "projected": True, "layer": layer, "n_genes_matched": len(genes)}
    uns: dict[str, Any] = {
        "params": plain_params(record),
        "topics": [str(t) for t in reference.get("topics", default_topic_names(usage.shape[1]))],
        "history": {
            k: np.asarray(v, dtype=float) for k, v in dict(reference.get("history", {})).items()
        },
    }
    for name in ("n_epochs", "converged", "swapped_topics"):
        if name in reference:
            uns[name] = plain(reference[name])
    enrichment = reference.get("enrichment")
    if isinstance(enrichment, pd.DataFrame):
        uns["enrichment"] = enrichment.copy()
    programs = reference.get("programs")
    scores = None
    if isinstance(programs, pd.DataFrame) and profiles is not None:
        uns["programs"] = programs.copy()
        scores = np.zeros((len(usage), 0))
        groups = program_groups(programs, uns["topics"])
        if groups:
            n_shared = int(params.get("n_shared", 0))
            scores = score_programs(loadings[genes].T, profiles[genes].T, groups, n_shared, project)
    return FitResult(
        usage=usage, loadings=loadings, score=score, uns=uns, programs=scores, profiles=profiles
    )


def write_result(adata: AnnData, key_added: str, result: FitResult) -> None:
    """Write a fit's results into ``adata``: the only writer of fit results.

    Sets ``.obsm[f"X_{key}"]``, ``.varm[f"{key}_loadings"]``,
    ``.obs[f"{key}_target_score"]``, ``.uns[key]`` and, when the fit has a programs
    table, ``.obsm[f"{key}_programs"]`` (a DataFrame: cells x programs, each program's
    share of the cell's counts) and ``.varm[f"{key}_programs"]`` (a DataFrame: genes x
    programs, each program's gene profile).
    """
    adata.obsm[f"X_{key_added}"] = result.usage
    if result.programs is not None and "programs" in result.uns:
        names = list(result.uns["programs"].index)
        adata.obsm[f"{key_added}_programs"] = pd.DataFrame(
            result.programs, index=adata.obs_names, columns=names
        )
        if result.profiles is not None:
            adata.varm[f"{key_added}_programs"] = pd.DataFrame(
                result.profiles, index=adata.var_names, columns=names
            )
    adata.varm[f"{key_added}_loadings"] = result.loadings
    adata.obs[f"{key_added}_target_score"] = result.score
    adata.uns[key_added] = result.uns
