"""Statistics comparing topic usage between two groups of cells (or of samples).

Matrices in, a table out: the enrichment table ``tl`` writes and the check the fit makes
on its own topics (:mod:`~bcnmf_sc._engine.placement`) use the same statistics.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import binom, false_discovery_control, mannwhitneyu, ttest_ind

__all__ = [
    "ENRICHED_LOG2FC",
    "ENRICHED_NULL_LOG2FC",
    "ENRICHED_PVAL",
    "PSEUDO_COUNT",
    "TARGET_ONLY_PVAL",
    "TARGET_ONLY_QUANTILES",
    "benjamini_hochberg",
    "compare_usage",
    "usage_proportions",
]

#: A topic is called target-enriched when its mean usage proportion is at least
#: ``2**ENRICHED_LOG2FC`` times the reference's (the effect size of interest) and
#: significantly more than ``2**ENRICHED_NULL_LOG2FC`` times it: a one-sided test whose
#: null hypothesis is that fold change (limma's ``treat``), not no change, at
#: ``ENRICHED_PVAL`` (Benjamini-Hochberg adjusted).
ENRICHED_LOG2FC = 0.5
ENRICHED_NULL_LOG2FC = float(np.log2(1.2))
ENRICHED_PVAL = 0.05
#: ``target_only``: the reference's top users (this quantile of its proportions: its top
#: 1% of cells) stay below the group's top users (this quantile: its top 10%). A
#: composition shift passes only beyond a 10-fold change of a cell type's share, and a
#: program needs more than 10% of the group's cells.
TARGET_ONLY_QUANTILES = (0.99, 0.90)
#: ... and they do so with this confidence: ``pval_target_only``, the share of all
#: bootstrap resamples of the cells in which the comparison fails, is below it.
TARGET_ONLY_PVAL = 0.05
#: The log2 fold change compares the means plus ``PSEUDO_COUNT / K`` (K topics).
PSEUDO_COUNT = 1e-3

# Why not ``sc.tl.rank_genes_groups`` on an AnnData of proportions: its "t-test" is the
# same Welch test, but its ``logfoldchanges`` assume log1p data (log2 of expm1 of mean
# values), which is wrong for proportions, it has no AUROC or the two-sided call on a
# fold-change threshold used here, and it cannot test per sample (``sample_key``); the
# statistics below are the few lines it would take to correct those.


def benjamini_hochberg(pvals: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (:func:`scipy.stats.false_discovery_control`).

    NaN p-values stay NaN and do not count among the tests.
    """
    p = np.asarray(pvals, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return out


def _adjust(pvals: np.ndarray, families: Sequence[str] | None) -> np.ndarray:
    """:func:`benjamini_hochberg` within each family of topics (``None``: all at once)."""
    if families is None:
        return benjamini_hochberg(pvals)
    labels = np.asarray([str(f) for f in families], dtype=object)
    if len(labels) != len(pvals):
        raise ValueError(f"families has {len(labels)} labels for {len(pvals)} topics.")
    out = np.full(len(pvals), np.nan)
    for label in pd.unique(labels):
        mask = labels == label
        out[mask] = benjamini_hochberg(np.asarray(pvals)[mask])
    return out


def _pseudo_count(n_topics: int) -> float:
    """The offset of the log2 fold change: a thousandth of the mean proportion, 1/K.

    A fixed 1e-9 turned every topic that one group hardly uses into a log2 fold change of
    +-25, which says nothing about the data. Proportions average ``1 / K``, so
    ``PSEUDO_COUNT / K`` hardly moves the ratio of means that are not tiny (by less than
    0.0015 in log2 when both means are at least ``1 / K``, 0.015 when at least
    ``0.1 / K``) and bounds the others on the data's scale:
    ``|log2fc| <= log2(1000 K + 1)``, about 13 for 10 topics.
    """
    return PSEUDO_COUNT / max(int(n_topics), 1)


def _tests(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: AUROC of ``a`` over ``b`` and the two-sided Welch t-test p-value."""
    n_cols = a.shape[1]
    auroc, pval = np.full(n_cols, 0.5), np.ones(n_cols)
    for k in range(n_cols):
        if np.ptp(np.concatenate([a[:, k], b[:, k]])) == 0:  # all values tied
            continue
        auroc[k] = mannwhitneyu(a[:, k], b[:, k]).statistic / (len(a) * len(b))
        if len(a) > 1 and len(b) > 1 and (np.ptp(a[:, k]) > 0 or np.ptp(b[:, k]) > 0):
            pval[k] = ttest_ind(a[:, k], b[:, k], equal_var=False).pvalue
        elif a[:, k].mean() != b[:, k].mean():
            pval[k] = 0.0  # two constant groups that differ
    return auroc, pval


def _above_ratio(a: np.ndarray, b: np.ndarray, ratio: float, eps: float) -> np.ndarray:
    """Per column: one-sided Welch p-value of ``mean(a) + eps > ratio * (mean(b) + eps)``.

    The null hypothesis is a fold change, ``mean(a) + eps <= ratio * (mean(b) + eps)``
    (the ``log2fc`` column at or below ``log2(ratio)``), tested by Welch's t-test of
    ``a`` against ``ratio * b + (ratio - 1) * eps``: the idea of limma's ``treat``
    (McCarthy and Smyth 2009), whose guide reads the ratio as the fold change below
    which a difference is of no interest (1.2 here) and warns that a test against no
    change followed by a cut-off on the estimated fold change does not control errors at
    that cut-off. Columns whose difference has no spread (constant groups, one cell) get
    0 when the difference is above the threshold, else 1.
    """
    shifted = ratio * b + (ratio - 1.0) * eps  # its mean: the threshold for mean(a)
    diff = a.mean(0) - shifted.mean(0)
    pval = np.where(diff > 0, 0.0, 1.0)  # no spread: constant groups, or one cell on a side
    if len(a) > 1 and len(b) > 1:
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # columns without spread: NaN
            test = ttest_ind(a, shifted, equal_var=False, alternative="greater", axis=0)
        ok = np.isfinite(test.pvalue)
        pval[ok] = test.pvalue[ok]
    return pval


def _order_statistic_cdf(n: int, q: float) -> np.ndarray:
    """Exact bootstrap distribution of a sample's ``q``-quantile, on its sorted values.

    The quantile of a sample of ``n`` values is taken as its order statistic of rank
    ``r = floor((n - 1) q) + 1`` (the lower of the two values :func:`numpy.quantile`
    interpolates between). In a resample (``n`` draws with replacement) that order
    statistic is at most the ``j``-th smallest value ``x_(j)`` when at least ``r`` draws
    are at most ``x_(j)``, so ``P = P(Binomial(n, j / n) >= r)``, for ``j = 1 .. n``: the
    bootstrap with every resample counted, without drawing any (Hutson and Ernst 2000).
    """
    r = int(np.floor((n - 1) * q)) + 1
    return binom.sf(r - 1, n, np.arange(1, n + 1) / n)


def _quantile_not_above(a: np.ndarray, b: np.ndarray, q_a: float, q_b: float) -> np.ndarray:
    """Per column: bootstrap probability that ``a``'s ``q_a``-quantile is not above ``b``'s ``q_b``.

    The share of all pairs of resamples (of the rows of ``a`` and of ``b``, each with
    replacement) in which the quantile of ``a``'s resample is at most that of ``b``'s,
    computed exactly from the two quantiles' bootstrap distributions
    (:func:`_order_statistic_cdf`): ``1 - sum_j P(Q_a = a_(j)) P(Q_b < a_(j))``.
    """
    cdf_a, cdf_b = _order_statistic_cdf(len(a), q_a), _order_statistic_cdf(len(b), q_b)
    mass_a = np.diff(cdf_a, prepend=0.0)
    below_b = np.r_[0.0, cdf_b]  # below_b[i]: P(Q_b <= b_(i)), i.e. P(Q_b < the next value)
    out = np.ones(a.shape[1])
    for k in range(a.shape[1]):
        sorted_a, sorted_b = np.sort(a[:, k]), np.sort(b[:, k])
        n_below = np.searchsorted(sorted_b, sorted_a, side="left")  # values of b < a_(j)
        out[k] = 1.0 - float(mass_a @ below_b[n_below])
    return np.clip(out, 0.0, 1.0)


def _sample_means(prop: np.ndarray, samples: np.ndarray, min_cells: int) -> np.ndarray:
    """Pseudo-bulk: the mean proportions of each sample with at least ``min_cells`` cells."""
    codes, uniques = pd.factorize(pd.Series(samples), use_na_sentinel=True)
    rows = []
    for c in range(len(uniques)):
        sel = codes == c
        if sel.sum() >= min_cells:
            rows.append(prop[sel].mean(0))
    return np.asarray(rows, dtype=float).reshape(len(rows), prop.shape[1])


def compare_usage(
    usage: np.ndarray,
    in_group: np.ndarray,
    in_reference: np.ndarray,
    topics: Sequence[str],
    *,
    names: tuple[str, str] = ("target", "background"),
    samples: np.ndarray | None = None,
    min_cells: int = 1,
    target_only_quantiles: tuple[float, float] = TARGET_ONLY_QUANTILES,
    target_only_pval: float | None = TARGET_ONLY_PVAL,
    families: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Compare topic proportions between two groups of cells, per cell or per sample.

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
    samples
        Sample (donor, replicate) of each cell, or ``None``. With samples, the
        statistics compare samples, not cells: each side's cells of one sample are
        averaged into one pseudo-bulk proportion per topic (samples with fewer than
        ``min_cells`` cells on that side are left out), and the means, fold changes,
        AUROCs and tests are those of these per-sample values. Cells of one sample are
        not independent, so cell-level tests call sample-to-sample variation
        significant; the sample-level test does not.
    min_cells
        With ``samples``: the fewest cells a sample needs on one side to count there.
    target_only_quantiles, target_only_pval
        The quantiles of the reference's and of the group's proportions that
        ``target_only`` compares, and the level ``pval_target_only`` must stay below.
        ``target_only_pval=None``: the comparison as estimated, without the bootstrap
        (the fit's placement check, whose call only proposes a second fit that the
        objective then accepts or not).
    families
        A label per topic: the Benjamini-Hochberg adjustments run within each family of
        topics, not over all of them (``None``: one family). ``tl.bcnmf`` tests the
        target topics of the shared-topic model as one family and the shared topics as
        another: the target topics are the candidates for programs, the shared ones
        describe changes of abundance, and with 16 shared topics an adjustment over all
        26 topics of a K = 10 fit held a program topic of a 13%-of-cells program at
        0.064 that its own family of 10 puts at 0.025 (docs/benchmarks.md).

    Returns
    -------
    One row per topic (index: topic names), most enriched in the group first (sorted by
    ``log2fc``), with columns

    ``mean_<group>``, ``mean_<reference>``
        Mean usage proportion in each group (with ``samples``: mean over samples of the
        per-sample means).
    ``log2fc``
        log2 ratio of the two means, each plus a pseudo-count of ``0.001 / K`` (a
        thousandth of the mean proportion of a topic; ``K`` topics), so that a topic one
        side does not use gets a large but finite value, at most ``log2(1000 K + 1)``:
        the effect size used for sorting.
    ``auroc``
        Probability that a group cell (sample) uses the topic more than a reference cell
        (sample) (0.5: no difference). A topic used strongly by a *subset* of group cells
        can have an AUROC below 0.5 (most cells of both groups use it little), so read it
        beside ``log2fc``.
    ``pval``, ``pval_adj``
        Two-sided Welch t-test of the difference of the mean proportions (of cells, or
        of samples), and its Benjamini-Hochberg adjustment over topics (within each of
        ``families``; :func:`scipy.stats.false_discovery_control`).
    ``pval_enriched_adj``
        One-sided Welch test that the group's mean is more than ``2**0.263`` = 1.2
        times the reference's (``ENRICHED_NULL_LOG2FC``: the null hypothesis is that
        fold change, not no change; limma's ``treat``), Benjamini-Hochberg adjusted over
        topics (within each of ``families``).
    ``enriched``
        ``log2fc >= ENRICHED_LOG2FC`` (0.5, a 1.41-fold higher mean) and
        ``pval_enriched_adj < ENRICHED_PVAL`` (0.05). The second part is what a test
        against no change cannot give: a cell type that by chance is more frequent
        among a few hundred cells (65 of 200 against 34 of 200) has a 1.6-fold mean at
        ``pval_adj`` 0.001, and a fold change that could well be below 1.2.
    ``excess``
        The share of the group's mean usage of the topic that the reference does not
        have, ``1 - mean_<reference> / mean_<group>``, for topics used significantly
        more by the group (``log2fc > 0`` and ``pval_adj < 0.05``); 0 for the others.
        The topic's weight in the target score (``tl``'s ``target_score``).
    ``pval_target_only``
        How sure the comparison of ``target_only`` (below) is: the share of all
        bootstrap resamples of the cells (each group's cells drawn with replacement) in
        which the reference's 99th percentile is at least the group's 90th, computed
        exactly, without drawing (:func:`_quantile_not_above`). The 99th percentile of
        a few hundred cells rests on their two or three largest values: in a composition
        shift fitted with 10 topics (no program), a topic of the expanded cell type had
        the group's 90th percentile at 0.091 against the reference's 99th at 0.088 (200
        + 200 cells), a margin of chance that this probability puts at 0.45.
    ``target_only``
        ``enriched``, and the reference's top users use the topic less than the group's
        top users: the 99th percentile of the reference cells' proportions is below the
        90th percentile of the group cells' proportions (always of cells), with
        confidence: ``pval_target_only`` below ``TARGET_ONLY_PVAL`` (0.05). A topic that
        the reference also uses as strongly as the group's top users, only in fewer
        cells (a cell type more abundant in the group: a composition shift), can be
        enriched but is not target-only; a program that only group cells use strongly
        is both, when it is used by clearly more than a tenth of the group's cells (a
        program in 13% of a few hundred cells straddles the group's 90th percentile, and
        the call is often not confident).
    ``n_samples_<group>``, ``n_samples_<reference>``
        Only with ``samples``: the samples compared on each side.
    """
    prop = usage_proportions(usage)
    cells_a = prop[np.asarray(in_group, dtype=bool)]
    cells_b = prop[np.asarray(in_reference, dtype=bool)]
    if len(cells_a) == 0 or len(cells_b) == 0:
        raise ValueError("Both groups need at least one cell to compare topic usage.")
    if samples is None:
        a, b = cells_a, cells_b
    else:
        samples = np.asarray(samples, dtype=object)
        a = _sample_means(cells_a, samples[np.asarray(in_group, dtype=bool)], min_cells)
        b = _sample_means(cells_b, samples[np.asarray(in_reference, dtype=bool)], min_cells)
        if len(a) < 2 or len(b) < 2:
            raise ValueError(
                f"A per-sample test needs at least 2 samples on each side with at least "
                f"{min_cells} cells there; got {len(a)} ({names[0]}) and {len(b)} "
                f"({names[1]})."
            )
    mean_a, mean_b = a.mean(0), b.mean(0)
    eps = _pseudo_count(prop.shape[1])
    log2fc = np.log2((mean_a + eps) / (mean_b + eps))
    auroc, pval = _tests(a, b)
    pval_adj = _adjust(pval, families)
    above = _above_ratio(a, b, 2.0**ENRICHED_NULL_LOG2FC, eps)
    pval_enriched_adj = _adjust(above, families)
    enriched = (log2fc >= ENRICHED_LOG2FC) & (pval_enriched_adj < ENRICHED_PVAL)
    up = (log2fc > 0) & (pval_adj < ENRICHED_PVAL) & (mean_a > 0)
    q_ref, q_group = target_only_quantiles
    top_ref = np.quantile(cells_b, q_ref, axis=0)
    top_group = np.quantile(cells_a, q_group, axis=0)
    ones = np.ones_like(mean_a)
    columns = {
        f"mean_{names[0]}": mean_a,
        f"mean_{names[1]}": mean_b,
        "log2fc": log2fc,
        "auroc": auroc,
        "pval": pval,
        "pval_adj": pval_adj,
        "pval_enriched_adj": pval_enriched_adj,
        "enriched": enriched,
        "excess": np.where(up, 1.0 - np.divide(mean_b, mean_a, where=up, out=ones), 0.0),
        "pval_target_only": _quantile_not_above(cells_a, cells_b, q_group, q_ref),
    }
    columns["target_only"] = enriched & (top_ref < top_group)
    if target_only_pval is not None:
        columns["target_only"] &= columns["pval_target_only"] < target_only_pval
    if samples is not None:
        columns[f"n_samples_{names[0]}"] = np.full(len(mean_a), len(a))
        columns[f"n_samples_{names[1]}"] = np.full(len(mean_b), len(b))
    df = pd.DataFrame(columns, index=pd.Index([str(t) for t in topics]))
    return df.sort_values("log2fc", ascending=False, kind="stable")


def usage_proportions(usage: np.ndarray) -> np.ndarray:
    """Per-cell topic proportions: usage divided by the cell's total usage (0 where it is 0).

    The raw usage of a cell grows with its sequencing depth; the proportions do not, so
    they are what every comparison of cells (the enrichment statistics, the plots) uses.
    """
    usage = np.asarray(usage, dtype=float)
    total = usage.sum(1, keepdims=True)
    return np.divide(usage, total, out=np.zeros_like(usage), where=total > 0)
