"""Plots of bcNMF results written by :func:`bcnmf_sc.tl.bcnmf`."""

from ._enrichment import topic_enrichment
from ._loadings import gene_loadings
from ._training import training
from ._usage import topics, usage

__all__ = ["gene_loadings", "topic_enrichment", "topics", "training", "usage"]
