import os

import pytest
import torch

# The test problems are tiny: one thread avoids OpenMP overhead and oversubscription
# when the suite shares the machine with other work.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny matrices: torch's intra-op threads only add overhead (a lot on a busy CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# BCNMF_TEST_DEVICE=cuda (benchmarks/gpu_check.sh): every fit and projection that the tests
# run on the CPU ("cpu" or "auto") runs on that device instead, so the suite checks the
# GPU wherever it applies. Unset (the default), nothing changes.
_TEST_DEVICE = os.environ.get("BCNMF_TEST_DEVICE")


@pytest.fixture(autouse=True)
def _test_device(monkeypatch):
    if not _TEST_DEVICE:
        yield
        return
    from bcnmf_sc._engine import _validation, model, projection, setup

    original = _validation.resolve_device

    def redirect(device):
        if isinstance(device, str) and device in ("cpu", "auto"):
            device = _TEST_DEVICE
        return original(device)

    for module in (_validation, model, projection, setup):
        monkeypatch.setattr(module, "resolve_device", redirect)
    yield
