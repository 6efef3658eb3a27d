"""Getters: tidy tables from stored bcNMF results."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from ._utils import resolve_topics, topic_names

__all__ = ["top_genes"]


def top_genes(
    adata: AnnData,
    *,
    key: str = "bcnmf",
    n_genes: int = 20,
    topics: str | int | Sequence[str | int] | None = None,
) -> pd.DataFrame:
    """Top genes of each topic by loading.

    Parameters
    ----------
    adata
        Data on which :func:`bcnmf_sc.tl.bcnmf` was run.
    key
        The ``key_added`` of that run.
    n_genes
        Genes per topic (genes with zero loading are never listed).
    topics
        Topic names (``"topic_1"``...) or 0-based positions; default all topics.

    Returns
    -------
    Tidy DataFrame with columns ``topic``, ``rank`` (1 = highest loading), ``gene``,
    ``loading`` and ``specificity``: the gene's loading in the topic divided by its sum
    over all topics (1 means the gene loads on this topic only).
    """
    lkey = f"{key}_loadings"
    if lkey not in adata.varm:
        raise KeyError(f"No loadings under .varm[{lkey!r}]; run bcnmf_sc.tl.bcnmf first.")
    if isinstance(n_genes, bool) or not isinstance(n_genes, int | np.integer) or n_genes < 1:
        raise ValueError(f"n_genes must be a positive integer, got {n_genes!r}.")
    L = np.asarray(adata.varm[lkey], dtype=float)
    names = topic_names(adata, key, L.shape[1])
    idx = resolve_topics(topics, names)
    total = L.sum(1)
    spec = np.divide(L, total[:, None], out=np.zeros_like(L), where=total[:, None] > 0)
    genes = np.asarray(adata.var_names)
    rows = []
    for k in idx:
        order = np.argsort(-L[:, k], kind="stable")
        order = order[L[order, k] > 0][:n_genes]
        rows.append(
            pd.DataFrame(
                {
                    "topic": names[k],
                    "rank": np.arange(1, len(order) + 1),
                    "gene": genes[order],
                    "loading": L[order, k],
                    "specificity": spec[order, k],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
