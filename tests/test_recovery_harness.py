"""The recovery benchmark's harness (benchmarks/recovery.py) on tiny data: it runs, and its
read-outs score known answers correctly."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def recovery():
    spec = importlib.util.spec_from_file_location("recovery_bench", BENCH / "recovery.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["recovery_bench"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_families_include_the_independent_simulator(recovery):
    fams = recovery.families()
    assert "nbsim" in fams and len(fams) >= 12
    ad = recovery.nb_simulate(n_target=300, n_background=200, n_genes=1200, seed=0)
    assert ad.shape == (500, 1200)
    t = (ad.obs["condition"] == "target").to_numpy()
    assert not ad.obs["program_1"].to_numpy()[~t].any()
    assert ad.obs["program_1"].to_numpy()[t].mean() == pytest.approx(0.4, abs=0.08)
    assert (ad.var["program"] == "program_1").sum() == 80
    assert (ad.var["marker_of"] != "none").sum() == 900


def test_readouts_score_a_perfect_fit(recovery):
    """A hand-made fit whose topic 1 is exactly the program scores AUROC 1 and ARI 1."""
    from bcnmf_sc.datasets import simulate

    ad = simulate(n_target=200, n_background=200, n_genes=300, n_markers=20, random_state=0)
    t = (ad.obs["condition"] == "target").to_numpy()
    on = ad.obs["program_1"].to_numpy()[t].astype(float)
    genes = (ad.var["program"] == "program_1").to_numpy().astype(float)
    Ht = np.c_[np.ones(t.sum()), on * 3]
    Hb = np.c_[np.ones((~t).sum()), np.zeros((~t).sum())]
    W = np.vstack([np.ones(300), genes])
    fit = recovery.Fit("bcnmf", 2, 1.0, Ht, Hb, W, True, 0.0)
    readouts = {"score": recovery.readout_score, "all": recovery.readout_all}
    (row,) = recovery.evaluate(fit, ad, "program", readouts)
    assert row["cell AUROC"] == 1.0 and row["gene AUROC"] == 1.0
    assert row["ARI(score)"] == 1.0 and row["ARI(all)"] == 1.0
    assert row["enriched: prog"] == 1.0 and row["enriched: any"] == 1.0


def test_harness_runs_end_to_end(recovery, tmp_path, capsys):
    out = tmp_path / "r.md"
    recovery.main(["--families", "null", "--k", "2", "--seeds", "0", "--methods", "nmf,cpca",
                   "--fit-kwargs", '{"max_epochs": 3}', "--out", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert "| 2 | null | - | nmf | 1 |" in text
    assert out.exists() and out.with_suffix(".csv").exists()
    recovery.main(["--from-csv", str(out.with_suffix(".csv"))])
    assert "| 2 | null | - | nmf | 1 |" in capsys.readouterr().out
