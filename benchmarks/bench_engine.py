"""Seconds per epoch and peak memory: bcnmf-sc's engine vs the dense published updates vs
scikit-learn's MiniBatchNMF (KL, target alone).

Run from the repository root::

    python benchmarks/bench_engine.py                       # 20k + 20k cells x 2k genes, K=20
    python benchmarks/bench_engine.py --cells 2000 --genes 500   # a quick look

Every method runs in its own fresh Python process (started one after the other by this
script, in the same session), so its peak resident memory can be read from the operating
system; the memory reported is the peak *above* the process's memory right after loading
the input, i.e. what the method itself needed. Data are simulated in chunks and never
held dense except by the dense method, which needs it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp


def simulate_counts(n: int, g: int, density: float, seed: int) -> sp.csr_matrix:
    """Counts with 8 cell types, about ``density`` non-zeros, built 2,000 rows at a time."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(0.6, 1.0, size=g) + 0.05
    types = rng.gamma(2.0, 0.5, size=(8, g))
    # library size that gives the requested density for an average gene
    lib = -np.log(1 - density) * g * 1.6
    blocks = []
    for start in range(0, n, 2000):
        m = min(2000, n - start)
        prof = base * types[rng.integers(8, size=m)]
        prof /= prof.sum(1, keepdims=True)
        mu = prof * lib * np.exp(0.3 * rng.standard_normal((m, 1)))
        blocks.append(sp.csr_matrix(rng.poisson(mu).astype(np.float32)))
    return sp.vstack(blocks).tocsr()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def run_one(method: str, args) -> dict:
    import sklearn.decomposition  # noqa: F401
    import torch

    # import every method's modules first: the memory reported is what the method needs
    # for its computation, not the size of the libraries it loads
    import bcnmf_sc  # noqa: F401

    torch.manual_seed(0)
    X = simulate_counts(args.cells, args.genes, args.density, seed=1)
    Y = simulate_counts(args.cells, args.genes, args.density, seed=2)
    base = _current_rss_mb()
    k, epochs = args.k, args.epochs
    if method == "bcnmf":
        from bcnmf_sc import BcNMF

        m = BcNMF(
            k,
            solver="minibatch",
            max_epochs=epochs,
            tol=0,
            init="random",
            batch_size=args.batch_size,
        )
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(X, Y)
        sec = np.diff([0.0, *m.history_["seconds"]])[1:].mean()  # skip the first epoch
    elif method == "dense":
        # the published KL updates, written from the formulas, on dense tensors with the
        # all-ones matrices they use (genes x cells orientation: X ~ W H)
        Xd = torch.from_numpy(X.T.toarray())
        Yd = torch.from_numpy(Y.T.toarray())
        g, nx = Xd.shape
        ny = Yd.shape[1]
        W = torch.rand(g, k)
        HX, HY = torch.rand(k, nx), torch.rand(k, ny)
        ones_x, ones_y = torch.ones(g, nx), torch.ones(g, ny)
        times = []
        for _ in range(epochs):
            t0 = time.perf_counter()
            HX *= (W.T @ (Xd / (W @ HX))) / (W.T @ ones_x)
            HY *= (W.T @ (Yd / (W @ HY))) / (W.T @ ones_y)
            num = (Xd / (W @ HX)) @ HX.T + ones_y @ HY.T
            den = ones_x @ HX.T + (Yd / (W @ HY)) @ HY.T
            W *= num / den
            times.append(time.perf_counter() - t0)
        sec = float(np.mean(times[1:]))
    elif method == "sklearn":
        import warnings

        from sklearn.decomposition import MiniBatchNMF

        times = []
        for n_ep in (1, 1 + epochs):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                MiniBatchNMF(
                    k,
                    beta_loss="kullback-leibler",
                    init="random",
                    max_iter=n_ep,
                    tol=0,
                    max_no_improvement=None,
                    batch_size=args.batch_size,
                    random_state=0,
                ).fit(X)
            times.append(time.perf_counter() - t0)
        sec = (times[1] - times[0]) / epochs
    else:
        raise ValueError(method)
    return {
        "method": method,
        "sec_per_epoch": float(sec),
        "peak_mb_above_input": _rss_mb() - base,
        "input_mb": (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) * 2 / 2**20,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=20_000, help="cells per group")
    p.add_argument("--genes", type=int, default=2_000)
    p.add_argument("--density", type=float, default=0.2)
    p.add_argument("-k", type=int, default=20)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--methods", default="bcnmf,dense,sklearn")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return
    rows = []
    for method in args.methods.split(","):
        cmd = [sys.executable, __file__, "--one", method] + [
            f"--cells={args.cells}",
            f"--genes={args.genes}",
            f"--density={args.density}",
            f"-k={args.k}",
            f"--epochs={args.epochs}",
            f"--batch-size={args.batch_size}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ours = next(r for r in rows if r["method"] == "bcnmf")
    print(
        f"{args.cells} target + {args.cells} background cells x {args.genes} genes, "
        f"density {args.density}, K={args.k}; input (both groups, CSR) "
        f"{ours['input_mb']:.0f} MB"
    )
    print("| method | s / epoch | peak MB above input | time vs bcnmf-sc | memory vs bcnmf-sc |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['sec_per_epoch']:.2f} | {r['peak_mb_above_input']:.0f} | "
            f"{r['sec_per_epoch'] / ours['sec_per_epoch']:.1f}x | "
            f"{r['peak_mb_above_input'] / max(ours['peak_mb_above_input'], 1):.1f}x |"
        )


if __name__ == "__main__":
    main()
