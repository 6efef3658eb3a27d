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
