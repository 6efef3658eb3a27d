"""The fitted example data that the ``.. plot::`` blocks of the ``pl`` docstrings draw.

Each plotting docstring shows, as ``>>>`` lines, how its example data are made::

    >>> import bcnmf_sc as bc
    >>> adata = bc.datasets.simulate(n_target=250, n_background=250, n_genes=200, n_markers=20)
    >>> bc.tl.bcnmf(adata, "condition", "background", n_topics=4)

and then ``.. plot::`` blocks that only call the plotting function on ``adata``. The docs
build runs those set-up lines once, here (:func:`example`), and ``plot_pre_code`` in
``conf.py`` hands every plot block a copy of the result as ``adata``. The lines are run
from :data:`SETUP`, :data:`EMBEDDING` and :data:`SWEEP` themselves, and ``conf.py`` fails
the build (a warning, under ``-W``) when a docstring with a plot does not show the ones
it needs (:func:`missing_setup`), so the images are those of the code a reader sees.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import functools
import io

import torch

#: What every ``pl`` docstring with a plot shows (without the ``>>>``).
SETUP = (
    "import bcnmf_sc as bc",
    "adata = bc.datasets.simulate(n_target=250, n_background=250, n_genes=200, n_markers=20)",
    'bc.tl.bcnmf(adata, "condition", "background", n_topics=4)',
)

#: What :func:`bcnmf_sc.pl.topics` shows in addition: a UMAP of the same cells (computed
#: on a copy here, so that ``.X`` keeps the counts the other examples show).
EMBEDDING = (
    "import scanpy as sc",
    "sc.pp.normalize_total(adata); sc.pp.log1p(adata)",
    "sc.pp.pca(adata); sc.pp.neighbors(adata); sc.tl.umap(adata)",
)

#: What :func:`bcnmf_sc.pl.sweep` shows instead of the fit: a small sweep (18 fits).
SWEEP = (
    'bc.tl.bcnmf_sweep(adata, "condition", "background", '
    "alphas=[0, 1, 2], n_topics=[3, 4], n_init=2)",
)


def _statement(source: str) -> str:
    """Source code in one canonical form (layout, comments and line breaks do not count)."""
    return ast.unparse(ast.parse(source))


def missing_setup(docstring: str) -> list[str]:
    """The set-up lines a docstring with a plot does not show (as ``>>>`` examples)."""
    if ".. plot::" not in docstring:
        return []
    if "bc.pl.sweep(" in docstring:
        needed = SETUP[:2] + SWEEP
    elif "bc.pl.topics(" in docstring:
        needed = SETUP + EMBEDDING
    else:
        needed = SETUP
    try:
        examples = doctest.DocTestParser().get_examples(docstring)
        shown = {_statement(ex.source) for ex in examples}
    except (ValueError, SyntaxError):
        shown = set()
    return [line for line in needed if _statement(line) not in shown]


def _run(lines, ns: dict) -> None:
    # One thread: the data are tiny, and on a busy (CI) machine torch's default thread
    # pool is many times slower than one thread. Progress bars are not for the log.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            exec("\n".join(lines), ns)
    finally:
        torch.set_num_threads(threads)


@functools.cache
def _fitted():
    ns: dict = {}
    _run(SETUP, ns)
    adata = ns["adata"]
    if not adata.uns["bcnmf"]["converged"]:
        raise RuntimeError("The docs' example fit did not converge; change SETUP.")
    _run(SWEEP, ns)  # writes only .uns["bcnmf_sweep"]
    ns["adata"] = adata.copy()
    _run(EMBEDDING, ns)
    adata.obsm["X_umap"] = ns["adata"].obsm["X_umap"]
    return adata


def example():
    """A copy of the example data: fitted, swept, with a UMAP; computed once per build."""
    return _fitted().copy()
