"""Out-of-core (backed AnnData streamed through a RowSource) and data-parallel training."""

import os
import subprocess
import sys
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

import bcnmf_sc as bc
from bcnmf_sc import BcNMF
from bcnmf_sc._engine import engine_options, sparse
from bcnmf_sc._engine.sparse import H5adRows, InMemoryRows, RowSource
from bcnmf_sc.tl._bcnmf import held_out_cells


class Counting(RowSource):
    """Records how many rows every call reads from the wrapped source."""

    def __init__(self, source):
        self.source, self.shape, self.calls = source, source.shape, []

    def rows(self, index):
        self.calls.append(len(index))
        return self.source.rows(index)


@pytest.fixture
def small_windows():
    """Windows, shuffle blocks and the initialisation sample far below the data size, so
    the streaming code paths of large data run on small test data."""
    with engine_options(window_rows=256, shuffle_block=16, init_cells=300):
        yield


def _adata(n_target=700, n_background=700, n_genes=240, seed=0):
    """Simulated counts with a third group ("other", projected) and a gene mask."""
    adata = bc.datasets.simulate(
        n_target=n_target,
        n_background=n_background,
        n_genes=n_genes,
        n_markers=n_genes // 10,
        n_program_genes=n_genes // 10,
        random_state=seed,
    )
    cond = adata.obs["condition"].astype(str).to_numpy()
    cond[::9] = "other"
    adata.obs["condition"] = pd.Categorical(cond)
    adata.var["highly_variable"] = np.arange(n_genes) % 5 != 0
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    return adata


FIT = dict(n_topics=3, max_epochs=3, tol=0, batch_size=128, progress=False)


def test_backed_fit_streams_and_equals_in_memory(tmp_path, small_windows):
    adata = _adata()
    path = tmp_path / "data.h5ad"
    adata.write_h5ad(path)
    before = path.read_bytes()
    backed = sc.read_h5ad(path, backed="r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bc.tl.bcnmf(backed, "condition", "background", target="target", **FIT)
        bc.tl.bcnmf(adata, "condition", "background", target="target", **FIT)
    assert backed.uns["bcnmf"]["params"]["solver"] == "minibatch"
    assert backed.uns["bcnmf"]["params"]["n_projected"] > 0
    np.testing.assert_allclose(backed.varm["bcnmf_loadings"], adata.varm["bcnmf_loadings"])
    np.testing.assert_allclose(backed.obsm["X_bcnmf"], adata.obsm["X_bcnmf"])
    assert np.all(backed.varm["bcnmf_loadings"][~adata.var["highly_variable"].to_numpy()] == 0)
    np.testing.assert_allclose(
        backed.uns["bcnmf"]["history"]["objective"], adata.uns["bcnmf"]["history"]["objective"]
    )
    # the query side: a backed query is streamed too
    query = sc.read_h5ad(path, backed="r")
    bc.tl.bcnmf_transform(query, adata)
    mem = adata.copy()
    bc.tl.bcnmf_transform(mem, adata)
    np.testing.assert_allclose(query.obsm["X_bcnmf"], mem.obsm["X_bcnmf"])
    backed.file.close()
    query.file.close()
    assert path.read_bytes() == before


def test_source_is_read_in_windows_never_whole(tmp_path, small_windows):
    """Every read is at most one window; an epoch reads each row once; same fit as memory."""
    adata = _adata(n_target=900, n_background=600, n_genes=150)
    path = tmp_path / "data.h5ad"
    adata.write_h5ad(path)
    is_t = (adata.obs["condition"] == "target").to_numpy()
    is_b = (adata.obs["condition"] == "background").to_numpy()
    kw = dict(solver="minibatch", batch_size=100, max_epochs=2, tol=0, dtype="float64")
    disk = Counting(H5adRows(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        streamed = BcNMF(3, **kw).fit_source(disk.subset(rows=is_t), disk.subset(rows=is_b))
        memory = BcNMF(3, **kw).fit(adata.X[is_t], adata.X[is_b])
    n = int(is_t.sum() + is_b.sum())
    assert max(disk.calls) <= sparse.WINDOW_ROWS < n
    # validation + null deviance + init sample + 2 epochs + final refit: a few passes
    assert sum(disk.calls) <= 7 * n
    np.testing.assert_allclose(streamed.components_, memory.components_, rtol=1e-10)
    np.testing.assert_allclose(streamed.usage_target_, memory.usage_target_, rtol=1e-9)
    disk.calls.clear()
    H = streamed.transform_source(disk.subset(rows=is_t), batch_size=64)
    assert max(disk.calls) <= sparse.window_rows(64)
    np.testing.assert_allclose(H, memory.transform(adata.X[is_t], batch_size=64), rtol=1e-9)
    disk.source.close()


def test_h5ad_rows_return_exactly_the_requested_rows(tmp_path):
    rng = np.random.default_rng(0)
    X = sp.random(500, 40, density=0.2, random_state=rng, format="csr", dtype=np.float32)
    ad.AnnData(X=X).write_h5ad(tmp_path / "csr.h5ad")
    ad.AnnData(X=X.toarray()).write_h5ad(tmp_path / "dense.h5ad")
    idx = np.sort(rng.choice(500, 120, replace=False))
    cols = rng.permutation(40)[:25]
    for name in ("csr", "dense"):
        for merge in (0, 50, 10**6):
            src = H5adRows(tmp_path / f"{name}.h5ad", merge_nnz=merge)
            assert src.shape == (500, 40)
            np.testing.assert_array_equal(src.rows(idx).toarray(), X[idx].toarray())
            sub = src.subset(rows=idx, cols=cols)
            got = sub.rows(np.arange(10, 60))
            assert got.has_sorted_indices
            np.testing.assert_array_equal(got.toarray(), X[idx[10:60]][:, cols].toarray())
            src.close()
    ad.AnnData(X=X.tocsc()).write_h5ad(tmp_path / "csc.h5ad")
    with pytest.raises(ValueError, match="CSC"):
        H5adRows(tmp_path / "csc.h5ad")


def test_epoch_order_is_a_block_shuffle_above_one_window(small_windows):
    rng = np.random.default_rng(0)
    small = sparse.epoch_order(200, 64, np.random.default_rng(1))
    np.testing.assert_array_equal(small, np.random.default_rng(1).permutation(200))
    order = sparse.epoch_order(1000, 64, rng)
    np.testing.assert_array_equal(np.sort(order), np.arange(1000))
    L = sparse.window_rows(64)
    assert L == 256
    for w in range(0, 1000, L):  # every window is a union of whole blocks (the last may be short)
        blocks = np.unique(order[w : w + L] // 16)
        assert len(blocks) <= L // 16 + 1


def test_backed_errors_leave_file_and_adata_unchanged(tmp_path):
    adata = _adata(n_target=150, n_background=150, n_genes=80)
    bad = np.flatnonzero(adata.X.indices % 5 != 0)[5]  # a value of a gene in the mask
    adata.X.data[bad] = -1.0
    path = tmp_path / "bad.h5ad"
    adata.write_h5ad(path)
    before = path.read_bytes()
    backed = sc.read_h5ad(path, backed="r")
    with pytest.raises(ValueError, match="negative values"):
        bc.tl.bcnmf(backed, "condition", "background", target="target", **FIT)
    assert "X_bcnmf" not in backed.obsm and "bcnmf" not in backed.uns
    backed.file.close()
    assert path.read_bytes() == before
    # results cannot go into a view of a backed AnnData: a clear error before any work
    backed = sc.read_h5ad(path, backed="r")
    with pytest.raises(ValueError, match="view of a backed"):
        bc.tl.bcnmf(backed[::2], "condition", "background", target="target", **FIT)
    backed.file.close()
    assert path.read_bytes() == before


def test_full_solver_refuses_a_large_streamed_source(tmp_path):
    X = sp.random(1200, 30, density=0.3, random_state=0, format="csr", dtype=np.float32)
    ad.AnnData(X=X).write_h5ad(tmp_path / "x.h5ad")
    src = H5adRows(tmp_path / "x.h5ad")
    with pytest.raises(ValueError, match="solver='full'"):  # the contrast's full batch
        BcNMF(2, n_shared=0, solver="full").fit_source(
            src.subset(rows=np.arange(600)), InMemoryRows(X)
        )
    src.close()


def test_torchrun_two_processes_match_one_process(tmp_path):
    """`torchrun --nproc-per-node=2 -m bcnmf_sc.distributed` (gloo) = one process.

    The default model (16 shared topics, 20% of each group held out and projected).
    """
    adata = _adata(n_target=600, n_background=500, n_genes=100, seed=1)
    path, out = tmp_path / "data.h5ad", tmp_path / "out.h5ad"
    adata.write_h5ad(path)
    args = ["--background-key", "condition", "--background", "background", "--target"]
    args += ["target", "-k", "3", "--max-epochs", "3", "--tol", "0", "--batch-size", "128"]
    args += ["--dtype", "float64", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        + ["-m", "bcnmf_sc.distributed", str(path), "-o", str(out)]
        + args,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    res = ad.read_h5ad(out)
    p = res.uns["bcnmf"]["params"]
    assert p["n_processes"] == 2 and p["n_shared"] == 16 and p["holdout"] == 0.2

    is_t = (adata.obs["condition"] == "target").to_numpy()
    is_b = (adata.obs["condition"] == "background").to_numpy()
    held = held_out_cells(is_t, is_b, 0.2, 0)  # as tl.bcnmf, with --seed's default 0
    assert p["n_held_out"] == held.sum() > 0
    fit_t, fit_b = is_t & ~held, is_b & ~held
    genes = adata.var["highly_variable"].to_numpy()
    src = H5adRows(path).subset(cols=genes)
    kw = dict(solver="minibatch", batch_size=128, max_epochs=3, tol=0, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = BcNMF(3, device="cpu", **kw).fit_source(
            src.subset(rows=fit_t), src.subset(rows=fit_b)
        )
    assert one.n_shared_ == 16 and res.obsm["X_bcnmf"].shape == (adata.n_obs, 3 + 16)
    np.testing.assert_allclose(res.varm["bcnmf_loadings"][genes], one.components_.T, rtol=1e-8)
    np.testing.assert_allclose(res.obsm["X_bcnmf"][fit_t], one.usage_target_, rtol=1e-7)
    np.testing.assert_allclose(res.obsm["X_bcnmf"][fit_b], one.usage_background_, rtol=1e-7)
    np.testing.assert_allclose(res.uns["bcnmf"]["objective"], one.objective_, rtol=1e-10)
    # projected cells (neither group, and the held-out ones): each process solves its own
    # shard (stopping per batch), as here
    projected = ~(fit_t | fit_b)
    Xo = adata.X[projected][:, genes]
    halves = [one.transform(Xo[part]) for part in np.array_split(np.arange(Xo.shape[0]), 2)]
    np.testing.assert_allclose(res.obsm["X_bcnmf"][projected], np.vstack(halves), rtol=1e-7)
