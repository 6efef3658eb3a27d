"""n_jobs: torch's CPU threads are set for a fit or projection only, and restored after."""

import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp
import torch

import bcnmf_sc as bc
from _sim import target_background
from bcnmf_sc import BcNMF, InMemoryRows
from bcnmf_sc._cli_common import UserError, add_fit_arguments, check_args
from bcnmf_sc._engine.threads import default_threads, resolve_n_jobs, torch_threads
from bcnmf_sc.tl._inputs import scanpy_n_jobs


class SpyRows(InMemoryRows):
    """Rows of a matrix; records torch's thread count at every read."""

    def __init__(self, X):
        super().__init__(sp.csr_matrix(X))
        self.seen: set[int] = set()

    def rows(self, index):
        self.seen.add(torch.get_num_threads())
        return super().rows(index)


@pytest.fixture
def scanpy_jobs():
    """Set ``sc.settings.n_jobs`` in a test; restored after it."""
    before = sc.settings.n_jobs

    def set_jobs(n):
        sc.settings.n_jobs = n

    yield set_jobs
    sc.settings.n_jobs = before


@pytest.fixture
def data():
    Xt, Xb, _ = target_background(
        n_target=150, n_background=150, n_genes=80, n_markers=8, n_program_genes=8,
        random_state=3,
    )  # fmt: skip
    return Xt, Xb


def test_torch_threads_restores_after_block_and_error():
    torch.set_num_threads(1)
    with torch_threads(2) as n:
        assert n == 2 and torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1
    with pytest.raises(RuntimeError), torch_threads(2):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 1


def test_blas_threads_limited_and_restored():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's BLAS loaded

    def blas():
        return [
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        ]

    before = blas()
    with torch_threads(1):
        assert set(blas()) == {1}
    assert blas() == before


def test_resolve_n_jobs():
    assert resolve_n_jobs(3) == 3
    assert 1 <= resolve_n_jobs(None) == default_threads() <= torch.get_num_threads()
    assert resolve_n_jobs(-1) >= 1
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n_jobs"):
            resolve_n_jobs(bad)


@pytest.mark.parametrize("solver", ["full", "minibatch"])
def test_fit_uses_n_jobs_and_restores(data, solver):
    Xt, Xb = data
    torch.set_num_threads(1)
    src_t, src_b = SpyRows(Xt), SpyRows(Xb)
    n_shared = 0 if solver == "full" else "auto"  # full batch: the contrast only
    model = BcNMF(
        3, n_shared=n_shared, solver=solver, max_epochs=2, tol=0, n_jobs=2, batch_size=100
    )
    model.fit_source(src_t, src_b)
    assert src_t.seen == {2} and src_b.seen == {2}
    assert torch.get_num_threads() == 1
    spy = SpyRows(Xt)
    model.transform_source(spy)
    assert spy.seen == {2} and torch.get_num_threads() == 1
    model.score_source(SpyRows(Xt), SpyRows(Xb))
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("solver", ["full", "minibatch"])
def test_result_does_not_depend_on_threads(data, solver):
    """Same seed, CPU: the same fit up to float rounding with 1 and 2 threads.

    Sums split over threads may add in another order (BLAS, sparse products), so the
    results are compared with a float32 tolerance, not bit for bit.
    """
    Xt, Xb = data
    kw = dict(solver=solver, max_epochs=4, tol=0, dtype="float64")
    kw["n_shared"] = 0 if solver == "full" else "auto"  # full batch: the contrast only
    fits = [BcNMF(3, n_jobs=n, **kw).fit(Xt, Xb) for n in (1, 2)]
    np.testing.assert_allclose(fits[0].components_, fits[1].components_, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(fits[0].usage_target_, fits[1].usage_target_, rtol=1e-6, atol=1e-9)
    assert fits[0].objective_ == pytest.approx(fits[1].objective_, rel=1e-9)


def test_bad_n_jobs_is_a_parameter_error(data):
    with pytest.raises(ValueError, match="n_jobs must be"):
        BcNMF(2, n_jobs=0).fit(*data)


def test_tl_reads_scanpy_n_jobs(scanpy_jobs):
    scanpy_jobs(2)
    assert scanpy_n_jobs(None) == 2
    assert scanpy_n_jobs(1) == 1
    scanpy_jobs(-1)
    assert scanpy_n_jobs(None) == -1
    scanpy_jobs(0)  # not a thread count: the engine decides
    assert scanpy_n_jobs(None) is None
    with pytest.raises(ValueError, match="n_jobs"):
        scanpy_n_jobs(0)


def test_tl_bcnmf_restores_threads(scanpy_jobs):
    adata = bc.datasets.simulate(
        n_target=120, n_background=120, n_genes=80, n_markers=8, n_program_genes=8
    )
    scanpy_jobs(2)
    torch.set_num_threads(1)
    bc.tl.bcnmf(adata, "condition", "background", n_topics=2, max_epochs=3, tol=0, progress=False)
    assert torch.get_num_threads() == 1
    bc.tl.bcnmf(
        adata, "condition", "background", n_topics=2, max_epochs=3, tol=0, progress=False, n_jobs=2
    )
    assert torch.get_num_threads() == 1


def test_cli_n_jobs_flag():
    import argparse

    p = argparse.ArgumentParser()
    add_fit_arguments(p)
    base = ["in.h5ad", "-o", "out.h5ad", "--background-key", "c", "--device", "cpu"]
    assert p.parse_args(base).n_jobs is None
    args = p.parse_args([*base, "--n-jobs", "2"])
    assert args.n_jobs == 2
    check_args(args)
    with pytest.raises(UserError, match="--n-jobs"):
        check_args(p.parse_args([*base, "--n-jobs", "0"]))
