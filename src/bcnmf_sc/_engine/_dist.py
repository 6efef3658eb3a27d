"""What data-parallel training exchanges between processes, behind one small interface.

:class:`LocalComm` (one process) does nothing; :class:`TorchComm` sums over the processes
of an initialised ``torch.distributed`` process group. The solver calls the same methods
either way, so single-process and data-parallel fits run the same code.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["LocalComm", "TorchComm"]


class LocalComm:
    """One process: every collective is the identity."""

    rank = 0
    world = 1

    def sum_scalar(self, x: float) -> float:
        return x

    def sum_array(self, a: np.ndarray) -> np.ndarray:
        return a

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def broadcast_(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def all_gather(self, obj) -> list:
        return [obj]


class TorchComm(LocalComm):
    """Sums over the processes of the default ``torch.distributed`` process group.

    Tensors are reduced on the device of the backend (CUDA for ``nccl``, CPU for
    ``gloo``); Python objects (the initialisation sample) travel over a ``gloo`` group.
    """

    def __init__(self):
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "distributed=True needs an initialised torch.distributed process group: "
                "launch with torchrun and call torch.distributed.init_process_group() first "
                "(or use `python -m bcnmf_sc.distributed`, which does both)."
            )
        self._dist = dist
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        backend = str(dist.get_backend()).lower()
        self._device = (
            torch.device("cuda", torch.cuda.current_device())
            if backend == "nccl"
            else torch.device("cpu")
        )
        # object collectives (pickled CSR blocks) are simplest over gloo
        self._objects = None if backend == "gloo" else dist.new_group(backend="gloo")

    def _reduce(self, t: torch.Tensor) -> torch.Tensor:
        work = t if t.device == self._device else t.to(self._device)
        self._dist.all_reduce(work)
        return work

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        out = self._reduce(t)
        if out is not t:
            t.copy_(out)
        return t

    def sum_scalar(self, x: float) -> float:
        return float(self._reduce(torch.tensor([x], dtype=torch.float64)).item())

    def sum_array(self, a: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.ascontiguousarray(a, dtype=np.float64))
        return self._reduce(t).cpu().numpy().astype(np.float64)

    def broadcast_(self, t: torch.Tensor) -> torch.Tensor:
        work = t if t.device == self._device else t.to(self._device)
        self._dist.broadcast(work, src=0)
        if work is not t:
            t.copy_(work)
        return t

    def all_gather(self, obj) -> list:
        out = [None] * self.world
        self._dist.all_gather_object(out, obj, group=self._objects)
        return out
