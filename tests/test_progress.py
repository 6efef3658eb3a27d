"""The progress bar: in place on a terminal, a few lines in a log file."""

from __future__ import annotations

import io
import sys
import time

import pytest

from bcnmf_sc import _progress
from bcnmf_sc._progress import LOG_INTERVAL, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _updates(stream, monkeypatch, n: int = 25) -> int:
    """How many times a bar over ``n`` slow steps writes to ``stream`` (its stderr)."""
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    bar = progress_bar(total=n, enabled=True, desc="bcNMF", unit="epoch")
    for _ in range(n):
        time.sleep(0.02)
        bar.update()
    bar.close()
    return stream.getvalue().count("\r")


def test_log_file_gets_few_lines(monkeypatch):
    log = io.StringIO()  # not a terminal: a log file or a pipe
    assert LOG_INTERVAL >= 10
    assert _updates(log, monkeypatch) <= 3  # the start, the end: no line per update
    assert "bcNMF" in log.getvalue()


def test_terminal_updates_in_place(monkeypatch):
    assert _updates(_Terminal(), monkeypatch) >= 4  # ~10 redraws a second


def test_disabled_bar_is_silent(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    for _ in progress_bar(range(5), enabled=False, desc="bcNMF", unit="epoch"):
        pass
    assert log.getvalue() == ""


@pytest.mark.parametrize("broken", [ValueError, OSError])
def test_closed_stream_counts_as_a_log(broken):
    class Closed(io.StringIO):
        def isatty(self) -> bool:
            raise broken("closed")

    assert not _progress._is_terminal_or_notebook(Closed())
