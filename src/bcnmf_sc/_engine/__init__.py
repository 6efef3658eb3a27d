"""The computational core: matrices in, matrices out. Never imports anndata or scanpy."""

from .model import BcNMF, ConvergenceWarning
from .sparse import H5adRows, InMemoryRows, RowSource

__all__ = ["BcNMF", "ConvergenceWarning", "H5adRows", "InMemoryRows", "RowSource"]
