"""Tools: fit background-contrastive NMF on AnnData and test topic enrichment."""

from ._bcnmf import bcnmf, bcnmf_transform
from ._enrichment import topic_enrichment
from ._sweep import bcnmf_sweep

__all__ = ["bcnmf", "bcnmf_sweep", "bcnmf_transform", "topic_enrichment"]
