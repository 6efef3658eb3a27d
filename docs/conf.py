"""Sphinx configuration for bcnmf-sc (builds offline: no intersphinx, no downloads)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sphinx.util import logging

import bcnmf_sc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # _plot_example, the data of the pl docstrings' plots

import _plot_example  # noqa: E402

logger = logging.getLogger(__name__)

project = "bcnmf-sc"
author = "bcnmf-sc developers"
copyright = "2026, bcnmf-sc developers"  # noqa: A001
version = release = bcnmf_sc.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "matplotlib.sphinxext.plot_directive",
]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# ---- API pages
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True

# ---- MyST / notebooks
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
# The tutorials are stored without outputs, so the build executes them: "cache" (the
# default) runs a notebook only when its code changed, keeping the results in
# docs/_build/.jupyter_cache; CI (.ci/run) sets BCNMF_NB_EXECUTION=force to run them all;
# BCNMF_NB_EXECUTION=off renders them without outputs (a quick look at the text only).
nb_execution_mode = os.environ.get("BCNMF_NB_EXECUTION", "cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = True

# ---- plots: the Examples of the pl functions draw their figure at build time
# (`.. plot::` blocks, as in scanpy). Each block gets `adata`, the fitted example data of
# _plot_example.py (fitted once per build), and shows only the plotting call; the lines
# that make `adata` are shown above it as `>>>` lines (checked by _check_plot_examples).
plot_pre_code = """\
import numpy as np
from matplotlib import pyplot as plt
import scanpy as sc
import bcnmf_sc as bc
from _plot_example import example
adata = example()
"""
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 90)]
plot_rcparams = {"savefig.bbox": "tight"}  # scanpy's dotplot/matrixplot overflow their figure

# ---- HTML
html_theme = "sphinx_book_theme"
html_title = "bcnmf-sc"
html_theme_options = {"show_toc_level": 2}
html_static_path: list[str] = []


# ---- tutorials: the notebooks live in the repository's top-level tutorials/ folder.
# They are copied (only when changed) into docs/tutorials/ (the copies are git-ignored
# build artefacts; stale copies are removed), and the toctree of tutorials/index.md is
# written in place of its TUTORIALS_TOCTREE marker. A glob toctree would do, but with no
# notebooks yet its "pattern didn't match" warning cannot be suppressed and fails -W.
TUTORIALS_MARKER = "<!-- TUTORIALS_TOCTREE -->"


def _sync_tutorials() -> list[str]:
    src, dst = ROOT / "tutorials", HERE / "tutorials"
    dst.mkdir(exist_ok=True)
    wanted = {p.name: p for p in sorted(src.glob("*.ipynb"))} if src.is_dir() else {}
    for old in dst.glob("*.ipynb"):
        if old.name not in wanted:
            old.unlink()
    for name, path in wanted.items():
        target = dst / name
        if not target.exists() or target.read_bytes() != path.read_bytes():
            shutil.copyfile(path, target)
    return [Path(name).stem for name in wanted]


TUTORIALS = _sync_tutorials()


def _tutorials_toctree(app, docname: str, source: list[str]) -> None:
    if docname != "tutorials/index":
        return
    if TUTORIALS:
        entries = "\n".join(TUTORIALS)
        block = f"```{{toctree}}\n:maxdepth: 1\n\n{entries}\n```"
    else:
        block = "*No tutorials yet.*"
    source[0] = source[0].replace(TUTORIALS_MARKER, block)


def _always_reread_tutorials_index(app, env, added, changed, removed) -> list[str]:
    return ["tutorials/index"]  # its toctree depends on files Sphinx does not track


def _check_plot_examples(app, what, name, obj, options, lines: list[str]) -> None:
    """A docstring with a plot must show the lines that make its ``adata``."""
    missing = _plot_example.missing_setup("\n".join(lines))
    if missing:
        logger.warning(
            "%s: its plots draw the example data of docs/_plot_example.py, but the docstring "
            "does not show how they are made; add the >>> lines %s",
            name,
            missing,
        )


def setup(app):
    app.connect("autodoc-process-docstring", _check_plot_examples)
    app.connect("source-read", _tutorials_toctree)
    app.connect("env-get-outdated", _always_reread_tutorials_index)
