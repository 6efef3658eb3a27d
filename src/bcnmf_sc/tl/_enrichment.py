"""Statistics comparing topic usage between two groups of cells."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy.stats import mannwhitneyu

__all__ = ["topic_enrichment"]


def usage_proportions(usage: np.ndarray) -> np.ndarray:
    """Per-cell topic proportions: usage divided by the cell's total usage (0 where it is 0)."""
    usage = np.asarray(usage, dtype=float)
    total = usage.sum(1, keepdims=True)
    return np.divide(usage, total, out=np.zeros_like(usage), where=total > 0)


def benjamini_hochberg(pvals: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN stays NaN)."""
    p = np.asarray(pvals, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adj = np.empty(m)
    adj[order] = np.clip(ranked, 0, 1)
    out[ok] = adj
    return out


def compare_usage(
    usage: np.ndarray,
    in_group: np.ndarray,
    in_reference: np.ndarray,
    topics: Sequence[str],
    *,
    names: tuple[str, str] = ("target", "background"),
) -> pd.DataFrame:
    """Compare per-cell topic proportions between two groups of cells.

    Parameters
    ----------
    usage
        Cells x topics usage matrix.
    in_group, in_reference
        Boolean masks over cells: the group of interest and the reference.
    topics
        Topic names (one per column of ``usage``).
    names
        Suffixes of the two mean columns (``mean_{names[0]}``, ``mean_{names[1]}``).

    Returns
    -------
    One row per topic (index: topic names) with columns ``mean_<group>``,
    ``mean_<reference>`` (mean usage proportion), ``log2fc`` (log2 ratio of the means),
    ``auroc`` (probability that a group cell uses the topic more than a reference cell;
    0.5 is no difference), ``pval`` (two-sided Mann-Whitney U) and ``pval_adj``
    (Benjamini-Hochberg), sorted by ``auroc``, most enriched in the group first.
    """
    prop = usage_proportions(usage)
    a = prop[np.asarray(in_group, dtype=bool)]
    b = prop[np.asarray(in_reference, dtype=bool)]
    if len(a) == 0 or len(b) == 0:
        raise ValueError("Both groups need at least one cell to compare topic usage.")
    mean_a, mean_b = a.mean(0), b.mean(0)
    eps = 1e-9
    log2fc = np.log2((mean_a + eps) / (mean_b + eps))
    auroc = np.empty(prop.shape[1])
    pval = np.empty(prop.shape[1])
    for k in range(prop.shape[1]):
        if np.ptp(np.concatenate([a[:, k], b[:, k]])) == 0:  # all values tied
            auroc[k], pval[k] = 0.5, 1.0
            continue
        res = mannwhitneyu(a[:, k], b[:, k], alternative="two-sided")
        auroc[k] = res.statistic / (len(a) * len(b))
        pval[k] = res.pvalue
    df = pd.DataFrame(
        {
            f"mean_{names[0]}": mean_a,
            f"mean_{names[1]}": mean_b,
            "log2fc": log2fc,
            "auroc": auroc,
            "pval": pval,
            "pval_adj": benjamini_hochberg(pval),
        },
        index=pd.Index([str(t) for t in topics]),
    )
    return df.sort_values("auroc", ascending=False, kind="stable")


def topic_enrichment(
    adata: AnnData,
    groupby: str,
    *,
    key: str = "bcnmf",
    groups: str | Sequence[str] | None = None,
    reference: str = "rest",
) -> pd.DataFrame:
    """Test which topics each group of cells uses more than a reference.

    Uses the per-cell topic proportions of ``adata.obsm[f"X_{key}"]`` (written by
    :func:`bcnmf_sc.tl.bcnmf`) and the statistics of the ``enrichment`` table of
    :func:`~bcnmf_sc.tl.bcnmf` (two-sided Mann-Whitney U test, AUROC, Benjamini-Hochberg
    within each group).

    Parameters
    ----------
    adata
        Annotated data with a fitted bcNMF.
    groupby
        Column of ``adata.obs`` defining the groups.
    key
        The ``key_added`` used in :func:`~bcnmf_sc.tl.bcnmf`.
    groups
        Groups to test; default all (except ``reference``).
    reference
        ``"rest"`` (all other cells with a value in ``groupby``) or one group.

    Returns
    -------
    Tidy table with columns ``group``, ``topic``, ``mean_group``, ``mean_reference``,
    ``log2fc``, ``auroc``, ``pval``, ``pval_adj``; within each group the most enriched
    topic comes first. It is also stored in ``adata.uns[key][f"enrichment_{groupby}"]``.
    """
    obsm_key = f"X_{key}"
    if obsm_key not in adata.obsm or key not in adata.uns:
        raise KeyError(f"No bcNMF result under key {key!r}: run bcnmf_sc.tl.bcnmf first.")
    if groupby not in adata.obs.columns:
        raise KeyError(
            f"{groupby!r} is not a column of adata.obs; available: {list(adata.obs.columns)}."
        )
    col = adata.obs[groupby]
    present = list(pd.unique(col.dropna()))
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = [c for c in col.cat.categories if c in set(present)]
    labels = {str(c): c for c in present}
    if reference != "rest" and reference not in labels:
        raise ValueError(
            f"reference {reference!r} is not a value of {groupby!r}; "
            f"use 'rest' or one of {list(labels)}."
        )
    if groups is None:
        groups = [g for g in labels if g != reference]
    elif isinstance(groups, str):
        groups = [groups]
    unknown = [g for g in groups if str(g) not in labels]
    if unknown:
        raise ValueError(f"Unknown groups {unknown} in {groupby!r}; choose from {list(labels)}.")
    usage = np.asarray(adata.obsm[obsm_key])
    topics = adata.uns[key].get("topics", [f"topic_{i + 1}" for i in range(usage.shape[1])])
    values = col.astype(object).map(lambda v: str(v) if pd.notna(v) else None).to_numpy()
    has_value = col.notna().to_numpy()
    frames = []
    for g in groups:
        in_g = values == str(g)
        in_ref = has_value & ~in_g if reference == "rest" else values == reference
        if in_g.sum() == 0 or in_ref.sum() == 0:
            raise ValueError(f"Group {g!r} or its reference has no cells.")
        df = compare_usage(usage, in_g, in_ref, list(topics), names=("group", "reference"))
        df.insert(0, "topic", df.index.astype(str))
        df.insert(0, "group", str(g))
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out.index = out.index.astype(str)
    adata.uns[key][f"enrichment_{groupby}"] = out
    return out
