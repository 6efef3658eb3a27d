"""The computational core: matrices in, matrices out. Never imports anndata or scanpy."""

from .model import BcNMF, ConvergenceWarning
from .options import Options, engine_options, get_options
from .rows import H5adRows, InMemoryRows, RowSource

__all__ = [
    "BcNMF",
    "ConvergenceWarning",
    "H5adRows",
    "InMemoryRows",
    "Options",
    "RowSource",
    "engine_options",
    "get_options",
]
