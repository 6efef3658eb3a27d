"""Plots of bcNMF results written by :func:`bcnmf_sc.tl.bcnmf`."""

from ._enrichment import topic_enrichment
from ._loadings import gene_loadings
from ._programs import programs
from ._sweep import sweep
from ._training import training
from ._usage import topics, usage

__all__ = ["gene_loadings", "programs", "sweep", "topic_enrichment", "topics", "training", "usage"]
