"""Progress per epoch of the minibatch solver on large data, now vs the previous release.

Run from the repository root::

    python benchmarks/bench_converge.py                    # 100k cells, 5/10/15 epochs
    python benchmarks/bench_converge.py --size 1m --epochs 3,6

Two changes to the minibatch solver matter on large data, and this script measures them
side by side in one process, on the simulated counts of ``bench_scale.py`` (2,000 genes,
about 10% non-zeros, 8 shared cell types and a 40-gene target program; the file is
generated once under ``--data-dir`` and read into memory):

* the running statistics that update ``W`` are forgotten over at most 20,000 cells
  instead of over one epoch, so ``W`` takes many steps per epoch on data much larger than
  that (it took about one per epoch);
* the target usages of each batch take over-relaxed steps (plain multiplicative steps
  before).

"before" re-creates the previous solver by switching both back (the module constant that
sets the horizon, and plain steps for the target usages). For each variant and each epoch
count E it fits ``BcNMF(K=20)`` with ``max_epochs=E, tol=0`` and reports the true
objective after E epochs (usages refitted to the final topics, ``objective_``: lower is
better), the per-epoch objective of training, and the seconds per epoch. One torch thread.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import _n, generate  # noqa: E402


def _variants():
    from bcnmf_sc import BcNMF
    from bcnmf_sc._engine import engine_options, solver

    @contextlib.contextmanager
    def before():
        """The minibatch solver before: statistics forgotten per epoch, plain target steps."""
        solve = solver.solve_usage

        def plain_target_steps(rt, b, H, W, max_iter, tol):
            if tol == 0.0:  # the target steps of a minibatch
                for _ in range(max_iter):
                    H = rt.loss.h_step(b, H, W)
                return H
            return solve(rt, b, H, W, max_iter, tol)

        solver.solve_usage = plain_target_steps
        try:
            # per epoch in both models (the shared one has its own horizon)
            per_epoch = engine_options(
                forget_cells=float("inf"), forget_cells_shared=(float("inf"), 0.0)
            )
            with per_epoch:
                yield
        finally:
            solver.solve_usage = solve

    return {"before": (BcNMF, before), "now": (BcNMF, contextlib.nullcontext)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="100k", help="10k, 100k, 1m or a number of cells")
    p.add_argument("--epochs", default="5,10,15", help="comma list of epoch counts")
    p.add_argument("-k", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "bcnmf_scale"))
    p.add_argument("--json", default=None, help="append results to this JSON-lines file")
    args = p.parse_args()

    import anndata as ad
    import torch

    torch.set_num_threads(1)
    n = _n(args.size)
    path = Path(args.data_dir) / f"scale_{n}x2000_d0.1.h5ad"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", flush=True)
        generate(path, n, 2000, 0.1)
    adata = ad.read_h5ad(path)
    t = (adata.obs["condition"] == "target").to_numpy()
    X, Y = adata.X[t], adata.X[~t]
    print(f"{n:,} cells ({t.sum():,} target), K={args.k}", flush=True)

    rows = []
    for name, (cls, context) in _variants().items():
        for epochs in map(int, args.epochs.split(",")):
            with context(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                m = cls(args.k, max_epochs=epochs, tol=0, random_state=args.seed).fit(X, Y)
                total = time.perf_counter() - t0
            sec = np.diff([0.0, *m.history_["seconds"]])
            r = {
                "variant": name,
                "cells": n,
                "epochs": epochs,
                "objective": m.objective_,
                "training_objective": m.history_["objective"],
                "sec_per_epoch": float(np.median(sec)),
                "fit_s": total,
            }
            rows.append(r)
            print(
                f"{name:6s} {epochs:3d} epochs: objective {m.objective_:.5f}, "
                f"{r['sec_per_epoch']:.2f} s/epoch, fit {total:.0f} s",
                flush=True,
            )
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(r) + "\n")

    print("\n| epochs | objective before | objective now | s / epoch before | s / epoch now |")
    print("|---|---|---|---|---|")
    for epochs in map(int, args.epochs.split(",")):
        b, w = (next(r for r in rows if r["variant"] == v and r["epochs"] == epochs)
                for v in ("before", "now"))  # fmt: skip
        print(
            f"| {epochs} | {b['objective']:.5f} | {w['objective']:.5f} | "
            f"{b['sec_per_epoch']:.2f} | {w['sec_per_epoch']:.2f} |"
        )
    longest = max(rows, key=lambda r: (r["variant"] == "before", r["epochs"]))
    now_best = {r["epochs"]: r["objective"] for r in rows if r["variant"] == "now"}
    reached = [e for e, o in sorted(now_best.items()) if o <= longest["objective"]]
    if reached:
        print(
            f"\n'now' reaches the objective of 'before' after {longest['epochs']} epochs "
            f"({longest['objective']:.5f}) within {reached[0]} epochs."
        )


if __name__ == "__main__":
    main()
