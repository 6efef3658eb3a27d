"""The shared model's forgetting horizon: time to an answer at each horizon, side by side.

Run from the repository root::

    python benchmarks/bench_forget.py --cells 20000 --k 10 --forget 20000,5000,2500
    python benchmarks/bench_forget.py --cells 6000 --k 10 --seed 1 --repeats 2

``BcNMF(K)`` defaults (the shared-topic model) on ``bench_time_to_answer.planted_counts``
(8 shared cell types, a 60-gene 3-fold program in 40% of the target cells; 2,000 genes,
20% non-zeros), once per horizon of the shared model
(``engine_options(forget_cells_shared=(value, 0))``: that many cells, capped at an epoch
and at 20,000), the values taking turns (``--repeats`` rounds) so that other load on the
machine hits all alike; one torch thread. Reported per value (medians over rounds; each
fit is deterministic, so only the seconds vary): epochs to the default stopping rule, seconds, the final objective and its
gap to the best objective of any row (relative), and the best target topic's cell AUROC
for the program. With ``--long E`` every value also runs ``E`` epochs with ``tol=0``:
the reference for "converged" (the gap column is then relative to the best of those).
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


def fit(X, Y, program, k: int, forget: float, **kw) -> dict:
    """One ``BcNMF(k)`` fit with the shared model's horizon ``forget`` cells."""
    from sklearn.metrics import roc_auc_score

    from bcnmf_sc import BcNMF
    from bcnmf_sc._engine.options import engine_options

    horizon = engine_options(forget_cells_shared=(forget, 0.0))
    with warnings.catch_warnings(record=True) as caught, horizon:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        m = BcNMF(k, random_state=0, n_jobs=1, **kw).fit(X, Y)
        sec = time.perf_counter() - t0
    P = m.usage_target_ / np.maximum(m.usage_target_.sum(1, keepdims=True), 1e-300)
    return {
        "seconds": sec,
        "epochs": int(m.n_epochs_),
        "objective": float(m.objective_),
        "auroc": max(roc_auc_score(program, P[:, j]) for j in range(k)),
        "warned": sorted({w.category.__name__ for w in caught}),
    }


def main(argv=None) -> None:
    """Fit at each horizon, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=20000, help="cells per group")
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--density", type=float, default=0.2)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated data")
    p.add_argument("--forget", default="20000,5000,2500")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--long", type=int, default=0, help="also E epochs with tol=0 per value")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    X, Y, program = planted_counts(args.cells, args.cells, args.genes, args.density, args.seed)
    values = [float(v) for v in args.forget.split(",")]
    runs: dict[float, list[dict]] = {v: [] for v in values}
    for _ in range(args.repeats):
        for v in values:
            runs[v].append(fit(X, Y, program, args.k, v))
    longs = (
        {v: fit(X, Y, program, args.k, v, max_epochs=args.long, tol=0) for v in values}
        if args.long
        else {}
    )
    best = min(
        [r[0]["objective"] for r in runs.values()] + [r["objective"] for r in longs.values()]
    )
    base = statistics.median(r["seconds"] for r in runs[values[0]])
    print(f"{args.cells:,} + {args.cells:,} cells x {args.genes:,} genes ({args.density:.0%}), "
          f"K = {args.k}, data seed {args.seed}; `BcNMF({args.k})` defaults but the horizon; "
          f"one thread; medians of {args.repeats} round(s)\n")  # fmt: skip
    print(
        "| horizon (cells) | epochs | s | vs first row | objective | gap to best | cell AUROC "
        "| warnings |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for v in values:
        r = runs[v]
        sec = statistics.median(x["seconds"] for x in r)
        o = r[0]["objective"]
        print(f"| {v:,.0f} | {r[0]['epochs']} | {sec:.1f} | {base / sec:.2f}x | {o:.6f} | "
              f"{(o - best) / abs(best):.1e} | {r[0]['auroc']:.3f} | "
              f"{', '.join(r[0]['warned'])} |")  # fmt: skip
    for v, r in longs.items():
        o = r["objective"]
        print(f"| {v:,.0f}, {args.long} epochs (tol=0) | {r['epochs']} | {r['seconds']:.1f} | - | "
              f"{o:.6f} | {(o - best) / abs(best):.1e} | {r['auroc']:.3f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
