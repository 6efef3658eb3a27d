"""Warnings that point at the user's line, not into the package.

``warnings.warn(..., stacklevel=n)`` needs the number of frames between the warning and
the caller, which differs for every path into the engine (``tl.bcnmf``, the sweep, the
consensus, the estimator itself). :func:`user_stacklevel` counts them: the first frame
outside this package is the user's. Python 3.12's ``skip_file_prefixes`` does the same;
this works on 3.10 and 3.11 too. :class:`warnings_at_user_line` re-issues the warnings
raised inside a block from within the package at the user's line, so the public
functions of ``tl`` need no stack arithmetic of their own.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["at_user_line", "user_stacklevel", "warnings_at_user_line"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _in_package(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE)


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by the caller point at user code.

    1 is the function calling :func:`warnings.warn`; every frame in this package above it
    adds one.
    """
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and _in_package(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    return level


class warnings_at_user_line:
    """Re-issue the package's warnings of a ``with`` block at the user's line.

    Warnings raised from files of this package are caught and issued again, same
    message and category, pointing at the first frame outside the package (so filters,
    ``-W error`` included, apply as usual); warnings from elsewhere (numpy, torch) are
    passed on unchanged. A class, not a ``contextlib`` generator: the contextlib frame
    would be outside the package and taken for the user's.
    """

    def __enter__(self) -> warnings_at_user_line:
        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc) -> None:
        self._catcher.__exit__(*exc)
        for w in self._caught or []:
            if _in_package(w.filename):
                warnings.warn(w.message, w.category, stacklevel=user_stacklevel())
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


F = TypeVar("F", bound=Callable[..., Any])


def at_user_line(func: F) -> F:
    """Decorate a public function: its package warnings point at the user's call."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings_at_user_line():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
