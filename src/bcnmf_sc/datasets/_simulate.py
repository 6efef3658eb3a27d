"""Simulated single-cell counts with shared cell types and planted target-only programs."""

from __future__ import annotations

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
    program_fold: float = 3.0,
    program_fraction: float = 0.5,
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
        fraction of target cells in which each is active.
    library_size, library_sd
        Median total count per cell and its log-scale spread.
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

    cell_type = rng.integers(n_cell_types, size=n)
    is_target = np.zeros(n, dtype=bool)
    is_target[:n_target] = True
    active = np.zeros((n, n_programs), dtype=bool)
    active[:n_target] = rng.random((n_target, n_programs)) < program_fraction
    shared_active = rng.random((n, n_shared_programs)) < shared_program_fraction

    fold = np.ones((n, n_genes))
    for t in range(n_cell_types):
        fold[np.ix_(cell_type == t, markers[t])] *= cell_type_fold
    for p in range(n_programs):
        fold[np.ix_(active[:, p], prog[p])] *= program_fold
    for p in range(n_shared_programs):
        fold[np.ix_(shared_active[:, p], shared[p])] *= shared_fold
    profile = base[None, :] * fold
    profile /= profile.sum(1, keepdims=True)
    lib = library_size * np.exp(library_sd * rng.standard_normal(n))
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
        "program_fold": program_fold,
        "program_fraction": program_fraction,
        "library_size": library_size,
        "dispersion": dispersion,
        "random_state": random_state if isinstance(random_state, int) else None,
    }
    return adata
