"""Progress bars for long fits (tqdm), shared by the engine and the tools."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable

#: Seconds between two updates of a bar written to a file or pipe (a log), not a terminal:
#: there every update is a new line, so a fit logs a line per half minute, not per epoch.
LOG_INTERVAL = 30.0


def _is_terminal_or_notebook(stream) -> bool:
    """Whether a bar on ``stream`` redraws in place (a terminal, or a Jupyter kernel)."""
    isatty = getattr(stream, "isatty", None)
    try:
        if callable(isatty) and isatty():
            return True
    except (OSError, ValueError):  # a closed or detached stream
        return False
    return "ipykernel" in sys.modules


def progress_bar(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    enabled: bool,
    desc: str,
    unit: str,
):
    """A tqdm bar, in a notebook a widget when ipywidgets is installed; disabled: silent.

    ``tqdm.auto`` warns in a notebook without ipywidgets and falls back on a text bar; the
    fallback is fine, the warning only clutters every notebook, so it is silenced (and
    nothing is imported from ``tqdm.auto`` at all when the bar is off). Written to a log
    file (standard error is neither a terminal nor a notebook), the bar updates at most
    every ``LOG_INTERVAL`` seconds instead of ten times a second.
    """
    if not enabled:
        from tqdm import tqdm
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="IProgress not found")
            from tqdm.auto import tqdm
    interval = 0.1 if _is_terminal_or_notebook(sys.stderr) else LOG_INTERVAL
    return tqdm(
        iterable,
        total=total,
        disable=not enabled,
        desc=desc,
        unit=unit,
        leave=False,
        mininterval=interval,
    )
