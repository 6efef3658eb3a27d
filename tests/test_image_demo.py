"""The bcNMF paper's image demo (digits on textures), reproduced with the package defaults."""

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from bcnmf_sc import BcNMF
from bcnmf_sc.datasets import image_demo


@pytest.fixture(scope="module")
def demo():
    ad = image_demo()
    t = (ad.obs["condition"] == "target").to_numpy()
    return ad.X[t], ad.X[~t], ad.obs["digit"].to_numpy()[t]


def _ari(usage, digit):
    labels = KMeans(2, random_state=0, n_init=10).fit_predict(usage)
    return adjusted_rand_score(digit, labels)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_defaults_reproduce_the_paper(demo, seed):
    """Published: ARI 0.8456 (squared error, K=2, alpha=2, k-means(2) on target usages)."""
    X, Y, digit = demo
    with warnings.catch_warnings():  # no false "worse than the null model" warning
        warnings.filterwarnings("error", "The fitted topics explain", RuntimeWarning)
        m = BcNMF(2, loss="frobenius", random_state=seed).fit(X, Y)
    assert m.converged_
    assert _ari(m.usage_target_, digit) >= 0.84


def test_the_stroke_topics_leave_the_textures_unexplained(demo):
    """The digit topics explain the target worse than its mean image does (the null
    model), and better than nothing: that is the published optimum, not a failure."""
    X, Y, _ = demo
    m = BcNMF(2, loss="frobenius", random_state=0).fit(X, Y)
    fx = 0.5 * np.sum((X - m.usage_target_ @ m.components_) ** 2)
    r, c = X.sum(1), X.sum(0)
    null = 0.5 * np.sum((X - np.outer(r, c) / c.sum()) ** 2)
    assert null < fx < 0.5 * np.sum(X**2)


def test_background_null_topic_is_what_broke_it(demo):
    """The 0.x default (the background's null topic) does not separate the digits."""
    X, Y, digit = demo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = BcNMF(2, loss="frobenius", null_topic="background", random_state=0).fit(X, Y)
    assert _ari(m.usage_target_, digit) < 0.6


def test_published_objective_stays_available(demo):
    X, Y, digit = demo
    kw = dict(null_topic="none", alpha_scaling="raw", init="random")
    m = BcNMF(2, loss="frobenius", random_state=0, **kw).fit(X, Y)
    # the published objective: ||X - H_X W||^2 / 2 - alpha ||Y - H_Y W||^2 / 2, no scaling
    W = m.components_
    fx = 0.5 * np.sum((X - m.usage_target_ @ W) ** 2)
    assert m.scale_target_ == m.scale_background_ == 1.0
    assert m.target_term_ == pytest.approx(fx, rel=1e-3)
    assert _ari(m.usage_target_, digit) >= 0.84
