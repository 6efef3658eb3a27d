"""Statistics comparing topic usage between two groups of cells."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy.stats import mannwhitneyu, ttest_ind

from bcnmf_sc._utils import default_topic_names, usage_proportions

__all__ = ["topic_enrichment"]

#: A topic is called target-enriched when its mean usage proportion is at least
#: ``2**ENRICHED_LOG2FC`` times higher in the group than in the reference and the
#: difference is significant at ``ENRICHED_PVAL`` (Benjamini-Hochberg adjusted).
ENRICHED_LOG2FC = 0.5
ENRICHED_PVAL = 0.05


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
    One row per topic (index: topic names), most enriched in the group first (sorted by
    ``log2fc``), with columns

    ``mean_<group>``, ``mean_<reference>``
        Mean usage proportion in each group.
    ``log2fc``
        log2 ratio of the two means: the effect size used for sorting.
    ``auroc``
        Probability that a group cell uses the topic more than a reference cell (0.5: no
        difference). A topic used strongly by a *subset* of group cells can have an
        AUROC below 0.5 (most cells of both groups use it little), so read it beside
        ``log2fc``.
    ``pval``, ``pval_adj``
        Two-sided Welch t-test of the difference of the mean proportions, and its
        Benjamini-Hochberg adjustment over topics.
    ``enriched``
        ``log2fc >= ENRICHED_LOG2FC`` (0.5, a 1.4-fold higher mean) and
        ``pval_adj < ENRICHED_PVAL`` (0.05).
    ``excess``
        The share of the group's mean usage of the topic that the reference does not
        have, ``1 - mean_<reference> / mean_<group>`` (``1 - 2**-log2fc``), for topics
        used significantly more by the group (``log2fc > 0`` and ``pval_adj < 0.05``); 0
        for the others. The weight of the topic in :func:`target_score`.
    """
    prop = usage_proportions(usage)
    a = prop[np.asarray(in_group, dtype=bool)]
    b = prop[np.asarray(in_reference, dtype=bool)]
    if len(a) == 0 or len(b) == 0:
        raise ValueError("Both groups need at least one cell to compare topic usage.")
    mean_a, mean_b = a.mean(0), b.mean(0)
    eps = 1e-9
    log2fc = np.log2((mean_a + eps) / (mean_b + eps))
    auroc = np.full(prop.shape[1], 0.5)
    pval = np.ones(prop.shape[1])
    for k in range(prop.shape[1]):
        if np.ptp(np.concatenate([a[:, k], b[:, k]])) == 0:  # all values tied
            continue
        auroc[k] = mannwhitneyu(a[:, k], b[:, k]).statistic / (len(a) * len(b))
        if len(a) > 1 and len(b) > 1 and (np.ptp(a[:, k]) > 0 or np.ptp(b[:, k]) > 0):
            pval[k] = ttest_ind(a[:, k], b[:, k], equal_var=False).pvalue
        elif mean_a[k] != mean_b[k]:
            pval[k] = 0.0  # two constant groups that differ
    pval_adj = benjamini_hochberg(pval)
    df = pd.DataFrame(
        {
            f"mean_{names[0]}": mean_a,
            f"mean_{names[1]}": mean_b,
            "log2fc": log2fc,
            "auroc": auroc,
            "pval": pval,
            "pval_adj": pval_adj,
            "enriched": (log2fc >= ENRICHED_LOG2FC) & (pval_adj < ENRICHED_PVAL),
            "excess": np.where(
                (log2fc > 0) & (pval_adj < ENRICHED_PVAL),
                1.0 - (mean_b + eps) / (mean_a + eps),
                0.0,
            ),
        },
        index=pd.Index([str(t) for t in topics]),
    )
    return df.sort_values("log2fc", ascending=False, kind="stable")


def target_score(usage: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-cell target score: ``sum_k p_ik w_k``, topic proportions ``p`` weighted by ``w``.

    With ``weights`` the ``excess`` column of the enrichment table (in topic order), the
    score estimates the share of each cell's usage that the background does not have: a
    topic used 4x more by target cells than by background cells counts 3/4 of its
    proportion, a topic used alike counts nothing. This adds up a target program that the
    fit has split over several topics, including topics that mix it with shared structure
    and so fall below the ``enriched`` threshold. A boolean mask gives the plain share of
    usage on the masked topics.
    """
    prop = usage_proportions(usage)
    return prop @ np.asarray(weights, dtype=float)


def score_weights(enrichment: pd.DataFrame | None, topics: Sequence[str]) -> np.ndarray:
    """The target-score weight of each topic (in ``topics`` order) from an enrichment table.

    Tables written before the ``excess`` column existed fall back on the ``enriched``
    flag; no table, no weight.
    """
    w = np.zeros(len(topics))
    if enrichment is None or len(enrichment) == 0:
        return w
    col = "excess" if "excess" in enrichment else "enriched"
    if col not in enrichment:
        return w
    values = pd.Series(np.asarray(enrichment[col], dtype=float), index=enrichment.index)
    return values.reindex([str(t) for t in topics]).fillna(0.0).to_numpy()


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
    :func:`~bcnmf_sc.tl.bcnmf` (log2 fold change of the mean proportions, AUROC, two-sided
    Welch t-test with Benjamini-Hochberg adjustment within each group, ``enriched`` flag).

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
    Tidy table with columns ``group``, ``reference`` (``"rest"`` or the reference group),
    ``topic``, ``mean_group``, ``mean_reference``, ``log2fc``, ``auroc``, ``pval``,
    ``pval_adj``, ``enriched``; within each group the most enriched topic (largest
    ``log2fc``) comes first. It is also stored in
    ``adata.uns[key][f"enrichment_{groupby}"]``, where
    :func:`bcnmf_sc.pl.topic_enrichment` (``groupby=``) reads it.
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
    topics = adata.uns[key].get("topics", default_topic_names(usage.shape[1]))
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
        df.insert(0, "reference", str(reference))
        df.insert(0, "group", str(g))
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out.index = out.index.astype(str)
    adata.uns[key][f"enrichment_{groupby}"] = out
    return out
