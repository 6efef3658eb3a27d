"""Issue 17, points 3-5: the count check, the last bad inputs, numerics with a useful word."""

from __future__ import annotations

import re
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bcnmf_sc as bc
from bcnmf_sc import BcNMF
from bcnmf_sc.datasets import simulate
from bcnmf_sc.tl._checks import _is_integer, check_counts_sample

FAST = dict(n_topics=2, max_epochs=3, progress=False, device="cpu")
quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def base():
    a = simulate(n_target=40, n_background=40, n_genes=50, n_markers=10, n_program_genes=10)
    a.layers["counts"] = a.X.copy()
    return a


@pytest.fixture
def adata(base):
    return base.copy()


def _fit(a, **kw):
    args = {**FAST, **kw}
    background = args.pop("background", "background")
    return bc.tl.bcnmf(a, "condition", background, **args)


def _unchanged(a, before):
    assert "bcnmf" not in a.uns and "X_bcnmf" not in a.obsm
    assert list(a.obs.columns) == before


# ------------------------------------------------------------------ count check
def test_log1p_data_named_as_not_counts(adata):
    adata.X = np.log1p(adata.X)
    with pytest.raises(ValueError, match=r'layer="counts".*check_counts=False'):
        _fit(adata)
    assert "bcnmf" not in adata.uns


@quiet
def test_count_check_skippable_and_recorded(adata):
    adata.X = np.log1p(adata.X)
    _fit(adata, check_counts=False)
    assert adata.uns["bcnmf"]["params"]["check_counts"] is False
    _fit(adata, layer="counts")
    assert adata.uns["bcnmf"]["params"]["check_counts"] is True


@quiet
def test_count_check_frobenius_not_checked(adata):
    adata.X = np.log1p(adata.X)
    _fit(adata, loss="frobenius")


@quiet
def test_float_error_counts_as_integer(adata):
    X = adata.X.toarray().astype(np.float64)
    adata.X = sp.csr_matrix(X + 1e-7 * (X > 0))  # 3.0000001
    _fit(adata)
    assert _is_integer(np.array([3.0000001, 1e7 + 1e-3, 2.0])).all()
    assert not _is_integer(np.array([0.6931])).any()


def test_count_check_samples_not_full_pass():
    calls = []

    class Spy(bc.InMemoryRows):
        def rows(self, index):
            calls.append(len(index))
            return super().rows(index)

    X = sp.random(20000, 50, density=0.2, format="csr", random_state=0)
    X.data = np.round(X.data * 10) + 1
    check_counts_sample(Spy(X), "X", n_values=2000)
    assert sum(calls) < 2000  # a few blocks of rows, not 20000 rows


def test_count_check_backed(tmp_path, base):
    a = base.copy()
    a.X = sp.csr_matrix(np.log1p(a.X))
    a.write_h5ad(tmp_path / "x.h5ad")
    b = ad.read_h5ad(tmp_path / "x.h5ad", backed="r")
    with pytest.raises(ValueError, match='layer="counts"'):
        _fit(b)
    b.file.close()


def test_check_counts_must_be_bool(adata):
    with pytest.raises(TypeError, match="check_counts"):
        _fit(adata, check_counts="no")


@quiet
def test_transform_uses_the_recorded_layer(base):
    ref = base.copy()
    ref.X = np.log1p(ref.X)  # .X is normalised, counts in the layer
    _fit(ref, layer="counts")
    query, explicit, other = ref.copy(), ref.copy(), ref.copy()
    bc.tl.bcnmf_transform(query, ref)
    bc.tl.bcnmf_transform(explicit, ref, layer="counts")
    np.testing.assert_array_equal(query.obsm["X_bcnmf"], explicit.obsm["X_bcnmf"])
    bc.tl.bcnmf_transform(other, ref, layer="X")  # the query's .X, on request
    ratio = query.obsm["X_bcnmf"].sum() / other.obsm["X_bcnmf"].sum()
    assert ratio > 1.5  # counts vs log1p: usage totals far apart
    del query.layers["counts"]
    with pytest.raises(KeyError, match="'counts'"):
        bc.tl.bcnmf_transform(query, ref)


# ------------------------------------------------------------------ bad inputs
BAD = {
    "random_state='abc'": dict(random_state="abc"),
    "random_state=1.5": dict(random_state=1.5),
    "random_state=-1": dict(random_state=-1),
    "tol='1e-5'": dict(tol="1e-5"),
    "tol=-1e-5": dict(tol=-1e-5),  # (tol=None is the default: the model's own tol)
    "device='meta'": dict(device="meta"),
    "key_added='run/1'": dict(key_added="run/1"),
    "alpha='2'": dict(alpha="2"),
    "alpha=nan": dict(alpha=float("nan")),
    "alpha=-1": dict(alpha=-1.0),
    "loss='poisson'": dict(loss="poisson"),
    "n_shared=-1": dict(n_shared=-1),
    "alpha with n_shared=4": dict(alpha=2.0, n_shared=4),
}
MESSAGES = {
    "random_state": "random_state must be",
    "tol": "tol must be a number",
    "device": "Unknown device 'meta'",
    "key_added": "'/'.*h5ad",
    "alpha": "alpha must be",
    "loss": "Unknown loss 'poisson'",
    "n_shared": "n_shared must be",
    "alpha with n_shared": "no effect in the shared-topic model",
}


@pytest.mark.parametrize("case", BAD)
def test_bad_parameters_fail_before_reading(adata, case, monkeypatch):
    import bcnmf_sc.tl._bcnmf as mod

    def no_read(*a, **k):
        raise AssertionError("data read before the parameters were checked")

    monkeypatch.setattr(mod, "prepare_inputs", no_read)
    before = list(adata.obs.columns)
    with pytest.raises(ValueError, match=MESSAGES[case.split("=")[0]]):
        _fit(adata, **BAD[case])
    _unchanged(adata, before)


@pytest.mark.parametrize("case", ["random_state='abc'", "tol=-1e-5", "key_added='run/1'"])
def test_sweep_bad_parameters(adata, case):
    kw = {**BAD[case]}
    with pytest.raises(ValueError, match=MESSAGES[case.split("=")[0]]):
        bc.tl.bcnmf_sweep(adata, "condition", "background", alphas=[1.0], n_topics=[2], **kw)


@pytest.mark.parametrize("where", ["X dense", "layer"])
def test_float16_is_refused(adata, where):
    X16 = adata.X.toarray().astype(np.float16)
    if where == "layer":
        adata.layers["h"] = X16
        kw = dict(layer="h")
    else:
        adata.X = X16
        kw = {}
    with pytest.raises(TypeError, match="float16"):
        _fit(adata, **kw)
    with pytest.raises(TypeError, match="float16"):
        BcNMF(2).fit(X16[:40], X16[40:])


@quiet
@pytest.mark.parametrize(
    "labels",
    [
        pd.Index(["background"]),
        pd.Series(["background"]),
        np.array(["background"]),
        ("background",),
    ],
    ids=["Index", "Series", "ndarray", "tuple"],
)
def test_list_like_labels_work(adata, labels):
    _fit(adata, background=labels)
    assert adata.uns["bcnmf"]["params"]["background"] == ["background"]
    target = pd.Index(["target"])
    _fit(adata, background=labels, target=target)
    assert adata.uns["bcnmf"]["params"]["target"] == ["target"]


def test_mask_var_with_na(adata):
    adata.var["m"] = pd.array([True] * 49 + [None], dtype="boolean")
    with pytest.raises(ValueError, match=r"missing values \(NA\).*fillna"):
        _fit(adata, mask_var="m")


@quiet
def test_duplicated_var_names_in_transform(adata):
    _fit(adata)
    query = adata.copy()
    query.var_names = [adata.var_names[0]] + list(adata.var_names[:-1])
    with pytest.raises(ValueError, match=r"query.*var_names_make_unique"):
        bc.tl.bcnmf_transform(query, adata)
    ref = adata.copy()
    ref.var_names = list(adata.var_names[:-1]) + [adata.var_names[0]]
    with pytest.raises(ValueError, match=r"reference.*var_names_make_unique"):
        bc.tl.bcnmf_transform(adata.copy(), ref)


def test_fit_source_with_a_matrix():
    X = sp.random(10, 5, density=0.5, format="csr", random_state=0)
    with pytest.raises(TypeError, match=re.escape("fit(")):
        BcNMF(2).fit_source(X, X)


# ------------------------------------------------------------------ numerics
def test_huge_values_say_rescale(adata):
    adata.X = adata.X.astype(np.float64) * 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match="too large.*Rescale"):
            _fit(adata)


def test_tiny_values_say_too_small(adata):
    adata.X = adata.X.astype(np.float64) * 1e-30
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "collapsed topics" warning
        with pytest.raises(ValueError, match="too small.*raw counts"):
            _fit(adata, check_counts=False)


@quiet
def test_target_term_above_one_warns(adata):
    with pytest.warns(RuntimeWarning, match="worse than the null model.*alpha too large"):
        _fit(adata, alpha=1e4, max_epochs=20)


@quiet
def test_default_alpha_no_null_warning(adata):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "The fitted topics explain", RuntimeWarning)
        _fit(adata, max_epochs=20)


# ------------------------------------------------------------ property-based
@st.composite
def problems(draw):
    n_t = draw(st.integers(1, 12))
    n_b = draw(st.integers(1, 12))
    g = draw(st.integers(1, 10))
    density = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    dtype = draw(st.sampled_from(["int32", "int64", "float32", "float64", "uint8", "float16"]))
    sparse = draw(st.booleans())
    k = draw(st.integers(1, 4))
    loss = draw(st.sampled_from(["kl", "frobenius"]))
    seed = draw(st.integers(0, 2**16))
    return n_t, n_b, g, density, dtype, sparse, k, loss, seed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_random_small_problems(p):
    n_t, n_b, g, density, dtype, sparse, k, loss, seed = p
    rng = np.random.default_rng(seed)
    X = rng.poisson(3.0, size=(n_t + n_b, g)) * (rng.random((n_t + n_b, g)) < density)
    X = X.astype(dtype)
    a = ad.AnnData(
        X=sp.csr_matrix(X) if sparse and dtype != "float16" else X,
        obs=pd.DataFrame({"c": ["t"] * n_t + ["b"] * n_b}, index=[f"c{i}" for i in range(len(X))]),
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bc.tl.bcnmf(a, "c", "b", n_topics=k, loss=loss, max_epochs=3, progress=False)
    except (ValueError, TypeError, KeyError) as e:
        assert type(e).__module__ == "builtins"
        tb = e.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        assert "bcnmf_sc" in tb.tb_frame.f_code.co_filename, e  # raised by bcnmf-sc
        return
    usage, loadings = a.obsm["X_bcnmf"], a.varm["bcnmf_loadings"]
    for M in (usage, loadings):
        assert np.all(np.isfinite(M)) and np.all(M >= 0)
