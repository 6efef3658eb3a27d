"""The ``target_only`` call with and without its bootstrap confidence, side by side.

Fits the default model (``recovery.fit_bcnmf``, as ``tl.bcnmf``: held-out cells compared)
on the recovery suite's families and reads each fit's enrichment table twice: with the
quantiles as estimated (``compare_usage(..., target_only_pval=None)``, the rule before the
confidence was added, and the placement check's trigger) and with the default
``pval_target_only < 0.05``. The fits are the same; only the call differs.

Reported per family and K: the share of fits in which any target topic is called
``target_only`` (on ``composition``, ``null`` and ``depth_only``: false target-only
programs), and on program families the share of programs whose best topic (largest cell
AUROC) is called ``target_only``, with the median ``pval_target_only`` of those topics.

    python benchmarks/bench_target_only.py --seeds 0,1,2 --k 2,10 --out results.md
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recovery import families, fit_bcnmf, make_data

from bcnmf_sc.tl._enrichment import compare_usage, usage_proportions

DEFAULT_FAMILIES = (
    "composition,null,depth_only,default,hard,shared,one_type,two_programs,unbalanced,depth,"
    "weak,nbsim"
)


def tables(fit):
    """The held-out cells' enrichment tables (topic order): as estimated, and confident."""
    ht, hb = fit.extra["held"]
    ut, ub = fit.usage_target[ht], fit.usage_background[hb]
    names = [str(i) for i in range(ut.shape[1])]
    y = np.r_[np.ones(len(ut), bool), np.zeros(len(ub), bool)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        usage = np.r_[ut, ub]
        point = compare_usage(usage, y, ~y, names, target_only_pval=None).loc[names]
        confident = compare_usage(usage, y, ~y, names).loc[names]
    return point, confident


def main(argv=None) -> None:
    """Run the families, print the table (and write it to ``--out``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", default=DEFAULT_FAMILIES)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--k", default="2,10")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    fams = families()
    lines = [
        f"Seeds {args.seeds}. any: fits with a target topic called target_only; best: "
        "programs whose best topic is called target_only (median pval_target_only).",
        "",
        "| family | K | fits | any (as estimated) | any (confident) "
        "| best (as estimated) | best (confident) | median pval_target_only |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in args.families.split(","):
        for k in map(int, args.k.split(",")):
            any_p, any_c, best_p, best_c, pvals, n_fits = 0, 0, 0, 0, [], 0
            for seed in map(int, args.seeds.split(",")):
                ad = make_data(name, seed)
                t = (ad.obs["condition"] == "target").to_numpy()
                fit = fit_bcnmf(ad.X[t], ad.X[~t], k, None, seed, {}, "bcnmf")
                point, confident = tables(fit)
                n_fits += 1
                any_p += bool(point["target_only"].iloc[:k].any())
                any_c += bool(confident["target_only"].iloc[:k].any())
                ht = fit.extra["held"][0]
                prop = usage_proportions(fit.usage_target[ht])
                for prog in (c for c in ad.obs.columns if c.startswith("program_")):
                    cells = ad.obs[prog].to_numpy()[t][ht]
                    j = int(np.argmax([roc_auc_score(cells, prop[:, i]) for i in range(k)]))
                    best_p += bool(point["target_only"].iloc[j])
                    best_c += bool(confident["target_only"].iloc[j])
                    pvals.append(float(confident["pval_target_only"].iloc[j]))
                print(f"  {name} K={k} seed={seed}", file=sys.stderr, flush=True)
            kind = fams[name]["kind"]
            best = (
                (f"{best_p}/{len(pvals)}", f"{best_c}/{len(pvals)}", f"{np.median(pvals):.3f}")
                if kind == "program"
                else ("-", "-", "-")
            )
            lines.append(
                f"| {name} | {k} | {n_fits} | {any_p}/{n_fits} | {any_c}/{n_fits} | "
                + " | ".join(best)
                + " |"
            )
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(
            f"`python benchmarks/bench_target_only.py {' '.join(argv or sys.argv[1:])}`\n\n{text}"
        )
    print(text)


if __name__ == "__main__":
    main()
