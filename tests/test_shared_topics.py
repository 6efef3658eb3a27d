"""The shared-topic model (``n_shared > 0``): engine rules, recovery, calibrated enrichment."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import bcnmf_sc as bc
from bcnmf_sc import BcNMF
from bcnmf_sc._engine.problem import Group
from bcnmf_sc._engine.solver import group_stats
from bcnmf_sc.tl._bcnmf import held_out_cells


def _split(ad):
    t = (ad.obs["condition"] == "target").to_numpy()
    return ad.X[t], ad.X[~t], t


def _fit(X, Y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_epochs is beside the point
        return BcNMF(2, n_shared=kw.pop("n_shared", 12), random_state=0, **kw).fit(X, Y)


def test_background_contributes_only_to_shared_rows():
    W = torch.rand(5, 7, dtype=torch.float64)
    P, N = torch.rand(3, 7, dtype=torch.float64), torch.rand(3, 7, dtype=torch.float64)
    g = Group(role="background", source=None, colsum=None, rowsum=None, null=1.0)
    g.topics = slice(2, 5)
    num, den = group_stats(W, P, N, g, contrast=False)
    assert torch.all(num[:2] == 0) and torch.all(den[:2] == 0)
    assert torch.allclose(num[2:], W[2:] * P) and torch.allclose(den[2:], N)
    # the contrast swaps the background's parts (its term has a minus sign)
    g.topics = None
    P5, N5 = torch.rand(5, 7, dtype=torch.float64), torch.rand(5, 7, dtype=torch.float64)
    num, den = group_stats(W, P5, N5, g, contrast=True)
    assert torch.allclose(num, W * N5) and torch.allclose(den, P5)


def test_shapes_objective_and_parameter_rules():
    ad = bc.datasets.simulate(n_target=300, n_background=300, n_genes=200, random_state=0)
    X, Y, _ = _split(ad)
    m = _fit(X, Y, n_shared=4, max_epochs=20)
    assert m.components_.shape == (6, 200)
    assert m.usage_target_.shape == (300, 6) and m.usage_background_.shape == (300, 6)
    # the objective adds the two terms (no contrast) and is their weighted sum
    assert m.objective_ == pytest.approx(m.target_term_ + m.background_term_, rel=1e-6)
    assert 0 < m.target_term_ < 1 and 0 < m.background_term_ < 1  # beats the null model
    # projection with the fitted components reproduces the model's width
    assert m.transform(X[:5]).shape == (5, 6)
    again = BcNMF.from_components(m.components_, n_shared=4)
    assert again.n_components == 2
    with pytest.raises(ValueError, match="n_shared must be an integer >= 0"):
        BcNMF(2, n_shared=-1).fit(X, Y)
    with pytest.raises(ValueError, match="minibatch solver"):
        BcNMF(2, n_shared=3, solver="full").fit(X, Y)
    with pytest.raises(ValueError, match="no target topic"):
        BcNMF.from_components(m.components_, n_shared=6)


def test_recovers_the_program_where_the_contrast_mixes_it_with_cell_types():
    # seed 1 of the default family: by chance type_1 is 16% more common among target
    # cells; the contrast (n_shared=0) folds cell-type markers into the program topic
    ad = bc.datasets.simulate(random_state=1)
    X, Y, t = _split(ad)
    cells = ad.obs["program_1"].to_numpy()[t]
    genes = (ad.var["program"] == "program_1").to_numpy()
    m = _fit(X, Y, n_shared=16)
    P = m.usage_target_ / m.usage_target_.sum(1, keepdims=True)
    auc = [roc_auc_score(cells, P[:, j]) for j in range(2)]  # the target topics
    j = int(np.argmax(auc))
    assert auc[j] >= 0.95
    assert roc_auc_score(genes, m.components_[j]) >= 0.9


def test_held_out_cells_share_and_reproducible():
    is_t = np.r_[np.ones(50, bool), np.zeros(30, bool), np.zeros(5, bool)]
    is_b = np.r_[np.zeros(50, bool), np.ones(30, bool), np.zeros(5, bool)]
    held = held_out_cells(is_t, is_b, 0.2, 0)
    assert held[is_t].sum() == 10 and held[is_b].sum() == 6 and not held[~(is_t | is_b)].any()
    assert np.array_equal(held, held_out_cells(is_t, is_b, 0.2, 0))
    one = np.r_[True, False]
    assert not held_out_cells(one, ~one, 0.5, 0).any()  # one cell per group stays in training


@pytest.mark.parametrize(("kind", "kwargs"), [("null", {"n_programs": 0}), ("program", {})])
def test_tl_enrichment_is_calibrated_on_held_out_cells(kind, kwargs):
    ad = bc.datasets.simulate(random_state=2, **kwargs)
    before = ad.copy()
    bc.tl.bcnmf(ad, "condition", "background", n_topics=2, n_shared=12, progress=False)
    uns = ad.uns["bcnmf"]
    assert uns["topics"] == ["topic_1", "topic_2"] + [f"shared_{i}" for i in range(1, 13)]
    assert ad.obsm["X_bcnmf"].shape == (ad.n_obs, 14)
    assert uns["params"]["n_held_out"] == 400 and uns["params"]["holdout"] == 0.2
    table = uns["enrichment"]
    if kind == "null":
        # trained target topics fit target noise; on held-out cells nothing is enriched
        assert not table["enriched"].any()
    else:
        assert table.index[0] == table.index[table["enriched"]][0]
        assert table.index[0].startswith("topic_")
        t = (ad.obs["condition"] == "target").to_numpy()
        score = ad.obs["bcnmf_target_score"].to_numpy()[t]
        assert roc_auc_score(ad.obs["program_1"].to_numpy()[t], score) >= 0.95
    assert np.array_equal(before.X.toarray(), ad.X.toarray())


def test_tl_holdout_rules():
    ad = bc.datasets.simulate(n_target=100, n_background=100, n_genes=200, random_state=0)
    with pytest.raises(ValueError, match="holdout must be a number"):
        bc.tl.bcnmf(ad, "condition", "background", n_topics=2, holdout=1.5)
    with pytest.raises(ValueError, match="consensus=True is not available"):
        bc.tl.bcnmf(ad, "condition", "background", n_topics=2, n_shared=2, consensus=True,
                    n_init=2)  # fmt: skip
    assert "bcnmf" not in ad.uns


def test_score_source_reproduces_the_shared_objective():
    # scoring the fitted components recomputes the training objective by the same rules
    ad = bc.datasets.simulate(n_target=300, n_background=300, n_genes=200, random_state=0)
    X, Y, _ = _split(ad)
    m = _fit(X, Y, n_shared=4, max_epochs=20)
    fitted = (m.objective_, m.target_term_, m.background_term_)
    m.score_source(bc.InMemoryRows(X), bc.InMemoryRows(Y))
    assert m.objective_ == pytest.approx(m.target_term_ + m.background_term_, rel=1e-6)
    assert np.allclose((m.objective_, m.target_term_, m.background_term_), fitted, rtol=1e-3)
