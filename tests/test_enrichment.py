"""Tests of the usage statistics: the enrichment table's columns and the per-sample test."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy.stats import t as student_t

import bcnmf_sc as bc
from bcnmf_sc._engine.enrichment import _quantile_not_above, benjamini_hochberg, compare_usage

TOPICS = ["topic_1", "topic_2", "topic_3"]


def _bh_by_hand(p: np.ndarray) -> np.ndarray:
    m = len(p)
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1)
    return out


def test_benjamini_hochberg_is_scipys_and_keeps_nan():
    p = np.array([0.01, 0.04, 0.03, 0.5, 0.0, 1.0])
    np.testing.assert_allclose(benjamini_hochberg(p), _bh_by_hand(p))
    with_nan = np.array([0.01, np.nan, 0.04, 0.03])
    adj = benjamini_hochberg(with_nan)
    assert np.isnan(adj[1])
    np.testing.assert_allclose(adj[[0, 2, 3]], _bh_by_hand(with_nan[[0, 2, 3]]))
    assert np.isnan(benjamini_hochberg(np.array([np.nan]))).all()


def _two_groups(seed: int = 0):
    """Hand-built proportions: a program (target cells only) and a composition shift.

    ``topic_1``, the program: half the target cells use it strongly (0.5), no background
    cell does. ``topic_2``, a cell type's topic: its cells use it at 0.6 in both groups,
    but the cell type is 40% of the target and 10% of the background. ``topic_3``: the
    rest of each cell's usage.
    """
    rng = np.random.default_rng(seed)
    n = 400
    is_target = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    program = np.r_[rng.random(n) < 0.5, np.zeros(n, bool)]
    cell_type = np.r_[rng.random(n) < 0.4, rng.random(n) < 0.1]
    p1 = np.where(program, 0.5, 0.01) + rng.uniform(0, 0.01, 2 * n)
    p2 = np.where(cell_type, 0.6, 0.05) + rng.uniform(0, 0.01, 2 * n)
    p3 = np.clip(1 - p1 - p2, 0.01, None)
    depth = rng.lognormal(7, 0.5, 2 * n)[:, None]
    return np.c_[p1, p2, p3] * depth, is_target


def test_target_only_separates_programs_from_composition_shifts():
    usage, is_target = _two_groups()
    table = compare_usage(usage, is_target, ~is_target, TOPICS)
    assert list(table.columns) == [
        "mean_target",
        "mean_background",
        "log2fc",
        "auroc",
        "pval",
        "pval_adj",
        "pval_enriched_adj",
        "enriched",
        "excess",
        "pval_target_only",
        "target_only",
    ]
    assert np.all(np.diff(table["log2fc"].to_numpy()) <= 0)
    assert table.loc["topic_1", "enriched"] and table.loc["topic_1", "target_only"]
    assert table.loc["topic_2", "enriched"] and not table.loc["topic_2", "target_only"]
    assert not table.loc["topic_3", "target_only"]
    # the definition: enriched and q99(reference) < q90(group), of the cells' proportions
    prop = usage / usage.sum(1, keepdims=True)
    for k, name in enumerate(TOPICS):
        rule = np.quantile(prop[~is_target, k], 0.99) < np.quantile(prop[is_target, k], 0.9)
        confident = table.loc[name, "pval_target_only"] < 0.05
        assert table.loc[name, "target_only"] == (
            table.loc[name, "enriched"] and rule and confident
        )


def test_target_only_on_a_simulated_composition_shift():
    """simulate(composition_shift=...): a cell type 3x as frequent in the target."""
    adata = bc.datasets.simulate(
        n_target=300,
        n_background=300,
        n_genes=150,
        n_markers=20,
        n_program_genes=20,
        composition_shift=(0, 3.0),
    )
    # the true proportions of two ideal topics: the shifted cell type, the program
    cell_type0 = (adata.obs["cell_type"] == adata.obs["cell_type"].cat.categories[0]).to_numpy()
    program = adata.obs["program_1"].to_numpy(dtype=bool)
    usage = np.c_[0.1 + 0.8 * cell_type0, 0.05 + 0.6 * program, np.ones(adata.n_obs)]
    is_target = (adata.obs["condition"] == "target").to_numpy()
    table = compare_usage(usage, is_target, ~is_target, ["cell_type_0", "program", "rest"])
    assert table.loc["cell_type_0", "enriched"] and not table.loc["cell_type_0", "target_only"]
    assert table.loc["program", "enriched"] and table.loc["program", "target_only"]


def _quantile_not_above_by_enumeration(a: np.ndarray, b: np.ndarray) -> float:
    """P(q90 of a resample of ``a`` <= q99 of one of ``b``), over every pair of resamples.

    Each resample is one of the ``n**n`` ordered draws with replacement, all equally
    likely; its quantile is the order statistic of rank ``floor((n - 1) q) + 1``.
    """

    def quantiles(x: np.ndarray, q: float) -> np.ndarray:
        n = len(x)
        draws = np.array(list(itertools.product(range(n), repeat=n)))
        return np.sort(x[draws], axis=1)[:, int(np.floor((n - 1) * q))]

    qa, qb = quantiles(a, 0.9), quantiles(b, 0.99)
    return float((qa[:, None] <= qb[None, :]).mean())


def test_pval_target_only_is_the_bootstrap_over_every_resample():
    """Agreement with an enumeration of all resamples (5 + 4 cells, ties included)."""
    a = np.array([[0.30], [0.10], [0.25], [0.10], [0.05]])
    b = np.array([[0.20], [0.02], [0.10], [0.04]])
    exact = _quantile_not_above_by_enumeration(a[:, 0], b[:, 0])
    assert 0.05 < exact < 0.95  # a case with some of both outcomes
    assert _quantile_not_above(a, b, 0.9, 0.99)[0] == pytest.approx(exact, abs=1e-12)
    # and against drawing resamples, at the enrichment table's sizes
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2, 0.05, (200, 1)), rng.gamma(2, 0.04, (150, 1))
    draws = 20000
    qa = np.sort(a[rng.integers(0, 200, (draws, 200)), 0], 1)[:, int(np.floor(199 * 0.9))]
    qb = np.sort(b[rng.integers(0, 150, (draws, 150)), 0], 1)[:, int(np.floor(149 * 0.99))]
    drawn = (qa <= qb).mean()
    assert _quantile_not_above(a, b, 0.9, 0.99)[0] == pytest.approx(drawn, abs=0.02)


def test_target_only_needs_more_than_a_chance_margin_of_the_top_users():
    """A cell type's topic whose 90th percentile in the group beats the reference's 99th
    by a hair (the 99th of 200 cells rests on their few largest values) is not
    target-only; a program that only group cells use strongly is, with a tiny
    ``pval_target_only``.
    """
    rng = np.random.default_rng(30)  # one of the 1% of draws where the estimate calls it
    n = 200
    is_target = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    in_type = np.r_[np.arange(n) < 100, np.arange(n) < 30]  # a 3.3-fold composition shift
    program = np.r_[rng.random(n) < 0.4, np.zeros(n, bool)]
    level = np.where(in_type, rng.gamma(4, 0.02, 2 * n), 0.005)
    usage = np.c_[level, np.where(program, 0.3, 0.01), np.ones(2 * n)]
    prop = usage / usage.sum(1, keepdims=True)
    # the draw's margin: the group's q90 just above the reference's q99
    q90 = np.quantile(prop[is_target, 0], 0.9)
    q99 = np.quantile(prop[~is_target, 0], 0.99)
    assert 1.0 < q90 / q99 < 1.1
    table = compare_usage(usage, is_target, ~is_target, TOPICS)
    assert table.loc["topic_1", "enriched"]
    assert table.loc["topic_1", "pval_target_only"] > 0.2
    assert not table.loc["topic_1", "target_only"]
    assert table.loc["topic_2", "target_only"] and table.loc["topic_2", "pval_target_only"] < 1e-6
    # without the bootstrap, the quantiles as estimated call it
    point = compare_usage(usage, is_target, ~is_target, TOPICS, target_only_pval=None)
    assert point.loc["topic_1", "target_only"]


def _welch_above_by_hand(a: np.ndarray, b: np.ndarray, ratio: float, eps: float) -> float:
    """One-sided Welch p-value of mean(a) + eps > ratio (mean(b) + eps), from the formulas."""
    va, vb = a.var(ddof=1) / len(a), ratio**2 * b.var(ddof=1) / len(b)
    t = (a.mean() - ratio * b.mean() - (ratio - 1) * eps) / np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(student_t.sf(t, dof))


def test_enriched_tests_the_fold_change_threshold_not_no_change():
    """``enriched``: log2fc >= 0.5 and the mean significantly above 1.2x the reference's.

    A cell type that is by chance more frequent among a few hundred target cells (65 of
    200 against 34 of 200, as in a null simulation's held-out cells) passes a test against
    no change and has an estimated log2 fold change above 0.5; its fold change is not
    significantly above 1.2, so it is not called enriched. A 2-fold program is.
    """
    rng = np.random.default_rng(0)
    n = 200
    is_target = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    in_type = np.r_[np.arange(n) < 65, np.arange(n) < 34]  # 32.5% vs 17% of the cells
    program = np.r_[rng.random(n) < 0.5, np.zeros(n, bool)]
    usage = np.c_[
        np.where(in_type, 0.3, 0.02) + rng.uniform(0, 0.01, 2 * n),  # the cell type's topic
        np.where(program, 0.3, 0.1) + rng.uniform(0, 0.01, 2 * n),  # a 2-fold program
        np.ones(2 * n),
    ]
    table = compare_usage(usage, is_target, ~is_target, TOPICS)
    chance = table.loc["topic_1"]
    assert chance["log2fc"] > 0.5 and chance["pval_adj"] < 0.01  # the old rule's call
    assert not chance["enriched"] and chance["pval_enriched_adj"] > 0.05
    assert table.loc["topic_2", "enriched"]
    # agreement with the formulas: Welch against the threshold, then Benjamini-Hochberg
    prop = usage / usage.sum(1, keepdims=True)
    eps = 1e-3 / 3
    raw = np.array(
        [_welch_above_by_hand(prop[is_target, k], prop[~is_target, k], 1.2, eps) for k in range(3)]
    )
    np.testing.assert_allclose(table.loc[TOPICS, "pval_enriched_adj"], _bh_by_hand(raw), rtol=1e-8)
    rule = (table["log2fc"] >= 0.5) & (table["pval_enriched_adj"] < 0.05)
    assert (table["enriched"] == rule).all()


def test_enriched_is_rarely_called_between_exchangeable_groups():
    """Target and reference cells from one population: a topic is called in <= 5% of draws."""
    called = []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        types = rng.integers(4, size=400)  # four cell types, one topic each
        usage = np.eye(4)[types] * 0.6 + rng.dirichlet(np.ones(4), size=400) * 0.4
        is_target = np.arange(400) < 200
        called.append(
            compare_usage(usage, is_target, ~is_target, TOPICS + ["t4"])["enriched"].any()
        )
    assert np.mean(called) <= 0.05


def test_log2fc_pseudo_count_keeps_unused_topics_on_the_data_scale():
    rng = np.random.default_rng(0)
    usage = rng.random((200, 3))
    is_target = np.arange(200) < 100
    usage[~is_target, 0] = 0.0  # the reference never uses topic 1
    table = compare_usage(usage, is_target, ~is_target, TOPICS)
    K = 3
    assert np.isfinite(table["log2fc"]).all()
    assert table.loc["topic_1", "log2fc"] <= np.log2(1000 * K + 1)
    assert table.loc["topic_1", "log2fc"] > 5  # still far above every other topic
    eps = 1e-3 / K
    prop = usage / usage.sum(1, keepdims=True)
    mt, mb = prop[is_target, 1].mean(), prop[~is_target, 1].mean()
    assert table.loc["topic_2", "log2fc"] == pytest.approx(np.log2((mt + eps) / (mb + eps)))
    assert table.loc["topic_2", "log2fc"] == pytest.approx(np.log2(mt / mb), abs=2e-3)
    assert table.loc["topic_1", "excess"] == pytest.approx(1.0)


# ------------------------------------------------------------ per-sample tests
def _donors(seed: int, *, effect: float = 0.0, n_donors: int = 8, n_cells: int = 150):
    """Cells of ``n_donors`` donors (half per condition) with a donor effect on usage.

    Each donor's mean proportions are random (a real donor effect); with ``effect`` > 0
    the target donors use topic 1 ``effect`` more (in logit), else the conditions do not
    differ at all.
    """
    rng = np.random.default_rng(seed)
    K = 4
    blocks, donors, condition = [], [], []
    for d in range(n_donors):
        target = d % 2 == 0
        logits = rng.normal(0, 0.3, K) + (effect * (np.arange(K) == 0) if target else 0)
        mean = np.exp(logits) / np.exp(logits).sum()
        prop = rng.dirichlet(30 * mean, n_cells)
        blocks.append(prop * rng.lognormal(7, 0.5, (n_cells, 1)))
        donors += [f"donor_{d}"] * n_cells
        condition += ["target" if target else "background"] * n_cells
    adata = AnnData(
        obs=pd.DataFrame(
            {"condition": pd.Categorical(condition), "donor": pd.Categorical(donors)},
            index=[f"cell_{i}" for i in range(len(donors))],
        )
    )
    adata.obsm["X_bcnmf"] = np.vstack(blocks)
    adata.uns["bcnmf"] = {"topics": [f"topic_{k + 1}" for k in range(K)]}
    return adata


def _pvals(adata, **kwargs) -> np.ndarray:
    table = bc.tl.topic_enrichment(
        adata, "condition", groups="target", reference="background", **kwargs
    )
    return table["pval"].to_numpy()


def test_sample_level_test_does_not_reject_a_donor_effect():
    """No condition effect, only donors: cell-level p-values reject, sample-level do not."""
    cell, sample = [], []
    for seed in range(40):
        adata = _donors(seed)
        cell.append(_pvals(adata))
        sample.append(_pvals(adata, sample_key="donor"))
    fpr_cell = float(np.mean(np.concatenate(cell) < 0.05))
    fpr_sample = float(np.mean(np.concatenate(sample) < 0.05))
    assert fpr_cell > 0.5  # pseudo-replication: cells of one donor are not independent
    assert fpr_sample < 0.12  # about the nominal 5% (160 tests)


def test_sample_level_test_finds_a_consistent_condition_effect():
    # effect 2 (a 2.5-fold mean): at 4 against 4 donors, effect 1.5 (1.9-fold, p 0.008
    # against no change) is not significantly above the 1.2-fold null of ``enriched``
    adata = _donors(0, effect=2.0)
    table = bc.tl.topic_enrichment(
        adata, "condition", groups="target", reference="background", sample_key="donor"
    )
    assert table.iloc[0]["topic"] == "topic_1"
    assert table.iloc[0]["pval"] < 0.01 and table.iloc[0]["enriched"]
    assert (table["n_samples_group"] == 4).all() and (table["n_samples_reference"] == 4).all()
    # the statistics are those of the per-donor mean proportions
    prop = adata.obsm["X_bcnmf"] / adata.obsm["X_bcnmf"].sum(1, keepdims=True)
    per_donor = pd.DataFrame(prop).groupby(adata.obs["donor"].to_numpy()).mean()
    cond = adata.obs.groupby("donor", observed=True)["condition"].first()
    means = per_donor.groupby(cond.loc[per_donor.index].to_numpy()).mean()
    row = table.set_index("topic").loc["topic_1"]
    assert row["mean_group"] == pytest.approx(means.loc["target", 0])
    assert row["mean_reference"] == pytest.approx(means.loc["background", 0])
    stored = adata.uns["bcnmf"]["enrichment_condition"]
    pd.testing.assert_frame_equal(stored, table)


def test_sample_level_errors_leave_adata_alone():
    adata = _donors(0, n_donors=4)
    with pytest.raises(KeyError, match="sample_key 'nope' is not a column"):
        bc.tl.topic_enrichment(adata, "condition", sample_key="nope")
    with pytest.raises(ValueError, match="sample_key must differ from groupby"):
        bc.tl.topic_enrichment(adata, "condition", sample_key="condition")
    with pytest.raises(ValueError, match="min_cells must be a positive integer"):
        bc.tl.topic_enrichment(adata, "condition", sample_key="donor", min_cells=0)
    # 2 donors per side with >= 10 cells: fine; with min_cells above every donor: not
    bc.tl.topic_enrichment(adata, "condition", groups="target", sample_key="donor")
    del adata.uns["bcnmf"]["enrichment_condition"]
    needs = r"Group '\w+' of 'condition': A per-sample test needs at least 2 samples"
    with pytest.raises(ValueError, match=needs):
        bc.tl.topic_enrichment(adata, "condition", sample_key="donor", min_cells=1000)
    assert "enrichment_condition" not in adata.uns["bcnmf"]


def test_families_adjust_within_each_family():
    rng = np.random.default_rng(7)
    usage = rng.gamma(1.0, 1.0, (300, 8))
    usage[:150, :2] *= 2.5  # two topics used more by the group
    group = np.r_[np.ones(150, bool), np.zeros(150, bool)]
    topics = [f"t{i}" for i in range(8)]
    families = ["target"] * 3 + ["shared"] * 5
    one = compare_usage(usage, group, ~group, topics).loc[topics]
    two = compare_usage(usage, group, ~group, topics, families=families).loc[topics]
    # the same tests; only the adjustment differs, each family on its own
    np.testing.assert_allclose(two["pval"], one["pval"])
    for fam in ("target", "shared"):
        rows = [t for t, f in zip(topics, families, strict=True) if f == fam]
        np.testing.assert_allclose(
            two.loc[rows, "pval_adj"], benjamini_hochberg(one.loc[rows, "pval"])
        )
    assert two.loc[["t0", "t1"], "enriched"].all() and not two.loc[topics[2:], "enriched"].any()
    with pytest.raises(ValueError, match="families has 2 labels for 8 topics"):
        compare_usage(usage, group, ~group, topics, families=["a", "b"])


def test_tl_adjusts_target_and_shared_topics_apart():
    ad = bc.datasets.simulate(n_target=300, n_background=300, n_genes=200, random_state=2)
    bc.tl.bcnmf(ad, "condition", "background", n_topics=3, random_state=0, progress=False)
    table = ad.uns["bcnmf"]["enrichment"]
    for prefix in ("topic_", "shared_"):
        rows = table[table.index.str.startswith(prefix)]
        np.testing.assert_allclose(rows["pval_adj"], benjamini_hochberg(rows["pval"]))
