"""Fit a few data sets with the code of an old commit and with this checkout; compare.

A restructuring step must leave the fitted factors unchanged up to float rounding. This
script exports ``src/`` of the old commit (default 6906383, the commit before the engine
was taken apart) into a temporary folder with ``git archive``, runs the same fits in two
subprocesses (one importing the old package, one this checkout's ``src/``), and prints
the largest relative difference of ``components_``, the usages and ``objective_`` for
both solvers (full, minibatch) and both losses (kl, frobenius), and of two tl calls
(``tl.bcnmf(consensus=True)`` and ``tl.bcnmf_sweep``) whose scoring moved into the
engine::

    python benchmarks/compare_refactor.py            # against 6906383
    python benchmarks/compare_refactor.py --old main
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: (name, simulate() arguments, BcNMF arguments)
CASES = [
    ("full-kl", dict(n_target=120, n_background=120, n_genes=150), dict(solver="full", loss="kl")),
    (
        "full-frobenius",
        dict(n_target=120, n_background=120, n_genes=150),
        dict(solver="full", loss="frobenius", alpha=1.0),
    ),
    (
        "minibatch-kl",
        dict(n_target=600, n_background=500, n_genes=200),
        dict(solver="minibatch", loss="kl", batch_size=128),
    ),
    (
        "minibatch-frobenius",
        dict(n_target=600, n_background=500, n_genes=200),
        dict(solver="minibatch", loss="frobenius", batch_size=128, alpha=1.0),
    ),
    (
        "minibatch-kl-restarts",
        dict(n_target=400, n_background=700, n_genes=120),
        dict(solver="minibatch", loss="kl", batch_size=100, n_init=2, init="nndsvda"),
    ),
]

_WORKER = r"""
import sys, warnings
import numpy as np
import scipy.sparse as sp
import torch
torch.set_num_threads(1)
from bcnmf_sc import BcNMF
from bcnmf_sc.datasets import simulate

cases = eval(sys.argv[2])
out = {}
for name, sim, params in cases:
    ad = simulate(n_markers=15, n_program_genes=15, random_state=0, **sim)
    X = sp.csr_matrix(ad.X)
    is_bg = (ad.obs["condition"] == "background").to_numpy()
    X = np.log1p(X) if params.get("loss") == "frobenius" else X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = BcNMF(n_components=4, max_epochs=25, device="cpu", dtype="float64", **params)
        m.fit(X[~is_bg], X[is_bg])
        extra = m.transform(X[:50])
    out[name + "/components_"] = m.components_
    out[name + "/usage_target_"] = m.usage_target_
    out[name + "/usage_background_"] = m.usage_background_
    out[name + "/transform"] = extra
    out[name + "/objective_"] = np.array([m.objective_])
    out[name + "/history"] = np.asarray(m.history_["objective"])
import bcnmf_sc as bc
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ad = simulate(n_target=150, n_background=150, n_genes=100, n_markers=10,
                  n_program_genes=15, program_fold=5.0, random_state=0)
    kw = dict(max_epochs=20, engine_kwargs={"solver": "minibatch"}, progress=False, device="cpu")
    bc.tl.bcnmf(ad, "condition", "background", n_topics=3, n_init=2, consensus=True, **kw)
    out["tl-consensus/components_"] = ad.varm["bcnmf_loadings"]
    out["tl-consensus/usage_target_"] = ad.obsm["X_bcnmf"]
    out["tl-consensus/usage_background_"] = ad.obs["bcnmf_target_score"].to_numpy()
    out["tl-consensus/transform"] = ad.uns["bcnmf"]["consensus"]["stability"]
    out["tl-consensus/objective_"] = np.array([ad.uns["bcnmf"]["objective"]])
    out["tl-consensus/history"] = ad.uns["bcnmf"]["history"]["objective"]
    grid = dict(alphas=(0, 2), n_topics=(2,), n_init=2)
    t = bc.tl.bcnmf_sweep(ad, "condition", "background", **grid, **kw)
    cols = ["objective", "target_term", "background_term", "stability", "heldout_target"]
    out["tl-sweep/components_"] = t[cols].to_numpy(dtype=float)
    out["tl-sweep/usage_target_"] = t["target_score_effect"].to_numpy(dtype=float)
    out["tl-sweep/usage_background_"] = t["best_auroc"].to_numpy(dtype=float)
    out["tl-sweep/transform"] = t["max_log2fc"].to_numpy(dtype=float)
    out["tl-sweep/objective_"] = t["objective"].to_numpy(dtype=float)
    out["tl-sweep/history"] = t["heldout_target"].to_numpy(dtype=float)
np.savez(sys.argv[1], **out)
"""


def _run(src: Path, path: Path, cases) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", _WORKER, str(path), repr(cases)], env=env, check=True)
    with np.load(path) as f:
        return dict(f)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300)) if a.size else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default="6906383", help="commit to compare against")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.old, "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        old = _run(tmp / "src", tmp / "old.npz", CASES)
        new = _run(ROOT / "src", tmp / "new.npz", CASES)
    worst = 0.0
    print(f"{'case':<24}{'components_':>14}{'usages':>14}{'transform':>14}{'objective_':>14}")
    # tl rows: consensus (loadings, usages / target score, stability, objective) and sweep
    # (the table's objective terms and stability, effect, AUROC, log2FC, held-out loss)
    for name in [c[0] for c in CASES] + ["tl-consensus", "tl-sweep"]:
        d = {k.split("/")[1]: _rel(old[k], new[k]) for k in old if k.startswith(name + "/")}
        usages = max(d["usage_target_"], d["usage_background_"])
        print(
            f"{name:<24}{d['components_']:>14.2e}{usages:>14.2e}"
            f"{d['transform']:>14.2e}{max(d['objective_'], d['history']):>14.2e}"
        )
        worst = max(worst, *d.values())
    print(f"largest relative difference: {worst:.2e}")
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
