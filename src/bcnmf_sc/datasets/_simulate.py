"""Simulated single-cell counts with shared cell types and planted target-only programs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

__all__ = ["simulate"]


def simulate(
    n_target: int = 1000,
    n_background: int = 1000,
    n_genes: int = 1000,
    *,
    n_cell_types: int = 4,
    n_markers: int = 40,
    cell_type_fold: float = 6.0,
    n_shared_programs: int = 0,
    shared_program_fraction: float = 0.3,
    shared_program_fold: float | None = None,
    n_programs: int = 1,
    n_program_genes: int = 30,
    program_fold: float | Sequence[float] = 3.0,
    program_fraction: float | Sequence[float] = 0.5,
    program_cell_type: int | None = None,
    composition_shift: tuple[int, float] | None = None,
    depth_ratio: float = 1.0,
    library_size: float = 2000.0,
    library_sd: float = 0.4,
    dispersion: float = 0.2,
    counts_layer: bool = False,
    random_state: int | np.random.Generator | None = 0,
) -> AnnData:
    """Negative-binomial counts of target and background cells with known ground truth.

    Both conditions hold the same ``n_cell_types`` cell types in the same proportions; each
    cell type raises its own ``n_markers`` genes ``cell_type_fold``-fold, so cell type
    dominates the variation in both conditions (what plain NMF or PCA find first). Optional
    shared programs (think cell cycle or stress) are active in a random
    ``shared_program_fraction`` of the cells of *both* conditions. In a
    random ``program_fraction`` of the *target* cells, each of ``n_programs`` programs
    raises its own ``n_program_genes`` genes ``program_fold``-fold: a weaker signal that
    the background never shows. Programs are active independently of each other and of
    cell type.

    Counts are negative binomial with mean ``library * profile`` and variance
    ``mu + dispersion * mu**2``; libraries are log-normal around ``library_size`` (sd
    ``library_sd`` on the log scale); baseline gene profiles are gamma distributed, so
    many genes are lowly expressed and the matrix is sparse like real data.

    Parameters
    ----------
    n_target, n_background, n_genes
        Shape of the data.
    n_cell_types, n_markers, cell_type_fold
        Shared structure: how many cell types, marker genes per type, and their fold change.
    n_shared_programs, shared_program_fraction, shared_program_fold
        More shared structure: programs (of ``n_program_genes`` genes raised
        ``shared_program_fold``-fold, default ``program_fold``) active in this fraction of
        all cells, target and background.
    n_programs, n_program_genes, program_fold, program_fraction
        Target-only structure: the planted programs, their genes, fold change, and the
        fraction of target cells in which each is active. ``program_fold`` and
        ``program_fraction`` may be sequences, one value per program (programs of
        different strength). ``n_programs=0`` with the other defaults is a null: target
        and background cells are drawn from the same distribution.
    program_cell_type
        Restrict the planted programs to the target cells of one cell type (0-based index;
        ``type_{program_cell_type + 1}`` in ``obs["cell_type"]``): ``program_fraction``
        is then the fraction of *that type's* target cells in which a program is active.
        Default: all cell types.
    composition_shift
        ``(cell_type, factor)``: in the *target* the proportion of this cell type (0-based)
        is ``factor`` times its background proportion ``1 / n_cell_types``; the other
        types share the rest equally. Needs ``factor < n_cell_types``. Default: the
        same proportions in both conditions. Both conditions are then drawn with
        ``Generator.choice``, so the random stream differs from the default.
    depth_ratio
        Target cells are sequenced ``depth_ratio`` times deeper: their library sizes are
        multiplied by it (profiles unchanged), so their total counts are about
        ``depth_ratio`` times the background's.
    library_size, library_sd
        Median total count per cell (of background cells, and of target cells when
        ``depth_ratio`` is 1) and its log-scale spread.
    dispersion
        Negative-binomial over-dispersion (0 gives Poisson).
    counts_layer
        Also store the counts in ``layers["counts"]``.
    random_state
        Seed.

    Returns
    -------
    AnnData with integer counts in ``.X`` (CSR) and ground truth in ``obs``
    (``condition``: "target"/"background"; ``cell_type``; ``program_1`` ... and
    ``shared_1`` ...: bool, active or not) and ``var`` (``program``: the program a gene
    belongs to, ``program_1`` ... or ``shared_1`` ..., or "none";
    ``marker_of``: the cell type a gene marks or "none").
    """
    rng = np.random.default_rng(random_state)
    folds = np.broadcast_to(np.asarray(program_fold, dtype=float), (n_programs,)).copy()
    fractions = np.broadcast_to(np.asarray(program_fraction, dtype=float), (n_programs,)).copy()
    if program_cell_type is not None and not 0 <= int(program_cell_type) < n_cell_types:
        raise ValueError(f"program_cell_type must be in [0, {n_cell_types}).")
    if not depth_ratio > 0:
        raise ValueError("depth_ratio must be positive.")
    if composition_shift is not None:
        shift_type, shift_factor = int(composition_shift[0]), float(composition_shift[1])
        if not 0 <= shift_type < n_cell_types:
            raise ValueError(f"composition_shift cell type must be in [0, {n_cell_types}).")
        if not 0 < shift_factor < n_cell_types:
            raise ValueError(f"composition_shift factor must be in (0, {n_cell_types}).")
    n_prog_all = n_programs + n_shared_programs
    shared_fold = program_fold if shared_program_fold is None else shared_program_fold
    n_special = n_cell_types * n_markers + n_prog_all * n_program_genes
    if n_special > n_genes:
        raise ValueError(
            f"n_genes={n_genes} is too small for {n_cell_types} x {n_markers} markers and "
            f"{n_prog_all} x {n_program_genes} program genes; raise n_genes."
        )
    n = n_target + n_background
    base = rng.gamma(0.6, 1.0, size=n_genes) + 0.05
    genes = rng.permutation(n_genes)
    markers = genes[: n_cell_types * n_markers].reshape(n_cell_types, n_markers)
    prog_all = genes[n_cell_types * n_markers : n_special].reshape(n_prog_all, n_program_genes)
    prog, shared = prog_all[:n_programs], prog_all[n_programs:]

    if composition_shift is None:
        cell_type = rng.integers(n_cell_types, size=n)
    else:
        p_bg = np.full(n_cell_types, 1.0 / n_cell_types)
        p_tg = np.full(n_cell_types, (1.0 - shift_factor / n_cell_types) / (n_cell_types - 1))
        p_tg[shift_type] = shift_factor / n_cell_types
        cell_type = np.r_[
            rng.choice(n_cell_types, size=n_target, p=p_tg),
            rng.choice(n_cell_types, size=n_background, p=p_bg),
        ]
    is_target = np.zeros(n, dtype=bool)
    is_target[:n_target] = True
    active = np.zeros((n, n_programs), dtype=bool)
    active[:n_target] = rng.random((n_target, n_programs)) < fractions
    if program_cell_type is not None:
        active &= (cell_type == int(program_cell_type))[:, None]
    shared_active = rng.random((n, n_shared_programs)) < shared_program_fraction

    fold = np.ones((n, n_genes))
    for t in range(n_cell_types):
        fold[np.ix_(cell_type == t, markers[t])] *= cell_type_fold
    for p in range(n_programs):
        fold[np.ix_(active[:, p], prog[p])] *= folds[p]
    for p in range(n_shared_programs):
        fold[np.ix_(shared_active[:, p], shared[p])] *= shared_fold
    profile = base[None, :] * fold
    profile /= profile.sum(1, keepdims=True)
    lib = library_size * np.exp(library_sd * rng.standard_normal(n))
    if depth_ratio != 1.0:
        lib[:n_target] *= depth_ratio
    mu = lib[:, None] * profile
    if dispersion > 0:
        shape = 1.0 / dispersion
        mu = rng.gamma(shape, mu / shape)
    counts = sp.csr_matrix(rng.poisson(mu).astype(np.float32))
    counts.eliminate_zeros()

    names = [f"gene_{i:04d}" for i in range(n_genes)]
    program = np.array(["none"] * n_genes, dtype=object)
    marker_of = np.array(["none"] * n_genes, dtype=object)
    for p in range(n_programs):
        program[prog[p]] = f"program_{p + 1}"
        for j in prog[p]:
            names[j] = f"P{p + 1}_{names[j]}"
    for t in range(n_cell_types):
        marker_of[markers[t]] = f"type_{t + 1}"
    for p in range(n_shared_programs):
        program[shared[p]] = f"shared_{p + 1}"

    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(
                np.where(is_target, "target", "background"), categories=["background", "target"]
            ),
            "cell_type": pd.Categorical([f"type_{t + 1}" for t in cell_type]),
        },
        index=[f"cell_{i:05d}" for i in range(n)],
    )
    for p in range(n_programs):
        obs[f"program_{p + 1}"] = active[:, p]
    for p in range(n_shared_programs):
        obs[f"shared_{p + 1}"] = shared_active[:, p]
    var = pd.DataFrame(
        {"program": pd.Categorical(program), "marker_of": pd.Categorical(marker_of)},
        index=names,
    )
    adata = AnnData(X=counts, obs=obs, var=var)
    if counts_layer:
        adata.layers["counts"] = counts.copy()
    adata.uns["simulation"] = {
        "n_cell_types": n_cell_types,
        "n_markers": n_markers,
        "cell_type_fold": cell_type_fold,
        "n_programs": n_programs,
        "n_shared_programs": n_shared_programs,
        "shared_program_fraction": shared_program_fraction,
        "shared_program_fold": shared_fold,
        "n_program_genes": n_program_genes,
        "program_fold": program_fold if np.isscalar(program_fold) else folds.tolist(),
        "program_fraction": (
            program_fraction if np.isscalar(program_fraction) else fractions.tolist()
        ),
        "program_cell_type": program_cell_type,
        "composition_shift": None if composition_shift is None else list(composition_shift),
        "depth_ratio": depth_ratio,
        "library_size": library_size,
        "dispersion": dispersion,
        "random_state": random_state if isinstance(random_state, int) else None,
    }
    return adata
