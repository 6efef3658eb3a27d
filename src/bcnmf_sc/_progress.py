"""Progress bars for long fits (tqdm), shared by the engine and the tools."""

from __future__ import annotations

import warnings
from collections.abc import Iterable


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
    nothing is imported from ``tqdm.auto`` at all when the bar is off).
    """
    if not enabled:
        from tqdm import tqdm
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="IProgress not found")
            from tqdm.auto import tqdm
    return tqdm(iterable, total=total, disable=not enabled, desc=desc, unit=unit, leave=False)
