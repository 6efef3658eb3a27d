"""Scaling: seconds per epoch and peak memory of ``bc.tl.bcnmf``, data in memory vs backed.

Run from the repository root::

    python benchmarks/bench_scale.py --sizes 10k,100k            # in memory and backed
    python benchmarks/bench_scale.py --sizes 1m --modes backed   # the 1M-cell run
    python benchmarks/bench_scale.py --sizes 1m --modes backed --converge   # to convergence
    python benchmarks/bench_scale.py --sizes 100k --device cuda  # on a GPU

Data: ``N`` cells x 2,000 genes of simulated counts at about 10% density (8 cell types,
cells in samples of 1,000; every sample is target or background at random, target
samples carry a 40-gene program). Each file is generated once, 5,000 rows at a time,
straight into an ``.h5ad`` (CSR, uncompressed), and never held in memory, dense or
sparse; it is kept under ``--data-dir`` (default ``$TMPDIR/bcnmf_scale``) for later runs.

Every configuration runs ``bc.tl.bcnmf`` (default settings except those given here) in a
fresh Python process started by this script, one after the other, so its peak resident
memory (``ru_maxrss``) is its own. "memory" reads the file with ``sc.read_h5ad(path)``;
"backed" opens it with ``backed="r"`` and streams rows. Reported: seconds per epoch (the
median over epochs), seconds for the whole call (validation, initialisation, epochs,
final usages, enrichment), and peak memory: total, and above the process right after
importing the libraries (what the data and the fit need).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}


def _n(size: str) -> int:
    size = size.lower()
    return SIZES[size] if size in SIZES else int(float(size))


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ generate
def generate(path: Path, n: int, g: int, density: float, seed: int = 0) -> dict:
    """Write ``n`` x ``g`` simulated counts to ``path`` in chunks (never all in memory)."""
    import anndata as ad
    import h5py
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_samples = -(-n // 1000)
    sample = np.repeat(np.arange(n_samples), 1000)[:n]
    is_target = rng.random(n_samples) < 0.5
    is_target[0], is_target[-1] = True, False  # both groups present at any size
    cond = np.where(is_target[sample], "target", "background")
    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(cond, categories=["background", "target"]),
            "sample": pd.Categorical(sample.astype(str)),
        },
        index=[f"cell_{i}" for i in range(n)],
    )
    var = pd.DataFrame(index=[f"gene_{j}" for j in range(g)])
    tmp = path.with_suffix(".tmp.h5ad")
    ad.AnnData(obs=obs, var=var).write_h5ad(tmp)  # obs and var; X is appended below

    base = rng.gamma(0.6, 1.0, size=g) + 0.05
    types = rng.gamma(2.0, 0.5, size=(8, g))
    program = rng.choice(g, 40, replace=False)
    lib = _library_size(base, types, density, rng)
    # 8 cell types x (background, target): normalised expression profiles
    profiles = np.concatenate([base * types, base * types])
    profiles[8:, program] *= 3.0
    profiles /= profiles.sum(1, keepdims=True)
    indptr = np.zeros(n + 1, dtype=np.int64)
    with h5py.File(tmp, "a") as f:
        grp = f.create_group("X")
        grp.attrs["encoding-type"] = "csr_matrix"
        grp.attrs["encoding-version"] = "0.1.0"
        grp.attrs["shape"] = (n, g)
        kw = dict(maxshape=(None,), chunks=(1 << 15,))  # 128 KB, as anndata's at this size
        data = grp.create_dataset("data", shape=(0,), dtype=np.float32, **kw)
        indices = grp.create_dataset("indices", shape=(0,), dtype=np.int32, **kw)
        nnz = 0
        for start in range(0, n, 5000):
            m = min(5000, n - start)
            kind = rng.integers(8, size=m) + 8 * (cond[start : start + m] == "target")
            mu = profiles[kind] * (lib * np.exp(0.3 * rng.standard_normal((m, 1))))
            block = rng.poisson(mu).astype(np.float32)
            r, c = np.nonzero(block)
            data.resize((nnz + len(r),))
            indices.resize((nnz + len(r),))
            data[nnz:] = block[r, c]
            indices[nnz:] = c.astype(np.int32)
            indptr[start + 1 : start + m + 1] = nnz + np.cumsum(np.bincount(r, minlength=m))
            nnz += len(r)
        grp.create_dataset("indptr", data=indptr)
    tmp.rename(path)
    return {"n": n, "genes": g, "nnz": int(nnz), "density": nnz / (n * g)}


def _library_size(base, types, density: float, rng) -> float:
    """Mean total count per cell that gives about ``density`` non-zeros (bisection)."""
    prof = base * types[rng.integers(len(types), size=200)]
    prof /= prof.sum(1, keepdims=True)
    noise = np.exp(0.3 * rng.standard_normal((200, 1)))
    lo, hi = 1.0, 1e6
    for _ in range(40):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if np.mean(1 - np.exp(-prof * mid * noise)) < density else (lo, mid)
    return float(np.sqrt(lo * hi))


# ------------------------------------------------------------------ one run
def run_one(args) -> dict:
    import warnings

    import scanpy as sc
    import torch

    import bcnmf_sc as bc

    torch.set_num_threads(args.threads)
    base = _rss_now_mb()
    t0 = time.perf_counter()
    adata = sc.read_h5ad(args.path, backed="r" if args.mode == "backed" else None)
    t_read = time.perf_counter() - t0
    kw = dict(n_topics=args.k, batch_size=args.batch_size, device=args.device, progress=False)
    if args.converge:
        kw["max_epochs"] = args.max_epochs
    else:
        kw.update(max_epochs=args.epochs, tol=0.0)
    phases = _time_phases()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bc.tl.bcnmf(adata, "condition", "background", **kw)
    total = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    res = adata.uns["bcnmf"]
    secs = np.diff(np.r_[0.0, res["history"]["seconds"]])
    return {
        "summarise_s": phases["summarise"],
        "init_s": phases["init"],
        "epochs_s": float(secs.sum()),
        "after_s": phases["after"],
        "other_s": total - sum(phases.values()) - float(secs.sum()),
        "cpu_share": cpu / total / args.threads,  # below 1: the cores were shared
        "mode": args.mode,
        "n": int(adata.n_obs),
        "read_s": t_read,
        "sec_per_epoch": float(np.median(secs)),
        "epochs": int(res["n_epochs"]),
        "converged": bool(res["converged"]),
        "fit_s": total,
        "peak_mb": _peak_mb(),
        "peak_mb_above_base": _peak_mb() - base,
        "device": args.device,
        "threads": args.threads,
        # per-epoch objective and target term, to study the stopping rule offline
        "objective": [float(v) for v in res["history"]["objective"]],
        "target_term": [float(v) for v in res["history"]["target"]],
    }


def plot(rows: list[dict], path: Path) -> None:
    """Seconds per epoch and peak memory against the number of cells, per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for mode, marker in (("memory", "o"), ("backed", "s")):
        rs = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["n"])
        if not rs:
            continue
        n = [r["n"] for r in rs]
        axes[0].plot(n, [r["sec_per_epoch"] for r in rs], marker=marker, label=mode)
        axes[1].plot(n, [r["peak_mb"] for r in rs], marker=marker, label=mode)
    if rows:
        n0 = min(r["n"] for r in rows)
        ref = min(r["sec_per_epoch"] for r in rows if r["n"] == n0)
        xs = np.array(sorted({r["n"] for r in rows}))
        axes[0].plot(xs, ref * xs / n0, ":", color="grey", label="linear")
    axes[1].axhline(2048, ls=":", color="grey", label="2 GB")
    axes[0].set(xscale="log", yscale="log", xlabel="cells", ylabel="seconds per epoch")
    axes[1].set(xscale="log", yscale="log", xlabel="cells", ylabel="peak memory (MB)")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("bc.tl.bcnmf, 2,000 genes at 10% density, K=20", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _time_phases() -> dict:
    """Wall time of the engine's phases (wrapping its methods; benchmark only): validation
    and sums, initialisation, and everything after the last epoch (final usages)."""
    from bcnmf_sc._engine import setup, training

    phases = {"summarise": 0.0, "init": 0.0, "after": 0.0}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                phases[name] += time.perf_counter() - t

        return wrapper

    setup.summarise = timed("summarise", setup.summarise)
    training.init_sample = timed("init", training.init_sample)
    training.init_components = timed("init", training.init_components)
    training._finish = timed("after", training._finish)  # the final refit of the usages
    return phases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10k,100k", help="comma list: 10k, 100k, 1m or a number")
    p.add_argument("--modes", default="memory,backed")
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--density", type=float, default=0.1)
    p.add_argument("-k", type=int, default=20)
    p.add_argument("--epochs", type=int, default=3, help="epochs per timing run (tol=0)")
    p.add_argument("--converge", action="store_true", help="fit to convergence (default tol)")
    p.add_argument("--max-epochs", type=int, default=100, help="limit with --converge")
    p.add_argument("--batch-size", type=int, default=None, help="default: bc.tl.bcnmf's")
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a machine shared with other work, more threads than free "
        "cores make torch's parallel regions wait for each other, 70x slower here)",
    )
    p.add_argument("--data-dir", default=Path(tempfile.gettempdir()) / "bcnmf_scale", type=Path)
    p.add_argument("--json", type=Path, default=None, help="append results as JSON lines")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG of the --json results")
    p.add_argument("--no-run", action="store_true", help="only table/plot the --json results")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args)))
        return

    args.data_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in [] if args.no_run else args.sizes.split(","):
        n = _n(size)
        path = args.data_dir / f"scale_{n}x{args.genes}_d{args.density}.h5ad"
        if not path.exists():
            t0 = time.perf_counter()
            info = generate(path, n, args.genes, args.density)
            print(
                f"generated {path} ({info['nnz']:,} non-zeros, density {info['density']:.3f}, "
                f"{path.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
        for mode in args.modes.split(","):
            cmd = [sys.executable, __file__, "--one", "--path", str(path), "--mode", mode]
            cmd += [f"-k={args.k}", f"--epochs={args.epochs}", f"--device={args.device}"]
            cmd += [f"--threads={args.threads}", f"--max-epochs={args.max_epochs}"]
            if args.batch_size:
                cmd.append(f"--batch-size={args.batch_size}")
            if args.converge:
                cmd.append("--converge")
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{size} {mode} failed:\n{out.stderr[-3000:]}", flush=True)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r.update(size=size, file_mb=path.stat().st_size / 2**20, converge=args.converge)
            rows.append(r)
            print(json.dumps(r), flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(r) + "\n")
    if args.no_run and args.json:
        with open(args.json) as f:
            rows = list({(r["n"], r["mode"]): r for r in map(json.loads, f)}.values())
    if args.plot:
        plot(rows, args.plot)
    print("| cells | mode | s / epoch | epochs | s total | peak MB | peak MB above imports |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['mode']} | {r['sec_per_epoch']:.2f} | {r['epochs']}"
            f"{'' if r['converged'] or not r['converge'] else ' (not converged)'} | "
            f"{r['fit_s']:.0f} | {r['peak_mb']:.0f} | {r['peak_mb_above_base']:.0f} |"
        )


if __name__ == "__main__":
    main()
