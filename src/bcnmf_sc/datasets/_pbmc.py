"""Semi-synthetic data: real PBMC counts with a known program planted in part of the target."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

__all__ = ["pbmc_semisynthetic"]

# scanpy's pbmc68k_reduced stores .raw as round(log1p(counts * 1e4 / n_counts), 3), with
# n_counts the cell's total over the full original gene set (obs["n_counts"]).
_TARGET_SUM = 1e4
_RAW_DECIMALS = 3
# program genes are drawn among genes detected in this range of fractions of cells whose
# log-normalised expression is explained by bulk_labels to less than this fraction (eta^2)
_DETECTION_RANGE = (0.2, 0.8)
_MAX_CELL_TYPE_R2 = 0.1
_CELL_TYPE_KEY = "bulk_labels"


def _recover_counts(raw_X, n_counts: np.ndarray) -> sp.csr_matrix:
    """Integer counts from ``round(log1p(counts * 1e4 / n_counts), 3)`` (float64 CSR)."""
    X = sp.csr_matrix(raw_X, dtype=np.float64, copy=True)
    X.data = np.rint(np.expm1(X.data) * np.repeat(n_counts / _TARGET_SUM, np.diff(X.indptr)))
    X.eliminate_zeros()
    return X


def _cell_type_r2(counts: sp.csr_matrix, codes: np.ndarray) -> np.ndarray:
    """Per gene: fraction of the variance of log-normalised expression explained by type."""
    totals = np.asarray(counts.sum(1)).ravel()
    L = sp.diags(np.median(totals) / totals) @ counts
    L = np.log1p(L.toarray())
    mean = L.mean(0)
    between = np.zeros(L.shape[1])
    for t in np.unique(codes):
        rows = codes == t
        between += rows.sum() * (L[rows].mean(0) - mean) ** 2
    total = ((L - mean) ** 2).sum(0)
    return between / np.maximum(total, 1e-12)


def _check(name: str, value, low: float, high: float, *, low_open: bool, high_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}.")
    return float(value)


def pbmc_semisynthetic(
    *,
    n_program_genes: int = 50,
    program_fold: float = 6.0,
    program_fraction: float = 0.3,
    target_fraction: float = 0.5,
    random_state: int | np.random.Generator | None = 0,
) -> AnnData:
    """Real PBMC counts split into target and background, with a program planted in the target.

    A benchmark with a real backbone: everything except one planted gene program is real
    data, so the shared structure (cell types, cell cycle, sequencing depth, over-dispersion,
    gene-gene correlation) is as messy as in practice, and the answer is still known. No
    download: the data come from the file bundled with scanpy
    (:func:`scanpy.datasets.pbmc68k_reduced`: 700 peripheral blood mononuclear cells from
    the 10x Genomics "Fresh 68k PBMCs" data set, 765 genes).

    **Real**

    * The counts. ``pbmc68k_reduced().raw`` holds ``round(log1p(counts * 1e4 / n_counts),
      3)``, where ``n_counts`` (kept in ``obs``) is the cell's total over the full original
      transcriptome; the 765 genes kept hold about 20 % of it. The integer counts are
      recovered exactly as ``rint(expm1(raw) * n_counts / 1e4)``: the rounding to three
      decimals moves ``expm1(raw) * n_counts / 1e4`` off the integer by less than 0.08% of
      the count, far less than 0.5 at these counts (at most 259); renormalising the
      recovered counts the same way reproduces ``.raw`` to the stored three decimals.
    * The cell annotations in ``obs`` (``bulk_labels`` cell types, ``louvain`` clusters,
      ``phase``, ``S_score``, ``G2M_score``, ``n_genes``, ``percent_mito``,
      ``n_counts``), all computed by scanpy on the original data: ``n_genes`` and
      ``n_counts`` refer to the full original transcriptome, not to ``.X``.
    * The UMAP of the original data, as ``obsm["X_umap_original"]``. It shows the cell
      types; it was computed before anything was planted and does not show the program.
      Recompute an embedding from ``.X`` if you need one that does. The original PCA and
      neighbour graph are dropped (they were computed on differently processed data).

    **Planted**

    * The split. Within each ``bulk_labels`` cell type, a random ``target_fraction`` of
      the cells (rounded) is labelled ``"target"``, the others ``"background"``
      (``obs["condition"]``): both conditions hold the same cell types in nearly the same
      proportions, so cell type is shared structure. Real cells of one donor and one
      experiment: there is no real difference between the conditions.
    * The program: ``n_program_genes`` genes (``var["program"]``) drawn at random among
      the genes detected in 20-80 % of the cells whose log-normalised expression is
      explained by ``bulk_labels`` to less than 10 % (so no cell-type markers, and none
      too rare to carry a signal).
    * Its activity: in a random ``program_fraction`` of the target cells (rounded;
      ``obs["program"]``, independent of cell type), each program gene's real count gets
      an independent increment ``Poisson((program_fold - 1) * lambda)``, where
      ``lambda = total_count(cell) * share(gene | cell type)`` is the expected count of the
      gene in a cell of that type and depth (the cell type's pooled share of the gene's
      counts, times the cell's total count over ``.X`` before planting). So a program
      cell's expected count of a program gene is ``program_fold`` times that of a cell of
      the same type and depth without the program; the real count underneath keeps the
      cell's own biological and technical noise, and the increment adds Poisson noise
      (for a Poisson gene, the sum is exactly Poisson with ``program_fold`` times the
      rate). All other counts, and all counts of background and other target cells, are
      the real ones, untouched. At the defaults the program genes hold about 4 % of the
      counts of other cells, and the planted counts raise a program cell's total by about
      a fifth (``obs["planted_counts"]``): a strong program, chosen so that bcNMF finds it
      and plain NMF does not. Measured with :func:`bcnmf_sc.tl.bcnmf` at its default
      ``alpha`` (data seeds 0 and 1), the best topic's usage proportion separates the
      program cells from the other target cells with AUROC 0.94 and 0.96 at
      ``n_topics=2`` (0.96 at ``n_topics=3``, seed 0), and its loadings rank the program
      genes with AUROC 0.99; plain NMF (``alpha=0``) reaches 0.60. Weaker programs are
      much harder on this real backbone than on :func:`~bcnmf_sc.datasets.simulate` data:
      with ``program_fold=3`` and 20 genes the same AUROC is about 0.6, although the
      program cells' share of counts on the program genes alone separates them with AUROC
      0.99.

    Parameters
    ----------
    n_program_genes
        Number of genes in the planted program.
    program_fold
        Fold change (> 1) of the expected count of each program gene in program cells.
    program_fraction
        Fraction of the target cells, in (0, 1], in which the program is active.
    target_fraction
        Fraction of each cell type labelled target, in (0, 1).
    random_state
        Seed (int) or ``numpy.random.Generator``.

    Returns
    -------
    AnnData
        700 cells x 765 genes. ``.X``: counts (CSR, float32; integer valued), also in
        ``layers["counts"]``. ``obs``: ``condition`` (categorical, ``"background"`` /
        ``"target"``), ``program`` (bool, planted program active), ``planted_counts``
        (counts added to the cell) and the real annotations listed above. ``var``:
        ``program`` (bool, planted gene). ``obsm["X_umap_original"]``. ``uns["pbmc_
        semisynthetic"]``: the parameters, ``n_program_cells``, ``program_genes`` and the
        selection criteria.

    Examples
    --------
    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.pbmc_semisynthetic()
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=3)  # doctest: +SKIP
    """
    import scanpy as sc  # imported here: reading the bundled file is the only use

    if isinstance(n_program_genes, bool) or not isinstance(n_program_genes, numbers.Integral):
        raise ValueError(f"n_program_genes must be an integer, got {n_program_genes!r}.")
    program_fold = _check("program_fold", program_fold, 1, np.inf, low_open=True, high_open=True)
    program_fraction = _check(
        "program_fraction", program_fraction, 0, 1, low_open=True, high_open=False
    )
    target_fraction = _check(
        "target_fraction", target_fraction, 0, 1, low_open=True, high_open=True
    )
    rng = np.random.default_rng(random_state)

    orig = sc.datasets.pbmc68k_reduced()
    n_counts = orig.obs["n_counts"].to_numpy(dtype=np.float64)
    counts = _recover_counts(orig.raw.X, n_counts)
    genes = orig.raw.var_names
    obs = orig.obs.copy()
    cell_type = obs[_CELL_TYPE_KEY]
    codes = cell_type.cat.codes.to_numpy()

    detection = np.diff(sp.csc_matrix(counts).indptr) / counts.shape[0]
    r2 = _cell_type_r2(counts, codes)
    candidates = np.flatnonzero(
        (detection >= _DETECTION_RANGE[0])
        & (detection <= _DETECTION_RANGE[1])
        & (r2 < _MAX_CELL_TYPE_R2)
    )
    if not 1 <= n_program_genes <= candidates.size:
        raise ValueError(
            f"n_program_genes must be between 1 and {candidates.size} (the genes that qualify: "
            f"detected in {_DETECTION_RANGE[0]:.0%}-{_DETECTION_RANGE[1]:.0%} of the cells, "
            f"not cell-type structured), got {n_program_genes}."
        )

    # stratified split: the same cell types in both conditions
    is_target = np.zeros(counts.shape[0], dtype=bool)
    for t in np.unique(codes):
        cells = rng.permutation(np.flatnonzero(codes == t))
        n_t = int(round(target_fraction * cells.size))
        if cells.size >= 2:
            n_t = min(max(n_t, 1), cells.size - 1)
        is_target[cells[:n_t]] = True
    target_cells = np.flatnonzero(is_target)
    n_program_cells = max(1, int(round(program_fraction * target_cells.size)))
    program_cells = np.sort(rng.choice(target_cells, n_program_cells, replace=False))
    program_genes = np.sort(rng.choice(candidates, n_program_genes, replace=False))

    # expected counts: the cell's total times its cell type's pooled share of the gene
    totals = np.asarray(counts.sum(1)).ravel()
    type_counts = np.vstack(
        [
            np.asarray(counts[codes == t][:, program_genes].sum(0)).ravel()
            for t in range(codes.max() + 1)
        ]
    )
    type_totals = np.bincount(codes, weights=totals, minlength=codes.max() + 1)
    share = type_counts / np.maximum(type_totals, 1.0)[:, None]
    lam = totals[program_cells, None] * share[codes[program_cells]]
    extra = rng.poisson((program_fold - 1.0) * lam)

    X = counts.toarray()  # 700 x 765: small
    X[np.ix_(program_cells, program_genes)] += extra
    X = sp.csr_matrix(X, dtype=np.float32)

    in_program = np.zeros(counts.shape[0], dtype=bool)
    in_program[program_cells] = True
    planted = np.zeros(counts.shape[0])
    planted[program_cells] = extra.sum(1)
    obs.insert(
        0,
        "condition",
        pd.Categorical(
            np.where(is_target, "target", "background"), categories=["background", "target"]
        ),
    )
    obs.insert(1, "program", in_program)
    obs.insert(2, "planted_counts", planted.astype(np.float32))
    var = pd.DataFrame(index=pd.Index(genes, name=None))
    var["program"] = np.isin(np.arange(len(genes)), program_genes)
    obs.index.name = None

    adata = AnnData(X=X, obs=obs, var=var)
    adata.layers["counts"] = X.copy()
    adata.obsm["X_umap_original"] = np.asarray(orig.obsm["X_umap"]).copy()
    if f"{_CELL_TYPE_KEY}_colors" in orig.uns:
        adata.uns[f"{_CELL_TYPE_KEY}_colors"] = list(orig.uns[f"{_CELL_TYPE_KEY}_colors"])
    adata.uns["pbmc_semisynthetic"] = {
        "source": "scanpy.datasets.pbmc68k_reduced (raw counts recovered from .raw)",
        "n_program_genes": int(n_program_genes),
        "program_fold": program_fold,
        "program_fraction": program_fraction,
        "target_fraction": target_fraction,
        "random_state": int(random_state) if isinstance(random_state, numbers.Integral) else None,
        "n_program_cells": int(n_program_cells),
        "program_genes": [str(g) for g in genes[program_genes]],
        "stratified_by": _CELL_TYPE_KEY,
        "gene_detection_range": list(_DETECTION_RANGE),
        "max_cell_type_r2": _MAX_CELL_TYPE_R2,
    }
    return adata
