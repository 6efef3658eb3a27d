"""Time to an answer: bcnmf-sc's defaults against the published updates, scikit-learn and cPCA.

Run from the repository root::

    python benchmarks/bench_time_to_answer.py --quick             # 4k + 4k cells x 2k genes
    python benchmarks/bench_time_to_answer.py --full              # 20k + 20k x 2k, K=10, 20
    python benchmarks/bench_time_to_answer.py --allgenes          # 10k + 10k x 20k genes, 5%
    python benchmarks/bench_time_to_answer.py --cells 20000 --genes 2000 --density 0.2 --k 10,20
    python benchmarks/bench_time_to_answer.py --tiny              # seconds: checks the script

Data: simulated counts with a planted program (:func:`planted_counts`: 8 cell types shared
by both groups, one program of 60 genes at 3x in 40% of the target cells), generated in
blocks so that large sizes never exist densely.

Every contender runs in its own fresh Python process, started one after the other by this
script, with one torch thread (``--threads``) and ``OMP_NUM_THREADS`` set to the same;
its wall seconds cover the fit alone (data loaded before), its memory is the peak
resident memory of its process above the resident memory once the input was loaded and
the libraries imported (tracemalloc does not see torch's allocations); on Linux the peak is
reset after loading (``/proc/self/clear_refs``), so the transient copies made while
loading do not count (before that reset was added, they did). Contenders:

``bcnmf``
    ``BcNMF(K, random_state=0)``: the defaults (the ``n_jobs`` given); for counts the
    shared-topic model, K target + 16 shared topics.
``bcnmf_long``
    The same with ten times the epochs the default fit ran and ``tol=0``: the reference
    for "converged".
``bcnmf_contrast``
    ``BcNMF(K, alpha=2, random_state=0)``: the contrastive model (the default before the
    shared-topic model).
``published100``, ``published300``
    The published KL updates (background-contrastive multiplicative updates, written from
    the paper's formulas, as its code runs them: dense tensors, all-ones matrices, uniform
    random start, no normalisation), 100 and 300 iterations.
``sklearn``
    scikit-learn's ``MiniBatchNMF(K, beta_loss="kullback-leibler")``, its defaults, on the
    target alone (skipped, and said so, when scikit-learn is not installed).
``cpca``
    Contrastive PCA: top-K eigenvectors of ``Cov(X) - Cov(Y)`` of log-normalised data
    (``benchmarks/recovery.py``'s, at its fixed ``a=1``); the time includes the
    normalisation and the covariances.

Scores, the same for every contender, computed in this process after the runs: the
objective of the contender's components with the engine's one objective
(:func:`bcnmf_sc._engine.evaluate.score_components`, through ``BcNMF.score_source``: every
cell's usages solved for the fixed components): the shared-topic model's for its fits,
the contrast's (``alpha=2``, default scalings) for the others; its gap to the best
objective of the same model reached by any contender (relative to its absolute value);
and the planted-program recovery: the best topic's cell AUROC (usage proportions of
target cells against the program's cells; shared-topic fits: the best target topic;
cPCA: the component score, up to sign). cPCA has no
non-negative components and no objective.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
CONTENDERS = [
    "bcnmf", "bcnmf_long", "bcnmf_contrast", "published100", "published300", "sklearn", "cpca"
]  # fmt: skip
SIZES = {  # name: (target cells, background cells, genes, density, K list)
    "tiny": (300, 300, 200, 0.2, [3]),
    "quick": (4000, 4000, 2000, 0.2, [10]),
    "full": (20000, 20000, 2000, 0.2, [10, 20]),
    "allgenes": (10000, 10000, 20000, 0.05, [10]),
}


# ------------------------------------------------------------------------------ data
def planted_counts(n_t: int, n_b: int, g: int, density: float, seed: int = 0):
    """``(X, Y, program)``: CSR counts of target and background cells, program membership.

    Poisson counts of a gamma gene baseline times one of 8 cell-type profiles (each type
    raises 100 marker genes 4x; the same type proportions in both groups); in 40% of the
    target cells 60 program genes (none of them markers) are raised 3x. Library sizes are
    log-normal, chosen so that about ``density`` of the values are non-zero. Built 2,000
    rows at a time.
    """
    rng = np.random.default_rng([seed, 15])
    base = rng.gamma(0.6, 1.0, size=g) + 0.02
    base /= base.sum()
    order = rng.permutation(g)
    n_mark = min(100, g // 20)
    fold = np.ones((8, g))
    for t in range(8):
        fold[t, order[t * n_mark : (t + 1) * n_mark]] = 4.0
    prog = order[8 * n_mark : 8 * n_mark + min(60, g // 20)]
    # library size giving the density for the baseline: P(count > 0) = 1 - exp(-lib * p)
    lo, hi = 1.0, 1e7
    for _ in range(60):
        lib = np.sqrt(lo * hi)
        lo, hi = (lib, hi) if np.mean(1 - np.exp(-lib * base)) < density else (lo, lib)

    def block(m: int, target: bool):
        q = base * fold[rng.integers(8, size=m)]
        on = target & (rng.uniform(size=m) < 0.4)
        q[np.ix_(on, prog)] *= 3.0
        q /= q.sum(1, keepdims=True)
        mu = q * lib * np.exp(0.4 * rng.standard_normal((m, 1)))
        return sp.csr_matrix(rng.poisson(mu).astype(np.float32)), on

    out = []
    for n, target in ((n_t, True), (n_b, False)):
        parts = [block(min(2000, n - s), target) for s in range(0, n, 2000)]
        out.append(
            (sp.vstack([p[0] for p in parts]).tocsr(), np.concatenate([p[1] for p in parts]))
        )
    (X, program), (Y, _) = out
    return X, Y, program


# ---------------------------------------------------------------------- one contender
def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _reset_peak() -> bool:
    """Reset the process's peak RSS (Linux: ``VmHWM``), so that loading does not count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    """Peak RSS since the last :func:`_reset_peak` (``VmHWM``), else of the whole process."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def published_kl(X, Y, k: int, n_iter: int, alpha: float, device: str = "cpu"):
    """The published KL updates from the formulas (genes x cells: X ~ W H), dense."""
    import torch

    torch.manual_seed(0)
    Xd = torch.from_numpy(X.T.toarray()).to(device)
    Yd = torch.from_numpy(Y.T.toarray()).to(device)
    g, nx = Xd.shape
    ny = Yd.shape[1]
    W = torch.rand(g, k).to(device)
    HX, HY = torch.rand(k, nx).to(device), torch.rand(k, ny).to(device)
    ones_x = torch.ones(g, nx, device=device)
    ones_y = torch.ones(g, ny, device=device)
    eps = 1e-10
    for _ in range(n_iter):
        HX *= (W.T @ (Xd / (W @ HX + eps))) / (W.T @ ones_x + eps)
        HY *= (W.T @ (Yd / (W @ HY + eps))) / (W.T @ ones_y + eps)
        num = (Xd / (W @ HX + eps)) @ HX.T + alpha * ones_y @ HY.T
        den = ones_x @ HX.T + alpha * (Yd / (W @ HY + eps)) @ HY.T
        W *= num / (den + eps)
    return W.T.cpu().numpy().astype(np.float64)


def run_contender(
    name: str, data: Path, k: int, epochs: int, n_jobs: int, device: str = "cpu"
) -> dict:
    """Fit one contender on the saved data; components (and cPCA scores) and costs."""
    import torch

    import bcnmf_sc  # noqa: F401  (every library imported before the baseline memory)
    from bcnmf_sc._engine.problem import DEFAULT_ALPHA  # the contrast's default alpha

    torch.set_num_threads(n_jobs)
    d = np.load(data, allow_pickle=False)
    X = sp.csr_matrix((d["xd"], d["xi"], d["xp"]), shape=tuple(d["xs"]))
    Y = sp.csr_matrix((d["yd"], d["yi"], d["yp"]), shape=tuple(d["ys"]))
    _reset_peak()  # the transient copies of loading the data are not the fit's
    base = _current_rss_mb()
    info: dict = {}
    scores = None
    t0 = time.perf_counter()
    if name in ("bcnmf", "bcnmf_long", "bcnmf_contrast"):
        from bcnmf_sc import BcNMF

        kw = {"bcnmf": {}, "bcnmf_contrast": {"alpha": DEFAULT_ALPHA}}.get(
            name, {"max_epochs": epochs, "tol": 0}
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = BcNMF(k, random_state=0, n_jobs=n_jobs, device=device, **kw).fit(X, Y)
        W = m.components_
        info = {
            "epochs": m.n_epochs_,
            "converged": bool(m.converged_),
            "warned": sorted({w.category.__name__ for w in caught}),
            "fit_objective": m.objective_,
            "n_shared": int(m.n_shared_),
        }
    elif name.startswith("published"):
        from bcnmf_sc import BcNMF

        W = published_kl(X, Y, k, int(name[len("published") :]), DEFAULT_ALPHA, device)
        if device != "cpu":
            torch.cuda.synchronize()
    elif name == "sklearn":
        from sklearn.decomposition import MiniBatchNMF

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            W = MiniBatchNMF(k, beta_loss="kullback-leibler", random_state=0).fit(X).components_
    elif name == "cpca":
        sys.path.insert(0, str(HERE))
        from recovery import cpca_prepare, fit_cpca

        fit = fit_cpca(cpca_prepare(X, Y), k, 1.0)
        W, scores = fit.loadings, fit.usage_target
    else:
        raise ValueError(name)
    sec = time.perf_counter() - t0
    if device != "cpu":
        info["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return {
        "name": name,
        "seconds": sec,
        "peak_mb_above_input": _peak_rss_mb() - base,
        "W": np.asarray(W, dtype=np.float64).tolist(),
        "scores": None if scores is None else np.asarray(scores).tolist(),
        **info,
    }


def spawn(name: str, data: Path, k: int, epochs: int, n_jobs: int, device: str) -> dict:
    """:func:`run_contender` in a fresh process (its own peak memory)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(n_jobs), "MKL_NUM_THREADS": str(n_jobs)}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    cmd = [sys.executable, __file__, "--worker", name, "--data", str(data), "--k", str(k)]
    cmd += ["--epochs", str(epochs), "--threads", str(n_jobs), "--worker-out", str(out)]
    cmd += ["--device", device]
    subprocess.run(cmd, check=True, env=env)
    result = json.loads(out.read_text())
    out.unlink()
    return result


# --------------------------------------------------------------------------- scoring
def score(result: dict, X, Y, program: np.ndarray) -> dict:
    """The engine's objective of a contender's components and its recovery."""
    from sklearn.metrics import roc_auc_score

    from bcnmf_sc import BcNMF, InMemoryRows

    W = np.asarray(result["W"])
    if result["scores"] is not None:  # cPCA: signed scores, no objective
        S = np.asarray(result["scores"])
        auc = [roc_auc_score(program, S[:, j]) for j in range(S.shape[1])]
        return {"objective": np.nan, "cell_auroc": max(max(a, 1 - a) for a in auc)}
    W = np.maximum(W, 0)
    n_shared = int(result.get("n_shared", 0))
    if not n_shared:
        W = W[W.sum(1) > 0]
    # a fit's own objective: the shared-topic model's for its fits, else the contrast's
    m = BcNMF.from_components(W, n_shared=n_shared, n_jobs=1)
    m.score_source(InMemoryRows(X), InMemoryRows(Y))
    H = m.usage_target_
    P = H / np.maximum(H.sum(1, keepdims=True), 1e-300)
    n_target = P.shape[1] - n_shared  # the best target topic (shared topics: both groups')
    auc = [roc_auc_score(program, P[:, j]) for j in range(n_target)]
    return {
        "objective": float(m.objective_),
        "model": "shared" if n_shared else "contrast",
        "cell_auroc": float(max(auc)),
    }


LABELS = {
    "bcnmf": "bcnmf-sc `BcNMF` defaults",
    "bcnmf_long": "bcnmf-sc, 10x the epochs (tol=0)",
    "bcnmf_contrast": "bcnmf-sc contrast (`alpha=2`, n_shared=0)",
    "published100": "published KL updates, dense, 100 it.",
    "published300": "published KL updates, dense, 300 it.",
    "sklearn": "scikit-learn `MiniBatchNMF` (KL, target only)",
    "cpca": "contrastive PCA (log-normalised, a=1)",
}


def table(rows: list[dict], header: str) -> str:
    """Markdown table of one size and K."""
    # gaps compare objectives of one model only (the shared-topic model's sum of two
    # losses and the contrast's difference are different functions)
    best = {
        kind: np.nanmin([r["objective"] for r in rows if r.get("model") == kind] or [np.nan])
        for kind in ("shared", "contrast")
    }
    ref = {r["name"]: r for r in rows}
    t_bc = ref["bcnmf"]["seconds"] if "bcnmf" in ref else np.nan
    lines = [
        header,
        "",
        "| contender | s | vs bcnmf-sc | peak MB above input | objective (model) "
        "| gap to best | cell AUROC | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = best.get(r.get("model", ""), np.nan)
        gap = (r["objective"] - b) / abs(b) if np.isfinite(r["objective"]) else np.nan
        kind = f" ({r['model']})" if "model" in r else ""
        notes = [f"GPU peak {r['gpu_peak_mb']:.0f} MB"] if "gpu_peak_mb" in r else []
        if "epochs" in r:
            notes.append(
                f"{r['epochs']} epochs, {'converged' if r['converged'] else 'not converged'}"
            )
            if "ConvergenceWarning" in r.get("warned", []):
                notes.append("ConvergenceWarning")
        lines.append(
            f"| {LABELS[r['name']]} | {r['seconds']:.1f} | {r['seconds'] / t_bc:.2f}x "
            f"| {r['peak_mb_above_input']:.0f} | {r['objective']:.5f}{kind} | {gap:.1e} "
            f"| {r['cell_auroc']:.3f} | {'; '.join(notes)} |"
        )
    return "\n".join(lines).replace("| nan |", "| - |").replace("nan", "-")


def main(argv=None) -> None:
    """Simulate, run every contender in its own process, score, print the tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = p.add_mutually_exclusive_group()
    for name in SIZES:
        size.add_argument(f"--{name}", dest="size", action="store_const", const=name)
    p.add_argument("--cells", type=int, help="cells per group (overrides the size)")
    p.add_argument("--genes", type=int)
    p.add_argument("--density", type=float)
    p.add_argument("--k", default=None, help="comma list of K")
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--device", default="cpu", help="bcnmf-sc and the published updates (cuda on a GPU)"
    )
    p.add_argument("--out", type=Path, help="append the tables (markdown) to this file")
    p.add_argument("--epochs", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        res = run_contender(
            args.worker, args.data, int(args.k), args.epochs, args.threads, args.device
        )
        args.worker_out.write_text(json.dumps(res))
        return
    n_t, n_b, g, density, ks = SIZES[args.size or "quick"]
    if args.cells:
        n_t = n_b = args.cells
    g, density = args.genes or g, args.density or density
    ks = [int(v) for v in args.k.split(",")] if args.k else ks
    contenders = args.contenders.split(",")
    if "sklearn" in contenders:
        try:
            import sklearn.decomposition  # noqa: F401
        except ImportError:
            print("scikit-learn is not installed: MiniBatchNMF skipped")
            contenders.remove("sklearn")
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    X, Y, program = planted_counts(n_t, n_b, g, density)
    dens = (X.nnz + Y.nnz) / ((n_t + n_b) * g)
    mb = sum(M.data.nbytes + M.indices.nbytes + M.indptr.nbytes for M in (X, Y)) / 2**20
    print(f"data: {n_t} + {n_b} cells x {g} genes, {dens:.1%} non-zeros, {mb:.0f} MB as CSR "
          f"({time.perf_counter() - t0:.0f} s to simulate)", flush=True)  # fmt: skip
    out_md = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        np.savez(data, xd=X.data, xi=X.indices, xp=X.indptr, xs=X.shape,
                 yd=Y.data, yi=Y.indices, yp=Y.indptr, ys=Y.shape)  # fmt: skip
        for k in ks:
            rows, epochs = [], 0
            for name in contenders:
                res = spawn(name, data, k, max(10 * epochs, 10), args.threads, args.device)
                if name == "bcnmf":
                    epochs = int(res["epochs"])
                res.update(score(res, X, Y, program))
                print(f"  K={k} {name}: {res['seconds']:.1f} s, objective {res['objective']:.5f}, "
                      f"AUROC {res['cell_auroc']:.3f}", flush=True)  # fmt: skip
                rows.append(res)
            header = (
                f"{n_t:,} + {n_b:,} cells x {g:,} genes, {dens:.0%} non-zeros ({mb:.0f} MB), "
                f"K = {k}, {args.threads} thread(s), {args.device}"
            )
            out_md.append(table(rows, header))
            print("\n" + out_md[-1] + "\n", flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n\n".join(out_md) + "\n")


if __name__ == "__main__":
    main()
