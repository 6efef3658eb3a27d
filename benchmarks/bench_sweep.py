"""Choosing the model: the default sweep against the one fit that needs none, side by side.

On simulated counts with a planted program (``bc.datasets.simulate``, 2,000 + 2,000 cells
x 2,000 genes by default: the size at which the issue's default sweep did not finish in
25 minutes), one process runs, one after another:

``sweep``
    ``tl.bcnmf_sweep`` with its default grid (alpha 0-3 x 5/10/15 topics x (3 restarts +
    1 held-out fit) = 48 fits of the contrast) at ``n_jobs=1``, then ``tl.bcnmf`` with the
    recommended setting.
``sweep, all CPUs``
    The same sweep with ``n_jobs=-1`` (``--threads-too``): torch's own thread count, the
    behaviour before ``n_jobs`` existed.
``shared default``
    ``tl.bcnmf`` with its defaults (the shared-topic model: no alpha to choose), at the
    recommended number of topics and at 10.

For each: wall seconds and the planted program's recovery by the fit the choice leads to
(best target topic's cell AUROC over the target cells; k-means(2) ARI on the target score).

    python benchmarks/bench_sweep.py --out benchmarks/results_sweep.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, roc_auc_score

import bcnmf_sc as bc
from bcnmf_sc.tl._enrichment import usage_proportions


def recovery(adata, n_topics: int) -> tuple[float, float]:
    """Best target topic's cell AUROC and the target score's k-means(2) ARI."""
    t = (adata.obs["condition"] == "target").to_numpy()
    truth = adata.obs["program_1"].to_numpy(dtype=bool)[t]
    prop = usage_proportions(adata.obsm["X_bcnmf"][t])[:, :n_topics]  # the target topics
    auroc = max(roc_auc_score(truth, prop[:, j]) for j in range(prop.shape[1]))
    score = adata.obs["bcnmf_target_score"].to_numpy()[t][:, None]
    labels = KMeans(2, n_init=10, random_state=0).fit_predict(score)
    return float(auroc), float(adjusted_rand_score(truth, labels))


def main(argv=None) -> None:
    """Run the contenders one after another and print (and write) the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=2000, help="cells per group")
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads-too", action="store_true", help="also the sweep with n_jobs=-1")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    adata = bc.datasets.simulate(
        n_target=args.cells, n_background=args.cells, n_genes=args.genes,
        random_state=args.seed,
    )  # fmt: skip
    rows = []

    def sweep(label: str, n_jobs: int) -> dict:
        data = adata.copy()
        t0 = time.perf_counter()
        bc.tl.bcnmf_sweep(data, "condition", "background", n_jobs=n_jobs, progress=False)
        best = data.uns["bcnmf_sweep"]["recommended"]
        t_sweep = time.perf_counter() - t0
        bc.tl.bcnmf(data, "condition", "background", n_jobs=1, progress=False, **best)
        total = time.perf_counter() - t0
        auroc, ari = recovery(data, int(best["n_topics"]))
        choice = f"alpha={best['alpha']:g}, K={best['n_topics']}"
        return {"label": label, "choice": choice, "seconds": total, "sweep": t_sweep,
                "auroc": auroc, "ari": ari}  # fmt: skip

    rows.append(sweep("`tl.bcnmf_sweep` defaults (48 fits), n_jobs=1, + the recommended fit", 1))
    print(rows[-1], file=sys.stderr, flush=True)
    if args.threads_too:
        rows.append(
            sweep(f"the same, n_jobs=-1 (all {os.cpu_count()} CPUs, as torch's default)", -1)
        )
        print(rows[-1], file=sys.stderr, flush=True)
    for k in sorted({10, int(rows[0]["choice"].split("K=")[1])}):
        data = adata.copy()
        t0 = time.perf_counter()
        bc.tl.bcnmf(data, "condition", "background", n_topics=k, n_jobs=1, progress=False)
        sec = time.perf_counter() - t0
        auroc, ari = recovery(data, k)
        label = f"`tl.bcnmf` defaults (shared topics), n_topics={k}"
        rows.append({"label": label, "choice": "no alpha", "seconds": sec, "sweep": 0.0,
                     "auroc": auroc, "ari": ari})  # fmt: skip
        print(rows[-1], file=sys.stderr, flush=True)
    base = next(r["seconds"] for r in rows if r["label"].endswith("n_topics=10"))
    lines = [
        f"{args.cells} + {args.cells} cells x {args.genes} genes (`simulate`, seed {args.seed}), "
        f"one thread unless said, {time.strftime('%Y-%m-%d')}",
        "",
        "| contender | choice | s | vs one default fit | best-topic cell AUROC | ARI(score) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['choice']} | {r['seconds']:.1f} | {r['seconds'] / base:.1f}x "
            f"| {r['auroc']:.3f} | {r['ari']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        cmd = " ".join(argv or sys.argv[1:])
        args.out.write_text(f"`python benchmarks/bench_sweep.py {cmd}`\n\n{text}")


if __name__ == "__main__":
    main()
