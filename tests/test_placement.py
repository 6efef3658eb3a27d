"""The shared-topic model's placement check: target-only structure held by a shared topic."""

from __future__ import annotations

import warnings

import anndata
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import bcnmf_sc as bc
from bcnmf_sc import BcNMF
from bcnmf_sc._engine import engine_options, training
from bcnmf_sc._engine.placement import misplaced_topics, swap_order


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
