"""Bundled example data (no download): simulated counts and semi-synthetic PBMC counts."""

from ._pbmc import pbmc_semisynthetic
from ._simulate import simulate

__all__ = ["pbmc_semisynthetic", "simulate"]
