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
    "DataScaleError",
    "check_matrix",
    "check_params",
    "check_scale",
    "resolve_device",
    "resolve_dtype",
]

#: The losses the engine implements (see :mod:`~bcnmf_sc._engine.losses`).
LOSSES = ("kl", "frobenius")
SOLVERS = ("auto", "full", "minibatch")
SCALINGS = ("auto", "deviance", "cells", "raw")
NULL_TOPICS = ("auto", "background", "none")
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
    if dev.type not in DEVICE_TYPES:
        raise ValueError(f"Unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'mps'.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA GPU; use 'auto'.")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise ValueError("device='mps' was requested but torch sees no MPS device; use 'auto'.")
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
    Check(
        lambda v: (
            v is None
            or (not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(float(v)))
        ),
        "alpha must be a finite number >= 0 or None, got {value!r}.",
    ),
    Check(
        lambda v: v is None or float(v) >= 0,
        "alpha must be >= 0, got {value}; alpha=0 is plain NMF of the target, "
        "larger values suppress what the background also explains.",
    ),
)
N_SHARED = Check(
    lambda v: (
        v == "auto" or (not isinstance(v, bool) and isinstance(v, numbers.Integral) and int(v) >= 0)
    ),
    "n_shared must be 'auto' or an integer >= 0, got {value!r}.",
)


def _random_state_ok(v: Any) -> bool:
    if v is None or isinstance(v, np.random.Generator):
        return True
    return not isinstance(v, bool) and isinstance(v, numbers.Integral) and int(v) >= 0


RANDOM_STATE = Check(
    _random_state_ok,
    "random_state must be None, an integer >= 0 or a numpy Generator, got {value!r}.",
)


def _tol_ok(x: Any) -> bool:
    if x is None:
        return True
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return False
    return math.isfinite(float(x)) and float(x) >= 0


TOL = Check(
    _tol_ok,
    "tol must be a number >= 0 or None, got {value!r}.",
)
DEVICE_TYPES = ("cpu", "cuda", "mps")


def _device_ok(v: Any) -> bool:
    if isinstance(v, torch.device):
        return v.type in DEVICE_TYPES
    if not isinstance(v, str):
        return False
    if v == "auto":
        return True
    try:
        return torch.device(v).type in DEVICE_TYPES
    except (RuntimeError, TypeError, ValueError):
        return False


DEVICE = Check(
    _device_ok, "Unknown device {value!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
)


class DataScaleError(ValueError, FloatingPointError):
    """The data's values are outside what the fit's float arithmetic can represent."""


def check_scale(totals: Sequence[tuple[str, float]], dtype: torch.dtype) -> None:
    """Raise when the mean cell total of a group is too large or too small to fit.

    ``totals``: ``(role, mean total per cell)`` of each group (over all processes, so
    every process raises alike). Too large (above ``finfo(dtype).max ** 0.75``) the
    fit overflows ("diverges"); too small (below 1e-3, e.g. counts rescaled by 1e-30)
    every usage is pinned at the floor and the topics look collapsed.
    """
    big = float(torch.finfo(dtype).max) ** 0.75
    for role, mean in totals:
        if not math.isfinite(mean) or mean > big:
            raise DataScaleError(
                f"The {role} values are too large for {str(dtype).replace('torch.', '')} "
                f"arithmetic (mean total per cell {mean:.3g}): the fit would overflow and "
                "diverge. Rescale the data (divide by a constant), or pass raw counts "
                "(loss='kl') or log1p-normalised values (loss='frobenius')."
            )
        if mean < 1e-3:
            raise DataScaleError(
                f"The {role} values are too small to fit (mean total per cell {mean:.3g}): "
                "every usage would be pinned at the floor. Pass raw counts (loss='kl', e.g. "
                "layer='counts'), or rescale the data (multiply by a constant)."
            )


def check_matrix(X: Any, name: str) -> sp.csr_matrix:
    """``X`` as CSR, or an error that says what is wrong with it (one pass over values)."""
    if X is None:
        raise ValueError(f"{name} is missing: pass a cells x genes matrix.")
    if isinstance(X, RowSource):
        raise TypeError("pass matrices to fit(); row sources go through fit_source().")
    if np.dtype(getattr(X, "dtype", np.float64)) == np.float16:
        raise TypeError(
            f"{name} has dtype float16, which scipy.sparse cannot hold; convert it first, "
            "e.g. X.astype(np.float32)."
        )
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
