"""The computational core: matrices in, matrices out. Never imports anndata or scanpy."""

from .model import BcNMF, ConvergenceWarning
from .sparse import InMemoryRows, RowSource

__all__ = ["BcNMF", "ConvergenceWarning", "InMemoryRows", "RowSource"]
