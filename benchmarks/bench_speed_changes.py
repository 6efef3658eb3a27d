"""The speed changes of issue 15, each measured against what it replaced, in one process.

Run from the repository root::

    python benchmarks/bench_speed_changes.py              # all four, a few minutes
    python benchmarks/bench_speed_changes.py --only gather,frobenius
    python benchmarks/bench_speed_changes.py --quick      # smaller sizes

Each section runs the old way ("before", switched back inside this process) and the new
way ("after") on the same data, alternating the two (before, after, before, after, ...)
so that other load on the machine hits both alike, and reports the median of each and
their ratio. One torch thread (``--threads``) unless the section is about threads.

``gather``
    ``sparse.gather`` (``index_select``) against the ``values[index]`` it replaced, in the
    sampled products of the KL minibatch solver: a ``BcNMF(10)`` fit with ``tol=0`` on
    simulated counts (``bench_time_to_answer.planted_counts``); seconds per epoch; the
    fitted components must be identical.
``klprepare``
    The KL usage solve with ``W^T`` made contiguous once per solve (``KLLoss.prepare``)
    against the strided view ``W.T`` in every step's sparse product, which it replaced:
    the same fits and measure as ``gather``; the components must be identical.
``frobenius``
    The squared-error usage solve with one sparse product and the Gram matrix per solve
    (``Loss.prepare``) against the products recomputed at every step: the paper's image
    demo, ``BcNMF(2, loss="frobenius")`` defaults, seeds 0-9; seconds per fit and ARI.
``threads``
    ``tl.bcnmf`` and a small ``tl.bcnmf_sweep`` on ``bc.datasets.simulate()`` with torch's
    default threads (what the package did before ``n_jobs``) against ``n_jobs=None`` (the
    new default: ``sc.settings.n_jobs``, 1 unless set).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
TORCH_DEFAULT = torch.get_num_threads()  # before anything sets it (run without OMP_NUM_THREADS)


@contextlib.contextmanager
def old_gather():
    """``values[index]``, as before ``sparse.gather``."""
    from bcnmf_sc._engine import sparse

    new = sparse.gather
    sparse.gather = lambda values, index: values[index]
    try:
        yield
    finally:
        sparse.gather = new


@contextlib.contextmanager
def old_kl_prepare():
    """KL usage steps as before ``KLLoss.prepare``: the strided ``W.T`` in every product."""
    from bcnmf_sc._engine.losses import KLLoss

    new = KLLoss.prepare
    KLLoss.prepare = lambda self, b, W: (W.T, W.sum(1))
    try:
        yield
    finally:
        KLLoss.prepare = new


@contextlib.contextmanager
def old_frobenius():
    """Squared error as before: the products of a usage step recomputed at every step."""
    from bcnmf_sc._engine.losses import FrobeniusLoss

    step, step_loss = FrobeniusLoss.h_step, FrobeniusLoss.h_step_loss
    FrobeniusLoss.h_step = lambda self, b, H, W, ctx=None: step(self, b, H, W, None)
    FrobeniusLoss.h_step_loss = lambda self, b, H, W, power=1.0, ctx=None: step_loss(
        self, b, H, W, power, None
    )
    try:
        yield
    finally:
        FrobeniusLoss.h_step, FrobeniusLoss.h_step_loss = step, step_loss


def alternate(before, after, repeats: int):
    """``(before results, after results)``, called alternately ``repeats`` times each."""
    out: tuple[list, list] = ([], [])
    for _ in range(repeats):
        out[0].append(before())
        out[1].append(after())
    return out


HEADER = ["", "| what | before | after | speed-up | unit |", "|---|---|---|---|---|"]


def line(name: str, b: list[float], a: list[float], unit: str) -> str:
    """One table row: medians before and after, and their ratio."""
    mb, ma = statistics.median(b), statistics.median(a)
    return f"| {name} | {mb:.3g} | {ma:.3g} | {mb / ma:.2f}x | {unit} |"


def _kl_epochs(args, old, name: str) -> list[str]:
    """KL minibatch epochs the old way (inside ``old()``) and the new way, alternating."""
    from bench_time_to_answer import planted_counts

    from bcnmf_sc import BcNMF

    n = 1500 if args.quick else 4000
    X, Y, _ = planted_counts(n, n, 2000, 0.2)
    fits: dict[str, list] = {"before": [], "after": []}

    def fit(which: str) -> float:
        ctx = old() if which == "before" else contextlib.nullcontext()
        with ctx, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = BcNMF(10, max_epochs=args.epochs, tol=0, n_jobs=args.threads).fit(X, Y)
        fits[which].append(m.components_)
        s = m.history_["seconds"]
        return (s[-1] - s[0]) / (len(s) - 1)  # the first epoch (warm-up) left out

    b, a = alternate(lambda: fit("before"), lambda: fit("after"), args.repeats)
    same = all(np.array_equal(x, y) for x, y in zip(fits["before"], fits["after"], strict=True))
    return [
        f"KL minibatch, {n:,} + {n:,} cells x 2,000 genes (20% non-zeros), `BcNMF(10)` "
        f"defaults, {args.epochs} epochs; components identical: {same}",
        line(f"BcNMF(10) epoch, {name}", b, a, "s / epoch"),
    ]


def section_gather(args) -> list[str]:
    """KL minibatch epochs with the old and the new gather."""
    return _kl_epochs(args, old_gather, "index gather")


def section_klprepare(args) -> list[str]:
    """KL minibatch epochs with the strided and the contiguous ``W^T``."""
    return _kl_epochs(args, old_kl_prepare, "contiguous W^T per solve")


def section_frobenius(args) -> list[str]:
    """The image demo with the products per step and per solve.

    Returns the caption, then the table's rows (as every section).
    """
    from image_demo import ari

    from bcnmf_sc import BcNMF
    from bcnmf_sc.datasets import image_demo

    ad = image_demo()
    t = (ad.obs["condition"] == "target").to_numpy()
    X, Y = np.asarray(ad.X[t], dtype=np.float64), np.asarray(ad.X[~t], dtype=np.float64)
    digit = ad.obs["digit"].to_numpy()[t]
    seeds = range(3 if args.quick else 10)
    res: dict[str, list] = {"before": [], "after": []}

    def fit(which: str, seed: int) -> float:
        ctx = old_frobenius() if which == "before" else contextlib.nullcontext()
        t0 = time.perf_counter()
        with ctx, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = BcNMF(2, loss="frobenius", random_state=seed, n_jobs=args.threads).fit(X, Y)
        sec = time.perf_counter() - t0
        res[which].append((ari(m.usage_target_, digit), m.objective_))
        return sec

    b, a = [], []
    for seed in seeds:
        b.append(fit("before", seed))
        a.append(fit("after", seed))
    aris = {k: " / ".join(f"{r[0]:.3f}" for r in v) for k, v in res.items()}
    gap = max(
        abs(x[1] - y[1]) / abs(x[1]) for x, y in zip(res["before"], res["after"], strict=True)
    )
    return [
        f"Image demo (squared error, K = 2, defaults), seeds {list(seeds)}; ARI before "
        f"{aris['before']}; after {aris['after']}; largest relative objective difference "
        f"{gap:.1e}",
        line('BcNMF(2, loss="frobenius") fit', b, a, "s / fit"),
    ]


def section_threads(args) -> list[str]:
    """tl.bcnmf and a small sweep with torch's default threads and with n_jobs=None."""
    import scanpy as sc

    import bcnmf_sc as bc

    default = TORCH_DEFAULT  # what the package used before n_jobs
    adata = bc.datasets.simulate(random_state=0)
    kw = {"progress": False, "tol": 1e-5}

    def fit(n_jobs):
        def run() -> float:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bc.tl.bcnmf(adata, "condition", "background", n_topics=3, n_jobs=n_jobs, **kw)
            return time.perf_counter() - t0

        return run

    def sweep(n_jobs):
        def run() -> float:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bc.tl.bcnmf_sweep(
                    adata, "condition", "background", alphas=(0, 2), n_topics=(5,), n_init=2,
                    n_jobs=n_jobs, progress=False,
                )  # fmt: skip
            return time.perf_counter() - t0

        return run

    torch.set_num_threads(default)
    fb, fa = alternate(fit(default), fit(None), args.repeats)
    print(f"fits: before {fb}, after {fa}", flush=True)
    sb, sa = alternate(sweep(default), sweep(None), 1)
    return [
        f"`bc.datasets.simulate()` (1,000 + 1,000 cells x 1,000 genes); before: torch's "
        f"default threads ({default} here), after: `n_jobs=None` "
        f"(`sc.settings.n_jobs` = {sc.settings.n_jobs})",
        line("tl.bcnmf, K = 3", fb, fa, "s / fit"),
        line("tl.bcnmf_sweep, alphas (0, 2), n_topics (5,), n_init 2 (6 fits)", sb, sa, "s"),
    ]


SECTIONS = {
    "gather": section_gather,
    "klprepare": section_klprepare,
    "frobenius": section_frobenius,
    "threads": section_threads,
}


def main(argv=None) -> None:
    """Run the sections asked for and print their tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SECTIONS))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    args = p.parse_args(argv)
    for name in args.only.split(","):
        if name != "threads":
            torch.set_num_threads(args.threads)
        caption, *rows = SECTIONS[name](args)
        print("\n".join([caption, *HEADER, *rows]) + "\n", flush=True)


if __name__ == "__main__":
    main()
