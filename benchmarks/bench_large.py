"""Large data to convergence: a backed ``.h5ad`` fitted with the defaults, objective vs time.

Run from the repository root::

    python benchmarks/bench_large.py --cells 1000000                 # the issue's size
    python benchmarks/bench_large.py --cells 100000 --csv curve.csv  # what fits a 2-core session
    python benchmarks/bench_large.py --cells 20000 --device cuda

Simulated counts (``benchmarks/bench_scale.py``'s generator: 8 cell types, a 40-gene
program in the target, samples of 1,000 cells, 2,000 genes at about 10% non-zeros) are
written once to ``--path`` (reused when it exists), then read with
``sc.read_h5ad(path, backed="r")`` and fitted with ``bc.tl.bcnmf(adata, "condition",
"background", n_topics=K)``: the defaults, the default stopping rule (``tol``,
``max_epochs``), one torch thread unless ``--threads``. Printed: the objective after every
epoch with the seconds since the fit began, the epochs, whether the fit stopped by its own
criterion, and the time of the phases (before the first epoch, the epochs, after them);
``--csv`` writes the curve.
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> None:
    """Generate (once), fit backed, print the objective-vs-time curve."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=1_000_000)
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--density", type=float, default=0.1)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--path", type=Path, default=None, help="h5ad file (default /tmp/...)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--csv", type=Path, default=None)
    args = p.parse_args(argv)

    import scanpy as sc
    import torch

    import bcnmf_sc as bc

    sys.path.insert(0, str(HERE))
    from bench_scale import generate

    torch.set_num_threads(args.threads)
    path = args.path or Path(f"/tmp/bcnmf_large_{args.cells}x{args.genes}.h5ad")
    if not path.exists():
        t0 = time.perf_counter()
        info = generate(path, args.cells, args.genes, args.density)
        print(f"wrote {path}: {info} in {time.perf_counter() - t0:.0f} s", flush=True)
    adata = sc.read_h5ad(path, backed="r")
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bc.tl.bcnmf(
            adata, "condition", "background", n_topics=args.k, device=args.device,
            max_epochs=args.max_epochs, progress=False, n_jobs=args.threads,
        )  # fmt: skip
    total = time.perf_counter() - t0
    res = adata.uns["bcnmf"]
    h = res["history"]
    first, last = float(h["seconds"][0]), float(h["seconds"][-1])
    warned = sorted({w.category.__name__ for w in caught})
    print("epoch | seconds | objective")
    for e, s, o in zip(h["epoch"], h["seconds"], h["objective"], strict=True):
        print(f"{int(e)} | {float(s):.1f} | {float(o):.6f}")
    n_ep = int(res["n_epochs"])
    print(
        f"{adata.n_obs} cells x {adata.n_vars} genes, K={args.k}, {args.device}, "
        f"{args.threads} thread(s): {total:.1f} s in all, {n_ep} epochs "
        f"({'stopped by tol' if res['converged'] else 'max_epochs reached'}; warnings "
        f"{warned or 'none'}), {last / n_ep:.2f} s per epoch; before the epochs and "
        f"after them: {total - last:.1f} s; final objective {float(res['objective']):.6f}; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
        f"(first epoch ended at {first:.1f} s)"
    )
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch", "seconds", "objective"])
            for row in zip(h["epoch"], h["seconds"], h["objective"], strict=True):
                w.writerow([int(row[0]), float(row[1]), float(row[2])])


if __name__ == "__main__":
    main()
