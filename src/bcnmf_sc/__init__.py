"""bcnmf-sc: background-contrastive NMF for single-cell data, in the scverse."""

from . import datasets, get, pl, tl
from ._engine import BcNMF, ConvergenceWarning, H5adRows, InMemoryRows, RowSource

__version__ = "0.1.0"

__all__ = [
    "BcNMF",
    "ConvergenceWarning",
    "H5adRows",
    "InMemoryRows",
    "RowSource",
    "datasets",
    "get",
    "pl",
    "tl",
    "__version__",
]
