"""Parameter documentation shared by the public functions (as scanpy's ``_doc_params``).

Write ``{name}`` alone on a line of a docstring's Parameters section and decorate the
function with ``@doc_params(name=text)``: the line is replaced by ``text``, indented as
the placeholder was. Only the named placeholders are replaced, so other braces in a
docstring (``{settings.figdir}``...) need no escaping.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

__all__ = [
    "doc_adata",
    "doc_fitted",
    "doc_key",
    "doc_params",
    "doc_save",
    "doc_show",
    "doc_topics",
]

F = TypeVar("F", bound=Callable)

doc_adata = """\
adata
    Data on which :func:`bcnmf_sc.tl.bcnmf` was run."""

doc_fitted = """\
adata
    Data on which :func:`bcnmf_sc.tl.bcnmf` (or :func:`~bcnmf_sc.tl.bcnmf_transform`)
    was run."""

doc_key = """\
key
    The ``key_added`` of that run."""

doc_topics = """\
topics
    Topic names (``"topic_1"``...) or 0-based positions. Default: all topics, or for a
    fit with shared topics (``n_shared``) the target topics; ``"all"`` draws the shared
    ones too."""

doc_show = """\
show
    Show the figure; ``None`` follows ``scanpy.settings.autoshow``."""


def doc_save(name: str, *, what: str = "") -> str:
    """The ``save`` parameter of a plot whose file is called ``name``."""
    return (
        f"save\n    Save{what} as scanpy does: ``True`` writes\n"
        f"    ``{{settings.figdir}}/{name}.{{settings.file_format_figs}}``; a string is\n"
        '    appended to that name (``"_x.png"`` also sets the format).'
    )


def doc_params(**texts: str) -> Callable[[F], F]:
    """Replace the placeholders ``{name}`` of a docstring by ``texts[name]``."""

    def decorate(obj: F) -> F:
        doc = obj.__doc__ or ""
        for name, text in texts.items():
            line = re.compile(r"^([ \t]*)\{" + re.escape(name) + r"\}[ \t]*$", re.MULTILINE)
            if not line.search(doc):
                raise ValueError(f"{obj.__name__}'s docstring has no {{{name}}} line.")

            def indented(m: re.Match[str], text: str = text) -> str:
                return textwrap.indent(text, m.group(1))

            doc = line.sub(indented, doc)
        obj.__doc__ = doc
        return obj

    return decorate
