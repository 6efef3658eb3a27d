"""Issue 17: the command lines never lose data and report user errors as one line.

Both ``bcnmf-sc fit`` (:mod:`bcnmf_sc.cli`) and ``python -m bcnmf_sc.distributed`` are
tested; the error matrix runs in-process (fast), a few cases of each also as real
subprocesses (exit status, stderr, untouched input).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from bcnmf_sc import cli, distributed, tl
from bcnmf_sc._cli_common import translate
from bcnmf_sc.datasets import simulate

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

COMMANDS = {
    "fit": (cli.main, ["fit"], "bcnmf-sc: error:", "bcnmf_sc.cli"),
    "distributed": (distributed.main, [], "bcnmf_sc.distributed: error:", "bcnmf_sc.distributed"),
}
GROUPS = ["--background-key", "condition", "--background", "background"]
FAST = ["-k", "2", "--max-epochs", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    adata = simulate(n_target=40, n_background=40, n_genes=60, n_markers=10, n_program_genes=10)
    adata.layers["counts"] = adata.X.copy()
    adata.write_h5ad(d / "in.h5ad")
    with h5py.File(d / "plain.h5", "w") as f:  # HDF5, but not an AnnData
        f["data"] = np.arange(10)
    (d / "notes.txt").write_text("not an h5ad file\n")
    return d


@pytest.fixture
def h5ad(data_dir, tmp_path):
    path = tmp_path / "in.h5ad"
    path.write_bytes((data_dir / "in.h5ad").read_bytes())
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


def _call(cmd: str, argv: list[str], capsys) -> tuple[int, str]:
    main, prefix_argv, _, _ = COMMANDS[cmd]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main([*prefix_argv, *argv])
    return rc, capsys.readouterr().err


# ------------------------------------------------------------------ error matrix
def _cases(h5ad: Path, data_dir: Path):
    """argv and the expected message of each user error; run in h5ad's folder."""
    out = str(h5ad.parent / "out.h5ad")
    i = str(h5ad)
    return {
        "missing input": ([str(h5ad.parent / "nope.h5ad"), "-o", out, *GROUPS], "does not exist"),
        "text file": ([str(data_dir / "notes.txt"), "-o", out, *GROUPS], "not an .h5ad"),
        "plain hdf5": ([str(data_dir / "plain.h5"), "-o", out, *GROUPS], "not an AnnData"),
        "missing column": (
            [i, "-o", out, "--background-key", "cond", "--background", "x"],
            "--background-key 'cond' is not an obs column",
        ),
        "unknown label": (
            [i, "-o", out, "--background-key", "condition", "--background", "ctrl"],
            "--background: unknown value(s) ['ctrl']",
        ),
        "unknown target": ([i, "-o", out, *GROUPS, "--target", "tgt"], "--target: unknown"),
        "no background": ([i, "-o", out, "--background-key", "condition"], "--background is"),
        "k 0": ([i, "-o", out, *GROUPS, "-k", "0"], "-k/--n-topics must be >= 1, got 0"),
        "k too large": ([i, "-o", out, *GROUPS, "-k", "500"], "-k/--n-topics 500 is too large"),
        "k not int": ([i, "-o", out, *GROUPS, "-k", "two"], "-k/--n-topics"),
        "bad loss": ([i, "-o", out, *GROUPS, "--loss", "l2"], "--loss"),
        "bad device": ([i, "-o", out, *GROUPS, "--device", "tpu"], "--device 'tpu'"),
        "mps device": ([i, "-o", out, *GROUPS, "--device", "mps"], "--device 'mps'"),
        "bad layer": ([i, "-o", out, *GROUPS, "--layer", "raw"], "--layer 'raw' is not a layer"),
        "bad mask": ([i, "-o", out, *GROUPS, "--mask-var", "hv"], "--mask-var 'hv'"),
        "negative alpha": ([i, "-o", out, *GROUPS, "--alpha", "-1"], "--alpha must be"),
        "negative tol": ([i, "-o", out, *GROUPS, "--tol", "-1"], "--tol must be"),
        "negative seed": ([i, "-o", out, *GROUPS, "--seed", "-1"], "--seed must be >= 0"),
        "slash key": ([i, "-o", out, *GROUPS, "--key-added", "run/1"], "--key-added"),
        "no output flag": ([i, *GROUPS], "-o/--output"),
        "output is input": ([i, "-o", i, *GROUPS], "is the input file"),
        "output is ./input": ([i, "-o", "./in.h5ad", *GROUPS], "is the input file"),  # cwd
        "output is a folder": ([i, "-o", str(h5ad.parent), *GROUPS], "is a directory"),
    }


CASE_NAMES = list(_cases(Path("/x/in.h5ad"), Path("/x")))
if not torch.cuda.is_available():  # the case needs a machine without CUDA
    CASE_NAMES.append("cuda without gpu")


@pytest.mark.parametrize("cmd", list(COMMANDS))
@pytest.mark.parametrize("case", CASE_NAMES)
def test_user_error_is_one_line(cmd, case, h5ad, data_dir, capsys, monkeypatch):
    monkeypatch.chdir(h5ad.parent)
    cases = _cases(h5ad, data_dir)
    cases["cuda without gpu"] = ([str(h5ad), "-o", "o.h5ad", *GROUPS, "--device", "cuda"], "CUDA")
    argv, needle = cases[case]
    if case == "mps device" and getattr(torch.backends, "mps", None):
        if torch.backends.mps.is_available():  # pragma: no cover
            pytest.skip("this machine has MPS")
    before = _sha(h5ad)
    rc, err = _call(cmd, [*argv, "--max-epochs", "2"], capsys)
    prefix = COMMANDS[cmd][2]
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix) and needle in lines[0], err
    assert "Traceback" not in err
    assert _sha(h5ad) == before
    assert not (h5ad.parent / "out.h5ad").exists() and not _leftovers(h5ad.parent)


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_existing_output_refused_then_overwritten(cmd, h5ad, capsys):
    out = h5ad.parent / "out.h5ad"
    out.write_text("precious\n")
    rc, err = _call(cmd, [str(h5ad), "-o", str(out), *GROUPS, *FAST], capsys)
    assert rc == 2 and "exists; pass --overwrite" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "precious\n"
    rc, err = _call(cmd, [str(h5ad), "-o", str(out), *GROUPS, *FAST, "--force"], capsys)
    assert rc == 0, err
    res = ad.read_h5ad(out)
    # the default model for counts: 2 target topics + 16 shared ones
    assert res.obsm["X_bcnmf"].shape == (80, 2 + 16) and "counts" in res.layers
    assert res.uns["bcnmf"]["params"]["n_shared"] == 16
    assert not _leftovers(h5ad.parent)


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_overwrite_input_keeps_its_data(cmd, h5ad, tmp_path, capsys):
    """With --overwrite the input becomes input + results, through a symlink too."""
    link = tmp_path / "link.h5ad"
    link.symlink_to(h5ad)
    rc, err = _call(cmd, [str(h5ad), "-o", str(link), *GROUPS, *FAST], capsys)
    assert rc == 2 and "is the input file" in err
    orig = ad.read_h5ad(h5ad)
    rc, err = _call(cmd, [str(h5ad), "-o", str(link), *GROUPS, *FAST, "--overwrite"], capsys)
    assert rc == 0, err
    assert link.is_symlink()
    res = ad.read_h5ad(h5ad)
    assert (res.X != orig.X).nnz == 0 and (res.layers["counts"] != orig.X).nnz == 0
    assert list(res.obs.columns) == [*orig.obs.columns, "bcnmf_target_score"]
    assert "X_bcnmf" in res.obsm and "simulation" in res.uns
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_failed_write_leaves_no_file(cmd, exc, h5ad, capsys, monkeypatch):
    """A failure halfway through writing leaves the old output intact and no temp file."""
    out = h5ad.parent / "out.h5ad"
    out.write_text("old\n")

    def broken(path, *args, **kwargs):
        Path(path).write_bytes(b"\x89HDF half a file")
        raise exc

    if cmd == "fit":
        monkeypatch.setattr(ad.AnnData, "write_h5ad", lambda self, path, **kw: broken(path))
    else:
        monkeypatch.setattr(distributed, "_add_results", broken)
    before = _sha(h5ad)
    rc, err = _call(cmd, [str(h5ad), "-o", str(out), *GROUPS, *FAST, "--overwrite"], capsys)
    assert rc == (130 if isinstance(exc, KeyboardInterrupt) else 1), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out.read_text() == "old\n" and _sha(h5ad) == before
    assert not _leftovers(h5ad.parent)
    # a new output: nothing at all is left
    rc, _ = _call(cmd, [str(h5ad), "-o", str(h5ad.parent / "new.h5ad"), *GROUPS, *FAST], capsys)
    assert not (h5ad.parent / "new.h5ad").exists() and not _leftovers(h5ad.parent)


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_debug_shows_the_traceback(cmd, h5ad):
    main, prefix_argv, _, _ = COMMANDS[cmd]
    argv = [*prefix_argv, str(h5ad), "-o", "x.h5ad", *GROUPS, "-k", "0", "--debug"]
    with pytest.raises(Exception, match="n-topics"):
        main(argv)


# ---------------------------------------------------------------- subprocesses
@pytest.mark.parametrize("cmd", list(COMMANDS))
@pytest.mark.parametrize("case", ["output is ./input"])  # the matrix above runs in-process
def test_subprocess_exit_status_and_message(cmd, case, h5ad, data_dir):
    """A real process (about 10 s of imports on a busy machine, so one case each)."""
    argv, needle = _cases(h5ad, data_dir)[case]
    before = _sha(h5ad)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(cli.__file__).parents[1]), *sys.path])
    proc = subprocess.run(
        [sys.executable, "-m", COMMANDS[cmd][3], *COMMANDS[cmd][1], *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=h5ad.parent,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(COMMANDS[cmd][2]) and needle in lines[0]
    assert _sha(h5ad) == before and not _leftovers(h5ad.parent)


# ------------------------------------------------- both commands, one writer
def test_distributed_writes_what_tl_bcnmf_writes(h5ad, capsys):
    """One process of the torchrun entry point = tl.bcnmf on the same file, key by key."""
    out = h5ad.parent / "dist.h5ad"
    opts = ["-k", "3", "--max-epochs", "3", "--alpha", "0.5", "--seed", "4", "--device", "cpu"]
    opts += ["--dtype", "float64", "--key-added", "run1", "--mask-var", "program_1_gene"]
    adata = ad.read_h5ad(h5ad)
    adata.var["program_1_gene"] = adata.var["program"] != "none"  # fewer genes than all
    adata.write_h5ad(h5ad)
    rc, err = _call("distributed", [str(h5ad), "-o", str(out), *GROUPS, *opts], capsys)
    assert rc == 0, err

    res_tl = ad.read_h5ad(h5ad, backed="r")  # streamed, as the entry point does
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tl.bcnmf(
            res_tl,
            "condition",
            "background",
            n_topics=3,
            max_epochs=3,
            alpha=0.5,
            random_state=4,
            device="cpu",
            mask_var="program_1_gene",
            engine_kwargs={"dtype": "float64"},
            key_added="run1",
            progress=False,
        )
    res_tl.file.close()
    res = ad.read_h5ad(out)
    a, b = res.uns["run1"], res_tl.uns["run1"]
    assert set(a) == set(b)
    assert a["params"].keys() == {*b["params"], "n_processes"}
    for k, v in b["params"].items():
        np.testing.assert_array_equal(a["params"][k], v, err_msg=k)
    assert type(a["params"]["alpha"]) is type(b["params"]["alpha"])
    assert set(a["history"]) == set(b["history"])
    for k in set(b["history"]) - {"seconds"}:  # wall-clock time differs, of course
        np.testing.assert_allclose(a["history"][k], b["history"][k], rtol=1e-8, err_msg=k)
    assert list(a["topics"]) == list(b["topics"])
    for k in ("objective", "n_epochs", "converged"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-8, err_msg=k)
    pd.testing.assert_frame_equal(a["enrichment"], b["enrichment"], rtol=1e-6)
    np.testing.assert_allclose(res.obsm["X_run1"], res_tl.obsm["X_run1"], rtol=1e-6)
    np.testing.assert_allclose(res.varm["run1_loadings"], res_tl.varm["run1_loadings"], rtol=1e-6)
    for group in ("obsm", "varm"):  # program scores and profiles too
        assert set(getattr(res, group)) >= set(getattr(res_tl, group)), group
        for name, value in getattr(res_tl, group).items():
            np.testing.assert_allclose(
                np.asarray(getattr(res, group)[name], dtype=float),
                np.asarray(value, dtype=float),
                rtol=1e-6,
                atol=1e-12,
                err_msg=name,
            )
    # the rest of the input is there too
    pd.testing.assert_frame_equal(res.obs, res_tl.obs, rtol=1e-6)
    orig = ad.read_h5ad(h5ad)
    assert (res.X != orig.X).nnz == 0 and (res.layers["counts"] != orig.X).nnz == 0


def test_translate_names_the_flags():
    assert translate("n_components must be an integer >= 1, got 0.") == (
        "-k/--n-topics must be an integer >= 1, got 0."
    )
    assert translate("n_topics=9 is too large for 3 target cells") == (
        "-k/--n-topics 9 is too large for 3 target cells"
    )
    assert translate("alpha must be a finite number >= 0") == "--alpha must be a finite number >= 0"
    assert "--layer counts" in translate("loss='kl' expects raw counts (e.g. layer='counts')")
    assert translate("The background group (['b']) has no cells.") == (
        "The background group (['b']) has no cells."
    )
    assert translate("Unknown loss 'l2': use one of").startswith("Unknown --loss 'l2'")


def test_help_documents_the_overwrite_policy():
    for parser in (cli._parser()._subparsers._group_actions[0].choices["fit"],):
        text = parser.format_help()
        assert "--overwrite" in text and "--force" in text and "temporary file" in text
    text = distributed._parser().format_help()
    assert "--overwrite" in text and "input file plus the results" in text
    for flag in ("--mask-var", "--n-init", "--tol", "--consensus"):
        assert flag in cli._parser()._subparsers._group_actions[0].choices["fit"].format_help()
