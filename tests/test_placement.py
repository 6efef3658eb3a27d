"""The shared-topic model's placement check: target-only structure held by a shared topic."""

from __future__ import annotations

import warnings

import anndata
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

import bcnmf_sc as bc
from bcnmf_sc import BcNMF
from bcnmf_sc._engine import engine_options, training
from bcnmf_sc._engine.placement import (
    gene_share,
    genes_target_only,
    misplaced_topics,
    specific_genes,
    swap_order,
)


def _usages(rng, n_t=400, n_b=400):
    """Usages of 2 target + 3 shared topics with known roles.

    Topic 0 (target): a program of 30% of the target cells, unused by the background.
    Topic 1 (target): used alike by both groups. Topic 2 (shared): a second program of
    25% of the target cells that the background uses only weakly. Topic 3 (shared): a
    cell type twice as common in the target, used as strongly by the background's cells
    of that type (a composition shift). Topic 4 (shared): used alike.
    """

    def group(n, program, second, type_share):
        U = np.c_[
            np.where(rng.random(n) < program, 3.0, 0.0),
            rng.uniform(0.5, 1.5, n),
            np.where(rng.random(n) < second, 3.0, rng.uniform(0.0, 0.2, n)),
            np.where(rng.random(n) < type_share, 4.0, 0.0),
            rng.uniform(0.5, 1.5, n),
        ]
        return U * rng.uniform(0.9, 1.1, U.shape)

    return group(n_t, 0.3, 0.25, 0.4), group(n_b, 0.0, 0.0, 0.2)


def test_misplaced_topics_pairs_a_target_only_shared_topic_with_a_free_target_topic():
    ut, ub = _usages(np.random.default_rng(0))
    # topic 2 moves to the target block in place of topic 1 (not target-only); topic 3,
    # a composition shift, stays shared; topic 0, a target-only target topic, stays
    assert misplaced_topics(ut, ub, 2) == [(2, 1)]
    assert misplaced_topics(ut, ub, 1) == [(2, 0)] or misplaced_topics(ut, ub, 1) == []
    # no free target topic: nothing to swap
    assert misplaced_topics(ut[:, [0, 2, 3, 4]], ub[:, [0, 2, 3, 4]], 1) == []
    # nothing target-only among the shared topics, or no shared topic at all
    assert misplaced_topics(ut[:, [0, 1, 3, 4]], ub[:, [0, 1, 3, 4]], 2) == []
    assert misplaced_topics(ut, ub, 5) == []


def test_misplaced_topics_falls_back_on_the_counts_for_an_enriched_shared_topic():
    ut, ub = _usages(np.random.default_rng(0))
    # without the usage-level target-only topic 2, the usages give no pair; topic 3 of the
    # original (index 2 here, a composition shift) is enriched but not target-only
    ut, ub = ut[:, [0, 1, 3, 4]], ub[:, [0, 1, 3, 4]]
    W = np.full((4, 150), 0.1)
    for j in range(4):
        W[j, 30 * j : 30 * j + 30] = 5.0  # topic j's specific genes: 30j .. 30j + 29
    asked = []

    def shares(answer):
        """The count-level answer: target-only only for the genes of topic ``answer``."""

        def by_genes(genes):
            topic = int(np.min(genes)) // 30
            asked.append(topic)
            high = np.r_[np.full(90, 0.1), np.full(10, 0.5)]  # top 10% reach 0.5
            return (high if topic == answer else np.full(100, 0.1)), np.full(100, 0.1)

        return by_genes

    assert misplaced_topics(ut, ub, 2) == []
    assert misplaced_topics(ut, ub, 2, W) == []  # the counts are needed too
    # the counts say target-only: paired with the free target topic (1, not target-only)
    assert misplaced_topics(ut, ub, 2, W, shares(2)) == [(2, 1)]
    assert asked == [2]  # only enriched shared topics are asked about
    asked.clear()
    assert misplaced_topics(ut, ub, 2, W, shares(None)) == []
    # a shared topic repeating what a target topic holds is not moved
    W_repeat = W.copy()
    W_repeat[2] = W[0]
    asked.clear()
    assert misplaced_topics(ut, ub, 2, W_repeat, shares(2)) == []
    # no free target topic (both target-only, holding different genes): nothing to swap
    both = ut.copy(), ub.copy()
    both[0][:, 1] = np.where(np.arange(len(ut)) % 3 == 0, 3.0, 0.0)
    both[1][:, 1] = 0.0
    assert misplaced_topics(*both, 2, W, shares(2)) == []
    # ... unless they repeat each other: the one of smaller excess is free
    W_twin = W.copy()
    W_twin[1] = W[0]
    pairs = misplaced_topics(*both, 2, W_twin, shares(2))
    assert len(pairs) == 1 and pairs[0][0] == 2 and pairs[0][1] in (0, 1)
    # a usage-level pair makes the count-level check unnecessary
    asked.clear()
    ut0, ub0 = _usages(np.random.default_rng(0))
    assert misplaced_topics(ut0, ub0, 2, np.vstack([W, np.full((1, 150), 0.1)]), shares(3)) == [
        (2, 1)
    ]
    assert asked == []


def test_specific_genes_and_gene_share():
    rng = np.random.default_rng(1)
    W = rng.uniform(0.5, 1.0, (3, 40))
    W[1, 10:15] = 20.0  # genes 10..14 belong to topic 1
    assert set(specific_genes(W, 1, 5)) == set(range(10, 15))
    assert len(specific_genes(W, 0, 100)) == 40
    X = sp.csr_matrix(np.array([[1, 2, 0, 3], [0, 0, 0, 0], [4, 0, 4, 0]], dtype=float))
    np.testing.assert_allclose(gene_share(X, np.array([0, 2])), [1 / 6, 0.0, 1.0])


def test_genes_target_only_separates_a_program_from_a_composition_shift():
    """Counts on a topic's genes: a program reaches levels no background cell does."""
    rng = np.random.default_rng(2)

    def shares(n, frac_high, high):
        level = np.where(rng.random(n) < frac_high, high, 0.05)
        return rng.gamma(50.0, level / 50.0)

    background = shares(2000, 0.17, 0.15)  # a cell type at 0.15 in 17% of the cells
    # composition shift: the same cell type, in 50% of the target cells, at the same level
    assert not genes_target_only(shares(2000, 0.5, 0.15), background)
    # a program: half the target cells 1.8-fold above the background's non-type cells
    no_type = shares(2000, 0.0, 0.0)
    assert genes_target_only(shares(2000, 0.5, 0.09), no_type)
    assert not genes_target_only(np.array([0.5]), no_type)  # too few cells to say


def test_swap_order():
    np.testing.assert_array_equal(swap_order(5, [(3, 1)]), [0, 3, 2, 1, 4])
    np.testing.assert_array_equal(swap_order(4, [(2, 0), (3, 1)]), [2, 3, 0, 1])
    np.testing.assert_array_equal(swap_order(3, []), [0, 1, 2])


@pytest.fixture(scope="module")
def planted_in_shared():
    """A fit started with the program in a shared topic, with and without the check.

    The program is active in half the target cells of one cell type (the recovery
    suite's ``one_type``, where fits ended this way). The start's target topics are the
    background's mean profile (plus noise), its first shared topic the mean profile of
    the target's program cells, the next ones the background's cell types, the rest
    random.
    """
    ad = bc.datasets.simulate(
        n_target=600, n_background=600, n_genes=400, program_cell_type=0, random_state=3
    )
    t = (ad.obs["condition"] == "target").to_numpy()
    X, Y = ad.X[t], ad.X[~t]
    prog = ad.obs["program_1"].to_numpy()[t]
    k, n_shared = 2, 8
    rng = np.random.default_rng(0)
    mean_b = np.asarray(Y.mean(0)).ravel()
    start = rng.uniform(0.5, 1.5, (k + n_shared, ad.n_vars)) * mean_b
    start[:k] = mean_b * rng.uniform(0.8, 1.2, (k, ad.n_vars))
    start[k] = np.asarray(X[prog].mean(0)).ravel()
    types = ad.obs["cell_type"].to_numpy()[~t]
    for i, c in enumerate(np.unique(types)):  # the cell types, as the background has them
        start[k + 1 + i] = np.asarray(Y[types == c].mean(0)).ravel()
    start /= start.sum(1, keepdims=True)

    def fit(repair: bool) -> BcNMF:
        original = training.init_components
        training.init_components = lambda *a, **kw: start.copy()
        try:
            with engine_options(repair_placement=repair), warnings.catch_warnings():
                warnings.simplefilter("ignore", bc.ConvergenceWarning)
                return BcNMF(k, n_shared=n_shared, random_state=0).fit(X, Y)
        finally:
            training.init_components = original

    return fit(False), fit(True), prog, (ad.var["program"] == "program_1").to_numpy()


def _best_target_auc(m: BcNMF, prog: np.ndarray) -> float:
    P = m.usage_target_ / m.usage_target_.sum(1, keepdims=True)
    return max(roc_auc_score(prog, P[:, j]) for j in range(2))


def test_fit_moves_a_program_held_by_a_shared_topic_into_the_target_block(planted_in_shared):
    plain, repaired, prog, genes = planted_in_shared
    # without the check the program stays where it started: in a shared topic
    assert plain.swapped_topics_ == []
    assert _best_target_auc(plain, prog) < 0.8
    P = plain.usage_target_ / plain.usage_target_.sum(1, keepdims=True)
    assert roc_auc_score(prog, P[:, 2]) > 0.9
    # with it, topic 2 trades places with a target topic and the fit goes on from there
    assert len(repaired.swapped_topics_) == 1 and repaired.swapped_topics_[0][0] == 2
    assert _best_target_auc(repaired, prog) > 0.95
    j = repaired.swapped_topics_[0][1]
    before = max(roc_auc_score(genes, plain.components_[i]) for i in range(2))
    assert roc_auc_score(genes, repaired.components_[j]) > max(0.85, before + 0.2)
    # kept because its objective is lower; the history runs on over both fits
    assert repaired.objective_ < plain.objective_
    assert repaired.n_epochs_ == len(repaired.history_["epoch"]) > plain.n_epochs_
    assert np.all(np.diff(repaired.history_["epoch"]) == 1)
    assert np.all(np.diff(repaired.history_["seconds"]) >= 0)


def _two_programs(seed):
    """The suite's ``two_programs`` family (3x and 1.8x programs) at 500 + 500 x 400."""
    kwargs = bc.datasets.simulation_families()["two_programs"]["kwargs"]
    ad = bc.datasets.simulate(
        n_target=500, n_background=500, n_genes=400, random_state=seed, **kwargs
    )
    t = (ad.obs["condition"] == "target").to_numpy()
    progs = [ad.obs[p].to_numpy()[t] for p in ("program_1", "program_2")]
    return ad.X[t], ad.X[~t], progs


def _fit(X, Y, seed, repair):
    with warnings.catch_warnings(), engine_options(repair_placement=repair):
        warnings.simplefilter("ignore")
        return BcNMF(2, random_state=seed).fit(X, Y)


def test_counts_move_a_weaker_program_out_of_a_shared_topic():
    """Seed 3: both target topics hold the 3x program, the 1.8x one is in a shared topic.

    That shared topic is enriched but not ``target_only`` in the usages; in the counts
    on its genes the target's top cells reach beyond the background's, so it swaps with
    one of the two target topics that repeat each other.
    """
    X, Y, (p1, p2) = _two_programs(3)
    plain, repaired = _fit(X, Y, 3, False), _fit(X, Y, 3, True)
    assert min(_best_target_auc(plain, p) for p in (p1, p2)) < 0.8
    assert len(repaired.swapped_topics_) == 1 and repaired.swapped_topics_[0][0] >= 2
    assert min(_best_target_auc(repaired, p) for p in (p1, p2)) > 0.95
    assert repaired.objective_ < plain.objective_


def test_counts_leave_a_fit_that_holds_both_programs_alone():
    """Seed 2: the target topics hold one program each; no target topic is free."""
    X, Y, (p1, p2) = _two_programs(2)
    m = _fit(X, Y, 2, True)
    assert m.swapped_topics_ == []
    assert min(_best_target_auc(m, p) for p in (p1, p2)) > 0.95


def test_contrast_has_no_placement_check():
    ad = bc.datasets.simulate(
        n_target=60, n_background=60, n_genes=60, n_markers=5, n_program_genes=5, random_state=0
    )
    t = (ad.obs["condition"] == "target").to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = BcNMF(2, alpha=1.0, max_epochs=5, random_state=0).fit(ad.X[t], ad.X[~t])
    assert m.swapped_topics_ == []


def test_tl_records_the_swaps(tmp_path):
    ad = bc.datasets.simulate(
        n_target=60, n_background=60, n_genes=60, n_markers=5, n_program_genes=5, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bc.tl.bcnmf(ad, "condition", "background", n_topics=2, max_epochs=5, progress=False)
    swapped = ad.uns["bcnmf"]["swapped_topics"]
    assert swapped.dtype.kind == "i" and swapped.ndim == 2 and swapped.shape[1] == 2
    ad.write_h5ad(tmp_path / "a.h5ad")
    back = anndata.read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_array_equal(back.uns["bcnmf"]["swapped_topics"], swapped)
