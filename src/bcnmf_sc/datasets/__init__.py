"""Bundled example data: simulated counts (no download)."""

from ._simulate import simulate

__all__ = ["simulate"]
