"""An independent negative-binomial count simulator for the recovery benchmark.

Deliberately written apart from :func:`bcnmf_sc.datasets.simulate` (other distributions,
other code path, no shared helpers), so that the benchmark also scores the method on data
its developers did not shape. Defaults follow issue 14: 2,000 genes, 6 cell types shared by
both conditions (in the same, unequal proportions) with 150 marker genes each, one 80-gene
3-fold program in 40% of the target cells, 3,000 + 3,000 cells.

Generative model, per cell i and gene g:

* gene baseline ``m_g``: log-normal (sdlog 1.2), normalised to sum 1;
* cell type ``t_i`` from proportions ``Dirichlet(5, ..., 5)`` (one draw shared by both
  conditions); each type multiplies its own 150 marker genes by a per-gene fold,
  log-normal around 4 (sdlog 0.3); marker sets are disjoint;
* program: in a random 40% of target cells the 80 program genes (none of them markers)
  are multiplied by exactly ``program_fold``;
* size factor ``s_i``: log-normal, median 2,500 counts (sdlog 0.5), independent of the
  condition;
* counts: negative binomial with mean ``s_i * q_ig`` (``q`` the cell's profile
  renormalised to sum 1) and gene-wise dispersion ``phi_g = 0.05 + 0.5 / sqrt(m_g * 1e4)``
  (variance ``mu + phi_g mu**2``), drawn as ``numpy`` ``negative_binomial``.

Ground truth uses the same columns as the package simulator: ``obs["condition"]``
("target"/"background"), ``obs["cell_type"]``, ``obs["program_1"]`` (bool);
``var["program"]`` ("program_1" or "none") and ``var["marker_of"]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData


def nb_simulate(
    n_target: int = 3000,
    n_background: int = 3000,
    n_genes: int = 2000,
    *,
    n_types: int = 6,
    n_markers: int = 150,
    n_program_genes: int = 80,
    program_fold: float = 3.0,
    program_fraction: float = 0.4,
    median_size: float = 2500.0,
    seed: int = 0,
) -> AnnData:
    """Independent NB counts with ground truth (see the module docstring)."""
    gen = np.random.default_rng([seed, 14])  # a stream unlike simulate()'s
    m = np.exp(1.2 * gen.standard_normal(n_genes))
    m /= m.sum()
    order = gen.permutation(n_genes)
    marker_sets = [order[t * n_markers : (t + 1) * n_markers] for t in range(n_types)]
    rest = order[n_types * n_markers :]
    prog_genes = gen.choice(rest, size=n_program_genes, replace=False)

    props = gen.dirichlet(np.full(n_types, 5.0))
    n_cells = n_target + n_background
    types = gen.choice(n_types, size=n_cells, p=props)
    in_target = np.arange(n_cells) < n_target
    on = in_target & (gen.uniform(size=n_cells) < program_fraction)

    log_fold = np.zeros((n_types, n_genes))
    for t, genes in enumerate(marker_sets):
        log_fold[t, genes] = np.log(4.0) + 0.3 * gen.standard_normal(len(genes))
    q = m[None, :] * np.exp(log_fold[types])
    q[np.ix_(on, prog_genes)] *= program_fold
    q /= q.sum(axis=1, keepdims=True)
    size = median_size * np.exp(0.5 * gen.standard_normal(n_cells))
    mu = size[:, None] * q
    phi = 0.05 + 0.5 / np.sqrt(m * 1e4)
    r = 1.0 / phi  # NB(r, p) has mean r(1-p)/p = mu for p = r / (r + mu)
    counts = gen.negative_binomial(r[None, :], r[None, :] / (r[None, :] + mu))

    program = np.full(n_genes, "none", dtype=object)
    program[prog_genes] = "program_1"
    marker_of = np.full(n_genes, "none", dtype=object)
    for t, genes in enumerate(marker_sets):
        marker_of[genes] = f"type_{t + 1}"
    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(
                np.where(in_target, "target", "background"), categories=["background", "target"]
            ),
            "cell_type": pd.Categorical([f"type_{t + 1}" for t in types]),
            "program_1": on,
        },
        index=[f"nbcell_{i:05d}" for i in range(n_cells)],
    )
    var = pd.DataFrame(
        {"program": pd.Categorical(program), "marker_of": pd.Categorical(marker_of)},
        index=[f"nbgene_{g:04d}" for g in range(n_genes)],
    )
    X = sp.csr_matrix(counts.astype(np.float32))
    X.eliminate_zeros()
    ad = AnnData(X=X, obs=obs, var=var)
    ad.uns["nbsim"] = {"seed": seed, "cell_type_proportions": props.tolist()}
    return ad
