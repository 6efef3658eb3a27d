"""What the program scores cost: ``tl.bcnmf``'s time with and without them, side by side.

Run from the repository root::

    python benchmarks/bench_program_scores.py --cells 20000 --k 10

The program scores (``.obsm["bcnmf_programs"]``) project every cell onto the program
profiles and the shared topics once, after the fit. On
``bench_time_to_answer.planted_counts`` (``--cells`` target + ``--cells`` background
cells, 2,000 genes, 20% non-zeros, a 60-gene 3-fold program in 40% of the target cells)
this runs ``tl.bcnmf`` with its defaults, one torch thread, and times, in the same
process: the whole call, and that projection alone, repeated on the fitted model
(``--repeats`` times, median). Also reported: the program's cell AUROC by its score.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_time_to_answer import planted_counts


def main(argv=None) -> None:
    """Fit once, time the projection again, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=20000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp
    from sklearn.metrics import roc_auc_score

    import bcnmf_sc as bc
    from bcnmf_sc._engine import BcNMF
    from bcnmf_sc._engine.programs import program_profiles
    from bcnmf_sc._engine.rows import InMemoryRows
    from bcnmf_sc.tl._enrichment import program_groups
    from bcnmf_sc.tl._outputs import score_programs

    X, Y, program = planted_counts(args.cells, args.cells, 2000, 0.2, seed=args.seed)
    adata = ad.AnnData(sp.vstack([X, Y]).tocsr().astype(np.float32))
    adata.obs["condition"] = pd.Categorical(["target"] * X.shape[0] + ["background"] * Y.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        bc.tl.bcnmf(adata, "condition", "background", n_topics=args.k, random_state=0,
                    n_jobs=1, progress=False)  # fmt: skip
        total = time.perf_counter() - t0
    uns = adata.uns["bcnmf"]
    table, topics = uns["programs"], list(uns["topics"])
    L = np.asarray(adata.varm["bcnmf_loadings"]).T
    usage = np.asarray(adata.obsm["X_bcnmf"])
    n_shared = int(uns["params"]["n_shared"])
    model = BcNMF.from_components(L, n_jobs=1)
    rows = InMemoryRows(adata.X)
    seconds = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        groups = program_groups(table, topics)
        profiles = program_profiles(L, usage, groups)
        score_programs(L, profiles, groups, n_shared, lambda V: model.project_onto(V, rows))
        seconds.append(time.perf_counter() - t0)
    proj = statistics.median(seconds)
    scores = adata.obsm["bcnmf_programs"]
    t = (adata.obs["condition"] == "target").to_numpy()
    auc = max((roc_auc_score(program, scores[c].to_numpy()[t]) for c in scores), default=np.nan)
    print(f"{args.cells} + {args.cells} cells x 2000 genes, K={args.k}, 1 thread, "
          f"{len(table)} program(s)")  # fmt: skip
    print("| what | seconds | share of tl.bcnmf |")
    print("|---|---|---|")
    print(f"| tl.bcnmf (defaults, with the program scores) | {total:.1f} | 1.00 |")
    print(f"| the program scores' projection alone (median of {args.repeats}) | {proj:.1f} "
          f"| {proj / total:.3f} |")  # fmt: skip
    print(f"program cell AUROC by its score: {auc:.3f}")


if __name__ == "__main__":
    main()
