"""The GPU gives the CPU's result (float rounding aside); skipped without CUDA."""

import numpy as np
import pytest
import torch

from _sim import target_background
from bcnmf_sc import BcNMF

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
@pytest.mark.parametrize(
    ("solver", "n_shared"),
    # the contrast (full batch and minibatch); the default ("auto": shared topics for kl)
    [("full", 0), ("minibatch", 0), ("minibatch", "auto")],
)
def test_cuda_fit_matches_cpu(loss, solver, n_shared):
    Xt, Xb, _ = target_background(n_target=300, n_background=300, n_genes=200, random_state=1)
    kw = dict(solver=solver, loss=loss, max_epochs=10, tol=0, dtype="float64", batch_size=128)
    kw["n_shared"] = n_shared
    cpu = BcNMF(3, device="cpu", **kw).fit(Xt, Xb)
    gpu = BcNMF(3, device="cuda", **kw).fit(Xt, Xb)
    assert gpu.device_.type == "cuda"
    np.testing.assert_allclose(gpu.components_, cpu.components_, rtol=1e-6, atol=1e-10)
    assert gpu.objective_ == pytest.approx(cpu.objective_, rel=1e-8)
    np.testing.assert_allclose(gpu.transform(Xt), cpu.transform(Xt), rtol=1e-5, atol=1e-8)
