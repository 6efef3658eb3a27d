"""CPU threads of a fit: how many, and set for the duration of a block only.

Every entry point that computes (``BcNMF.fit`` / ``fit_source``, ``transform`` /
``transform_source``, ``score_source``; ``tl.bcnmf``, ``tl.bcnmf_transform``,
``tl.bcnmf_sweep``) runs inside :func:`torch_threads`, which sets torch's intra-op CPU
threads (and numpy's BLAS threads) and restores the caller's settings on leaving, even
on an error.

Why a default below torch's: torch starts with one thread per logical CPU. The solver's
products are small (a minibatch of a few hundred cells), so on a machine shared with other
work every parallel region waits for its slowest, descheduled thread: on a busy 2-core
machine a K=3 fit of the PBMC example took 14.5 s with torch's default threads and 1.1 s
with one (issue 15). The default is therefore the physical cores available to this
process, never more than torch's own default (hyper-threads add no arithmetic here).
"""

from __future__ import annotations

import contextlib
import numbers
import os
from collections.abc import Iterator

import torch

__all__ = [
    "N_JOBS_MESSAGE",
    "available_cpus",
    "default_threads",
    "resolve_n_jobs",
    "torch_threads",
    "valid_n_jobs",
]


def available_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _physical_share() -> int:
    """Physical cores among the available CPUs (all of them if psutil is not installed)."""
    cpus = available_cpus()
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is optional
        return cpus
    logical, physical = psutil.cpu_count(logical=True), psutil.cpu_count(logical=False)
    if not logical or not physical:  # pragma: no cover - unknown topology
        return cpus
    return max(1, cpus * physical // logical)


def default_threads() -> int:
    """``n_jobs=None``: the physical cores available, at most torch's own default."""
    return max(1, min(_physical_share(), torch.get_num_threads()))


#: The message of an invalid ``n_jobs`` (``{value!r}`` is the value).
N_JOBS_MESSAGE = "n_jobs must be None, -1 (all CPUs) or an integer >= 1, got {value!r}."


def valid_n_jobs(n_jobs) -> bool:
    """``n_jobs`` is ``None``, ``-1`` or an integer >= 1."""
    return n_jobs is None or (
        isinstance(n_jobs, numbers.Integral)
        and not isinstance(n_jobs, bool)
        and (int(n_jobs) >= 1 or int(n_jobs) == -1)
    )


def resolve_n_jobs(n_jobs: int | None) -> int:
    """Threads for ``n_jobs``: ``None`` the default above, ``-1`` every available CPU."""
    if not valid_n_jobs(n_jobs):
        raise ValueError(N_JOBS_MESSAGE.format(value=n_jobs))
    if n_jobs is None:
        return default_threads()
    if n_jobs == -1:
        return available_cpus()
    return int(n_jobs)


def _blas_limits(n: int) -> contextlib.AbstractContextManager:
    """The BLAS threads of numpy and scipy limited to ``n`` (threadpoolctl), restored after."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


@contextlib.contextmanager
def torch_threads(n_jobs: int | None) -> Iterator[int]:
    """Run a block with torch's CPU threads set from ``n_jobs``; restore them after.

    Yields the number of threads in effect. torch's intra-op threads are set (torch fixes
    its inter-op pool at the first parallel call), and so are numpy's and scipy's BLAS
    threads (through threadpoolctl, when installed: the initialisation's QR and eigen
    decompositions run there; unlimited, they were 4x slower on a busy 2-core machine).
    A GPU fit is not affected beyond the CPU work around it.
    """
    before = torch.get_num_threads()
    n = resolve_n_jobs(n_jobs)
    if n != before:
        torch.set_num_threads(n)
    try:
        with _blas_limits(n):
            yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
