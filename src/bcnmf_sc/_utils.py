"""Private helpers shared by the ``tl``, ``get`` and ``pl`` namespaces.

Topic names, topic selection and usage proportions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from anndata import AnnData

from bcnmf_sc._engine.enrichment import usage_proportions

__all__ = ["default_topic_names", "resolve_topics", "topic_names", "usage_proportions"]


def default_topic_names(n_topics: int, n_shared: int = 0) -> list[str]:
    """``topic_1``, ``topic_2``, ...: the names tl gives the topics of a fit.

    With ``n_shared`` shared topics (the last ``n_shared`` of ``n_topics``) those are
    ``shared_1``, ``shared_2``, ...
    """
    n_target = n_topics - n_shared
    return [f"topic_{i + 1}" for i in range(n_target)] + [
        f"shared_{i + 1}" for i in range(n_shared)
    ]


def topic_names(adata: AnnData, key: str, n_topics: int) -> list[str]:
    """Topic names stored by :func:`bcnmf_sc.tl.bcnmf` (``topic_1``... if none fit)."""
    uns = adata.uns.get(key, {})
    names = list(uns.get("topics", [])) if hasattr(uns, "get") else []
    if len(names) != n_topics:
        names = default_topic_names(n_topics)
    return [str(n) for n in names]


def resolve_topics(
    topics: str | int | Sequence[str | int] | None, names: Sequence[str]
) -> list[int]:
    """0-based topic indices from names, positions or a mix (``None``: all topics, in order)."""
    n = len(names)
    if topics is None:
        return list(range(n))
    if isinstance(topics, str | int | np.integer):
        topics = [topics]
    idx = []
    for t in topics:
        if isinstance(t, int | np.integer) and not isinstance(t, bool | np.bool_):
            if not 0 <= t < n:
                raise ValueError(f"Topic position {t} out of range 0..{n - 1}.")
            idx.append(int(t))
        elif str(t) in names:
            idx.append(list(names).index(str(t)))
        else:
            raise ValueError(f"Unknown topic {t!r}; topics are {list(names)}.")
    if not idx:
        raise ValueError("topics selects no topic; pass None for all topics.")
    return idx
