"""Recovery of a planted target-only program on simulated counts (the method's claim)."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from _sim import target_background
from bcnmf_sc import BcNMF, ConvergenceWarning

SEEDS = (0, 1, 2)


def _data(seed):
    X, Y, target = target_background(random_state=seed)
    return (
        X,
        Y,
        target.obs["program_1"].to_numpy(),
        (target.var["program"] == "program_1").to_numpy(),
    )


def _fit(X, Y, k, seed, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BcNMF(k, random_state=seed, **kw).fit(X, Y)


def _best_topic(model, labels):
    """The target topic whose usage proportion best separates the planted subgroup."""
    P = model.usage_target_ / model.usage_target_.sum(1, keepdims=True)
    # the target topics come first (the shared-topic model's shared ones after them)
    auc = np.array([roc_auc_score(labels, P[:, j]) for j in range(model.n_components)])
    j = int(np.argmax(auc))
    return j, auc[j]


@pytest.fixture(scope="module")
def k2_results():
    out = {"default": [], "contrast": [], "nmf": []}
    # the default model (shared topics), the contrast at its default alpha, plain NMF
    models = (("default", {}), ("contrast", {"n_shared": 0}), ("nmf", {"alpha": 0.0}))
    for seed in SEEDS:
        X, Y, cells, genes = _data(seed)
        for name, kw in models:
            m = _fit(X, Y, 2, seed, **kw)
            j, cell_auc = _best_topic(m, cells)
            out[name].append((cell_auc, roc_auc_score(genes, m.components_[j])))
    return {k: np.array(v) for k, v in out.items()}


def test_k2_default_alpha_separates_the_planted_subgroup(k2_results):
    cell_auc, gene_auc = k2_results["contrast"].mean(0)
    assert cell_auc >= 0.95, k2_results["contrast"]
    assert gene_auc >= 0.9, k2_results["contrast"]


def test_k2_default_model_separates_the_planted_subgroup(k2_results):
    cell_auc, gene_auc = k2_results["default"].mean(0)  # 2 target + 16 shared topics
    assert cell_auc >= 0.95, k2_results["default"]
    assert gene_auc >= 0.9, k2_results["default"]


def test_k2_plain_nmf_does_not(k2_results):
    cell_auc, _ = k2_results["nmf"].mean(0)
    assert cell_auc <= 0.75, k2_results["nmf"]


def _small_pair():
    """250 + 250 cells x 200 genes: small enough for hundreds of minibatch epochs."""
    X, Y, _ = target_background(
        n_target=250, n_background=250, n_genes=200, n_markers=20, n_program_genes=20,
        random_state=4,
    )  # fmt: skip
    return X, Y


def test_minibatch_and_full_batch_reach_the_same_objective():
    X, Y = _small_pair()
    kw = dict(alpha=0.5, dtype="float64")
    full = _fit(X, Y, 3, 0, solver="full", max_epochs=400, tol=1e-6, **kw)
    # tol=0: all 200 epochs (with 5 batches per epoch the per-epoch objective is noisier
    # than the slow progress near the optimum, which the stopping rule does not wait for)
    mini = _fit(X, Y, 3, 0, solver="minibatch", batch_size=100, max_epochs=200, tol=0, **kw)
    assert mini.objective_ == pytest.approx(full.objective_, rel=0.01)


def test_short_forgetting_horizon_reaches_the_same_objective():
    # above forget_cells cells the statistics that update W are forgotten over that many
    # cells instead of an epoch; shrink it to exercise that path on small data
    from bcnmf_sc._engine import engine_options

    X, Y = _small_pair()
    kw = dict(alpha=0.5, dtype="float64", solver="minibatch", batch_size=100, tol=0)
    epoch = _fit(X, Y, 3, 0, max_epochs=60, **kw)
    # 3 batches instead of 5 (0.6% above here; statistics of fewer cells are noisier:
    # 2 batches end 1.5% above)
    with engine_options(forget_cells=300):
        short = _fit(X, Y, 3, 0, max_epochs=60, **kw)
    assert short.objective_ != epoch.objective_  # the horizon did change the fit
    assert short.objective_ == pytest.approx(epoch.objective_, rel=0.01)
    hist = np.array(short.history_["objective"])
    assert hist[-10:].mean() < hist[:10].mean()


def test_shared_model_forgets_over_its_own_horizon():
    """The shared-topic model's horizon: the larger of a cell count and a share of the cells."""
    from bcnmf_sc._engine import engine_options

    X, Y = _small_pair()  # 500 cells: the default horizon (5,000 cells) is the epoch
    kw = dict(n_shared=4, dtype="float64", solver="minibatch", batch_size=100, tol=0)
    epoch = _fit(X, Y, 2, 0, max_epochs=40, **kw)
    with engine_options(forget_cells_shared=(300, 0.0)):  # 300 cells: 3 batches
        short = _fit(X, Y, 2, 0, max_epochs=40, **kw)
    with engine_options(forget_cells_shared=(0, 0.6)):  # 60% of 500 cells: the same
        share = _fit(X, Y, 2, 0, max_epochs=40, **kw)
    np.testing.assert_array_equal(share.components_, short.components_)
    assert short.objective_ != epoch.objective_  # the horizon did change the fit
    assert short.objective_ == pytest.approx(epoch.objective_, rel=0.01)
