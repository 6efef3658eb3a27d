"""Checks of parameters and input matrices, and the device and dtype a fit runs on."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .rows import RowSource
from .sparse import as_csr

try:  # reuse scikit-learn's warning class when it is there, so filters written for it work
    from sklearn.exceptions import ConvergenceWarning
except ImportError:  # pragma: no cover - scikit-learn comes with scanpy

    class ConvergenceWarning(UserWarning):  # type: ignore[no-redef]
        """The solver stopped at ``max_epochs`` before reaching ``tol``."""


__all__ = [
    "LOSSES",
    "ConvergenceWarning",
    "Check",
    "check_matrix",
    "check_params",
    "resolve_device",
    "resolve_dtype",
]

#: The losses the engine implements (see :mod:`~bcnmf_sc._engine.losses`).
LOSSES = ("kl", "frobenius")
SOLVERS = ("auto", "full", "minibatch")
SCALINGS = ("deviance", "raw")
INITS = ("auto", "contrastive", "nndsvda", "nndsvd", "random")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Check:
    """One rule of a parameter table: ``ok(value)`` must hold, else ``message`` is raised.

    ``message`` is formatted with ``name`` and ``value`` (``{value!r}`` etc.).
    """

    ok: Callable[[Any], bool]
    message: str


def integer(low: int, *, none: bool = False, message: str | None = None) -> Check:
    """An integer (not a bool) ``>= low``; ``None`` too when ``none``."""

    def ok(v) -> bool:
        if v is None:
            return none
        return not isinstance(v, bool) and isinstance(v, numbers.Integral) and int(v) >= low

    default = "{name} must be a positive integer or None, got {value!r}."
    return Check(ok, message or default)


def real(ok: Callable[[float], bool], message: str) -> Check:
    """A real number for which ``ok`` holds."""
    return Check(lambda v: isinstance(v, numbers.Real) and bool(ok(float(v))), message)


def one_of(values: Sequence[str], message: str | None = None) -> Check:
    """One of ``values``."""
    default = "Unknown {name} {value!r}: use one of " + repr(tuple(values)) + "."
    return Check(lambda v: v in values, message or default)


def check_params(params: Mapping[str, Any], table: Mapping[str, Sequence[Check]]) -> None:
    """Raise ``ValueError`` at the first rule of ``table`` that a parameter breaks."""
    for name, checks in table.items():
        value = params[name]
        for c in checks:
            if not c.ok(value):
                raise ValueError(c.message.format(name=name, value=value))


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"Unknown device {device!r}: use 'auto', 'cpu' or 'cuda'.") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA GPU; use 'auto'.")
    return dev


def resolve_dtype(dtype: Any) -> torch.dtype:
    """``"float32"`` / ``"float64"`` (or the numpy / torch dtypes) -> the torch dtype."""
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    try:
        key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    except TypeError:
        key = None
    if key not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}: use 'float32' (default) or 'float64'.")
    return _DTYPES[key]


def _known_dtype(v: Any) -> bool:
    try:
        resolve_dtype(v)
    except ValueError:
        return False
    return True


DTYPE = Check(_known_dtype, "Unknown dtype {value!r}: use 'float32' (default) or 'float64'.")
ALPHA = (
    real(math.isfinite, "alpha must be a finite number >= 0, got {value!r}."),
    real(
        lambda v: v >= 0,
        "alpha must be >= 0, got {value}; alpha=0 is plain NMF of the target, "
        "larger values suppress what the background also explains.",
    ),
)


def check_matrix(X: Any, name: str) -> sp.csr_matrix:
    """``X`` as CSR, or an error that says what is wrong with it (one pass over values)."""
    if X is None:
        raise ValueError(f"{name} is missing: pass a cells x genes matrix.")
    if isinstance(X, RowSource):
        raise TypeError("pass matrices to fit(); row sources go through fit_source().")
    X = as_csr(X, name=name)
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}.")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no cells (0 rows): both groups need at least one cell.")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has no genes (0 columns).")
    if X.nnz and not np.all(np.isfinite(X.data)):
        raise ValueError(
            f"{name} contains NaN or infinite values; remove or impute them before fitting."
        )
    if X.nnz and X.data.min() < 0:
        raise ValueError(
            f"{name} contains negative values (min {X.data.min():.3g}); NMF needs non-negative "
            "data. Use raw counts (not scaled or centred data)."
        )
    return X
