"""Bundled example data (no download).

Simulated counts, semi-synthetic PBMC counts, and the bcNMF paper's image demo.
"""

from ._families import simulation_families
from ._image_demo import image_demo
from ._pbmc import pbmc_semisynthetic
from ._simulate import simulate

__all__ = ["image_demo", "pbmc_semisynthetic", "simulate", "simulation_families"]
