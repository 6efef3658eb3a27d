"""The BcNMF engine: agreement with scikit-learn, numerics, input checks."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from _sim import target_background
from bcnmf_sc import BcNMF, ConvergenceWarning
from bcnmf_sc._engine.losses import FrobeniusLoss, KLLoss


def _random_pair(seed=0, n=120, m=100, g=60, density=0.3, integer=True):
    rng = np.random.default_rng(seed)

    def one(rows):
        A = sp.random(rows, g, density=density, random_state=rng, format="csr")
        A.data = rng.poisson(3.0, size=A.nnz) + 1.0 if integer else A.data * 5
        return A

    return one(n), one(m)


def _kl(X, M):
    X = np.asarray(X.todense() if sp.issparse(X) else X, dtype=float)
    pos = X > 0
    return float(np.sum(X[pos] * np.log(X[pos] / M[pos])) - X.sum() + M.sum())


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_alpha_zero_matches_sklearn_nmf(loss):
    """alpha=0 is plain NMF: the objective reached matches scikit-learn's NMF."""
    from sklearn.decomposition import NMF

    X, Y = _random_pair(seed=1)
    beta = "kullback-leibler" if loss == "kl" else "frobenius"
    ref = NMF(4, beta_loss=beta, solver="mu", init="nndsvda", max_iter=2000, tol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X)
    ref_obj = ref.reconstruction_err_**2 / 2  # sklearn reports sqrt(2 * D)
    model = BcNMF(
        4,
        alpha=0.0,
        loss=loss,
        alpha_scaling="raw",
        solver="full",
        tol=1e-8,
        max_epochs=2000,
        dtype="float64",
        init="nndsvda",
    ).fit(X, Y)
    assert model.objective_ == pytest.approx(ref_obj, rel=0.02)
    # and the objective is the loss of the returned factors, computed independently
    M = model.usage_target_ @ model.components_
    if loss == "kl":
        assert model.objective_ == pytest.approx(_kl(X, M), rel=1e-6)
    else:
        Xd = X.toarray()
        assert model.objective_ == pytest.approx(0.5 * np.sum((Xd - M) ** 2), rel=1e-6)


def test_sparse_and_dense_give_same_factors():
    X, Y = _random_pair(seed=2)
    kw = dict(alpha=1.5, solver="full", max_epochs=30, tol=0, dtype="float64")
    a = BcNMF(3, **kw).fit(X, Y)
    b = BcNMF(3, **kw).fit(X.toarray(), Y.toarray())
    c = BcNMF(3, **kw).fit(X.tocsc().astype(np.int64), Y.tocsc())
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(a.usage_target_, b.usage_target_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(a.components_, c.components_, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
@pytest.mark.parametrize("data", ["random", "simulated"])
def test_full_batch_objective_never_increases(loss, data):
    if data == "random":
        X, Y = _random_pair(seed=3, integer=loss == "kl")
    else:
        X, Y, _ = target_background(
            n_target=150,
            n_background=150,
            n_genes=150,
            n_markers=15,
            n_program_genes=15,
            random_state=3,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = BcNMF(
            4, alpha=2.0, loss=loss, solver="full", max_epochs=30, tol=0, dtype="float64"
        ).fit(X, Y)
    obj = np.asarray(m.history_["objective"])
    assert len(obj) > 5
    # non-increasing up to the background solve's relative tolerance (1e-7)
    assert np.all(np.diff(obj) <= 1e-7 * np.abs(obj[:-1])), np.diff(obj).max()
    # the recorded terms add up to the objective
    np.testing.assert_allclose(
        obj, np.asarray(m.history_["target"]) - 2.0 * np.asarray(m.history_["background"])
    )


@pytest.mark.parametrize(
    "model",
    [dict(n_shared=0, solver="full"), dict()],  # the contrast (full batch); the default
    ids=["contrast", "shared"],
)
def test_gauge_is_fixed_and_outputs_are_finite(model):
    X, Y = _random_pair(seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = BcNMF(5, max_epochs=20, **model).fit(X, Y)
    np.testing.assert_allclose(m.components_.sum(1), 1.0, rtol=1e-5)
    assert np.all(m.components_ > 0)
    for H in (m.usage_target_, m.usage_background_):
        assert np.all(np.isfinite(H)) and np.all(H >= 0)
    # usages carry the scale: a cell's usage sums to about its total count
    lib = np.asarray(X.sum(1)).ravel()
    assert np.corrcoef(m.usage_target_.sum(1), lib)[0, 1] > 0.95


def test_same_seed_same_result_and_restarts_keep_the_best():
    X, Y = _random_pair(seed=5)
    kw = dict(solver="minibatch", batch_size=64, max_epochs=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = BcNMF(3, random_state=7, **kw).fit(X, Y)
        b = BcNMF(3, random_state=7, **kw).fit(X, Y)
        c = BcNMF(3, random_state=7, n_init=3, **kw).fit(X, Y)
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(a.usage_target_, b.usage_target_)
    assert c.objective_ <= a.objective_ + 1e-9


@pytest.mark.parametrize(
    "model",
    [dict(n_shared=0, solver="full"), dict()],  # the contrast (full batch); the default
    ids=["contrast", "shared"],
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_transform_reproduces_fitted_usages(model):
    X, Y = _random_pair(seed=6)
    m = BcNMF(3, max_epochs=100, dtype="float64", **model).fit(X, Y)

    def rel_err(H, ref):
        return np.abs(H - ref).sum(1) / ref.sum(1)

    # new cells are projected from scratch; they land on the fitted usages
    assert np.median(rel_err(m.transform(X), m.usage_target_)) < 0.01
    assert np.median(rel_err(m.transform(Y), m.usage_background_)) < 0.01


def test_convergence_warning_when_max_epochs_is_hit():
    X, Y = _random_pair(seed=7)
    with pytest.warns(ConvergenceWarning, match="max_epochs"):
        m = BcNMF(3, n_shared=0, solver="full", max_epochs=2, tol=1e-12).fit(X, Y)
    assert not m.converged_ and m.n_epochs_ == 2


def test_tol_zero_runs_all_epochs_without_a_warning():
    X, Y = _random_pair(seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        m = BcNMF(3, n_shared=0, solver="full", max_epochs=3, tol=0).fit(X, Y)
    assert not m.converged_ and m.n_epochs_ == 3


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_cells_scaling_ignores_how_many_background_cells(loss):
    """alpha_scaling="cells": every background cell twice leaves the fit unchanged."""
    X, Y = _random_pair(seed=9)
    kw = dict(alpha=1.5, solver="full", max_epochs=3, tol=0, dtype="float64", loss=loss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = BcNMF(3, alpha_scaling="cells", **kw).fit(X, Y)
        b = BcNMF(3, alpha_scaling="cells", **kw).fit(X, sp.vstack([Y, Y]).tocsr())
        c = BcNMF(3, alpha_scaling="raw", **kw).fit(X, Y)
        d = BcNMF(3, alpha_scaling="raw", **kw).fit(X, sp.vstack([Y, Y]).tocsr())
    np.testing.assert_allclose(a.history_["objective"], b.history_["objective"], rtol=1e-4)
    scaled = np.abs(a.components_ - b.components_).max()
    raw = np.abs(c.components_ - d.components_).max()
    assert scaled < 0.05 * raw, (scaled, raw)


@pytest.mark.parametrize(
    ("loss", "scaling", "null_topic", "init"),
    [("kl", "deviance", "background", "contrastive"), ("frobenius", "cells", "none", "nndsvda")],
)
def test_auto_settings_follow_the_loss(loss, scaling, null_topic, init):
    X, Y = _random_pair(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # the contrast's auto settings (for counts "auto" is the shared model)
        n_shared = 0 if loss == "kl" else "auto"
        m = BcNMF(2, n_shared=n_shared, loss=loss, solver="full", max_epochs=2).fit(X, Y)
    assert (m.alpha_scaling_, m.null_topic_, m.init_) == (scaling, null_topic, init)
    # without a null topic the background has no baseline weights to report
    assert np.all(m.baseline_background_ == 0) == (null_topic == "none")


def test_null_deviance_matches_direct_computation():
    X, _ = _random_pair(seed=8)
    Xd = X.toarray()
    r, c = Xd.sum(1), Xd.sum(0)
    M = np.outer(r, c) / Xd.sum()
    assert KLLoss.null_deviance(X, c) == pytest.approx(_kl(Xd, M), rel=1e-10)
    assert FrobeniusLoss.null_deviance(X, c) == pytest.approx(0.5 * np.sum((Xd - M) ** 2))


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_deviance_scaling_makes_alpha_independent_of_depth(loss):
    """Sequencing the background 10x deeper leaves the fit unchanged (raw scaling does not)."""
    X, Y = _random_pair(seed=9)
    kw = dict(alpha=1.5, solver="full", max_epochs=3, tol=0, dtype="float64", loss=loss)
    kw["null_topic"] = "background"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = BcNMF(3, alpha_scaling="deviance", **kw).fit(X, Y)
        b = BcNMF(3, alpha_scaling="deviance", **kw).fit(X, Y * 10.0)
        c = BcNMF(3, alpha_scaling="raw", **kw).fit(X, Y)
        d = BcNMF(3, alpha_scaling="raw", **kw).fit(X, Y * 10.0)
    # equal up to the tolerance of the inner usage solves ...
    np.testing.assert_allclose(a.history_["objective"], b.history_["objective"], rtol=1e-4)
    scaled = np.abs(a.components_ - b.components_).max()
    # ... while the paper's raw scaling changes the fit by orders of magnitude more
    raw = np.abs(c.components_ - d.components_).max()
    assert scaled < 0.05 * raw, (scaled, raw)


# ----------------------------------------------------------------- bad input
BAD = [
    (lambda X, Y: (X * -1.0, Y), {}, "negative values"),
    (lambda X, Y: (X, sp.csr_matrix(np.full((3, X.shape[1]), np.nan))), {}, "NaN or infinite"),
    (lambda X, Y: (X, Y[:, :-1]), {}, "same genes"),
    (lambda X, Y: (X[:0], Y), {}, "no cells"),
    (lambda X, Y: (X, Y[:0]), {}, "no cells"),
    (lambda X, Y: (X, Y), {"n_components": 0}, "n_components must be an integer >= 1"),
    (lambda X, Y: (X, Y), {"n_components": 500}, "too large"),
    (lambda X, Y: (X, Y), {"alpha": -1.0}, "alpha must be >= 0"),
    (lambda X, Y: (X, Y), {"loss": "poisson"}, "Unknown loss"),
    (lambda X, Y: (X, Y), {"solver": "sgd"}, "Unknown solver"),
    (lambda X, Y: (X, Y), {"init": "magic"}, "Unknown init"),
    (lambda X, Y: (X, Y), {"dtype": "float16"}, "Unknown dtype"),
]


@pytest.mark.parametrize(("make", "params", "message"), BAD)
def test_bad_input_raises_with_a_helpful_message(make, params, message):
    X, Y = _random_pair(seed=10)
    Xb, Yb = make(X, Y)
    kw = {"n_components": 3, **params}
    with pytest.raises(ValueError, match=message):
        BcNMF(**kw).fit(Xb, Yb)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_transform_checks_genes():
    X, Y = _random_pair(seed=11)
    m = BcNMF(3, max_epochs=5).fit(X, Y)
    with pytest.raises(ValueError, match="same genes"):
        m.transform(X[:, :10])
    with pytest.raises(RuntimeError, match="not fitted"):
        BcNMF(3).transform(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_from_components_projects_like_the_fitted_model():
    X, Y = _random_pair(seed=12)
    m = BcNMF(3, max_epochs=20, dtype="float64").fit(X, Y)
    assert m.components_.shape == (3 + m.n_shared_, 60)
    p = BcNMF.from_components(m.components_ * 5.0, n_shared=m.n_shared_, dtype="float64")
    assert p.n_components == 3
    np.testing.assert_allclose(p.transform(X), m.transform(X), rtol=1e-10)
    with pytest.raises(ValueError, match="non-negative"):
        BcNMF.from_components(-m.components_)


def test_stopping_rule_waits_for_progress_and_stops_on_noise():
    from bcnmf_sc._engine.model import _settled

    rng = np.random.default_rng(0)
    # steady progress of 1e-3 per epoch (relative): not converged at tol=1e-4
    decreasing = list(1.0 - 1e-3 * np.arange(30))
    assert not _settled(decreasing, 5, 1.0, 1e-4)
    assert _settled(decreasing, 5, 1.0, 1e-2)
    # a floor with noise much larger than tol: the mean improvement is about zero
    stops = [_settled(list(0.5 + 1e-2 * rng.standard_normal(10)), 5, 0.5, 1e-5) for _ in range(200)]
    assert 0.3 < np.mean(stops) < 0.7  # a coin flip per epoch: stops within a few epochs
    # progress far above the noise is not mistaken for noise
    noisy_descent = list(1.0 - 1e-2 * np.arange(10) + 1e-4 * rng.standard_normal(10))
    assert not _settled(noisy_descent, 5, 1.0, 1e-4)
    # too short a history, or tol=0 (run max_epochs): never
    assert not _settled(decreasing[:9], 5, 1.0, 1.0)
    assert not _settled([1.0] * 20, 5, 1.0, 0.0)
    # full batch: the last epoch's change
    assert _settled([1.0, 1.0 - 1e-6], 1, 1.0, 1e-5)
    assert not _settled([1.0, 0.9], 1, 1.0, 1e-5)
