"""Tests of the bcnmf-sc command line interface."""

from __future__ import annotations

import subprocess
import sys

import pytest
from anndata import read_h5ad

from bcnmf_sc.cli import main
from bcnmf_sc.datasets import simulate

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def h5ad(tmp_path):
    adata = simulate(n_target=60, n_background=60, n_genes=120, n_markers=20, n_program_genes=20)
    path = tmp_path / "in.h5ad"
    adata.write_h5ad(path)
    return path


def test_fit_end_to_end(h5ad, tmp_path, capsys):
    out = tmp_path / "sub" / "out.h5ad"
    argv = [
        "fit", str(h5ad), "-o", str(out), "--background-key", "condition",
        "--background", "background", "-k", "2", "--alpha", "0.5", "--max-epochs", "3",
        "--seed", "3", "--device", "cpu",
    ]  # fmt: skip
    assert main(argv) == 0
    assert "most target-enriched topic" in capsys.readouterr().out
    res = read_h5ad(out)
    assert res.obsm["X_bcnmf"].shape == (120, 2)
    p = res.uns["bcnmf"]["params"]
    assert p["alpha"] == 0.5 and p["random_state"] == 3 and p["n_topics"] == 2
    assert list(p["target"]) == ["target"]


def test_fit_shared_topics(h5ad, tmp_path):
    out = tmp_path / "out.h5ad"
    argv = [
        "fit", str(h5ad), "-o", str(out), "--background-key", "condition",
        "--background", "background", "-k", "2", "--n-shared", "3", "--holdout", "0.25",
        "--max-epochs", "3", "--device", "cpu",
    ]  # fmt: skip
    assert main(argv) == 0
    res = read_h5ad(out)
    assert res.obsm["X_bcnmf"].shape == (120, 5)
    p = res.uns["bcnmf"]["params"]
    assert p["n_shared"] == 3 and p["holdout"] == 0.25 and p["n_held_out"] == 30
    assert list(res.uns["bcnmf"]["topics"])[-1] == "shared_3"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--background", "background", "--holdout", "1.5"], "--holdout must be in [0, 1)"),
        (["--background", "ctrl"], "--background: unknown value"),
        (["--background", "background", "--layer", "counts"], "counts"),
    ],
)
def test_fit_bad_input_exit_code(h5ad, tmp_path, capsys, extra, needle):
    out = tmp_path / "out.h5ad"
    argv = ["fit", str(h5ad), "-o", str(out), "--background-key", "condition", *extra]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("bcnmf-sc: error:") and needle in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_missing_file_subprocess(tmp_path):
    cmd = [sys.executable, "-m", "bcnmf_sc.cli", "fit", str(tmp_path / "nope.h5ad")]
    cmd += ["-o", str(tmp_path / "o.h5ad"), "--background-key", "c", "--background", "x"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.strip().startswith("bcnmf-sc: error:")
    assert "does not exist" in proc.stderr


def test_help():
    proc = subprocess.run(
        [sys.executable, "-m", "bcnmf_sc.cli", "fit", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--background-key" in proc.stdout


def test_demo_small(tmp_path, capsys):
    outdir = tmp_path / "demo"
    argv = ["demo", "-o", str(outdir), "--n-cells", "60", "--n-genes", "120"]
    assert main([*argv, "--max-epochs", "3"]) == 0
    names = ("bcnmf_demo.h5ad", "enrichment.csv", "top_genes.csv", "program_genes.csv")
    for name in (*names, "bcnmf_demo.png"):
        assert (outdir / name).stat().st_size > 0
    out = capsys.readouterr().out
    assert "most target-enriched topic" in out and "planted" in out
    assert "program_genes.csv" in out


def test_sweep_end_to_end(h5ad, tmp_path, capsys):
    out = tmp_path / "sweep.h5ad"
    argv = [
        "sweep", str(h5ad), "-o", str(out), "--background-key", "condition",
        "--background", "background", "-k", "2", "3", "--alphas", "0", "2", "--n-init", "2",
        "--max-epochs", "3", "--device", "cpu", "--heldout", "0",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    res = read_h5ad(out)
    table = res.uns["bcnmf_sweep"]["table"]
    assert sorted(zip(table["alpha"], table["n_topics"], strict=True)) == [
        (0.0, 2), (0.0, 3), (2.0, 2), (2.0, 3)
    ]  # fmt: skip
    rec = res.uns["bcnmf_sweep"]["recommended"]
    assert f"recommended: --alpha {float(rec['alpha']):g} -k {int(rec['n_topics'])}" in printed
    assert "bcnmf" not in res.uns  # a sweep writes only its own key


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--alphas", "1", "-1"], "--alphas must be a number >= 0, got -1.0"),
        (["-k", "0"], "-k/--n-topics must be >= 1, got 0"),
        (["--n-init", "1"], "--n-init must be >= 2"),
        (["--heldout", "0.9"], "--heldout must be a fraction in [0, 0.5]"),
        (["--consensus"], "unrecognized arguments: --consensus"),
    ],
)
def test_sweep_bad_arguments(h5ad, tmp_path, capsys, extra, needle):
    out = tmp_path / "sweep.h5ad"
    argv = ["sweep", str(h5ad), "-o", str(out), "--background-key", "condition"]
    argv += ["--background", "background", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()
