"""Tests of the scanpy-style wrapper bcnmf_sc.tl."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData, read_h5ad
from scipy.stats import ttest_ind
from sklearn.metrics import roc_auc_score

import bcnmf_sc as bc
from bcnmf_sc.datasets import simulate
from bcnmf_sc.tl._bcnmf import held_out_cells

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:Topics .* have \\(almost\\) no usage:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:The set_bad function:PendingDeprecationWarning"),
]

FAST = {"n_topics": 3, "max_epochs": 20, "progress": False, "device": "cpu"}
TINY = {"n_topics": 2, "max_epochs": 3, "progress": False, "device": "cpu"}
S = 16  # shared topics of the default model for counts (n_shared="auto", no alpha)
TOPICS = [f"topic_{i}" for i in range(1, 4)] + [f"shared_{i}" for i in range(1, S + 1)]


def _small(n_target=150, n_background=150, n_genes=200, seed=0) -> AnnData:
    return simulate(
        n_target=n_target,
        n_background=n_background,
        n_genes=n_genes,
        n_markers=20,
        n_program_genes=20,
        random_state=seed,
    )


@pytest.fixture(scope="module")
def fitted() -> AnnData:
    """150 target, 150 background and 50 'other' cells (projected, not fitted).

    The default model: 3 target + 16 shared topics; 20% of each group held out.
    """
    adata = _small(n_target=150, n_background=200)
    group = adata.obs["condition"].astype(str).to_numpy().copy()
    group[np.flatnonzero(group == "background")[:50]] = "other"
    adata.obs["group"] = pd.Categorical(group, categories=["background", "other", "target"])
    bc.tl.bcnmf(adata, "group", "background", target="target", **FAST)
    return adata


def _snapshot(adata: AnnData) -> dict:
    X = adata.X
    return {
        "obs": list(adata.obs.columns),
        "obsm": sorted(adata.obsm.keys()),
        "varm": sorted(adata.varm.keys()),
        "uns": sorted(adata.uns.keys()),
        "layers": sorted(adata.layers.keys()),
        "var": list(adata.var.columns),
        "X": X.copy() if X is not None else None,
    }


def _assert_unchanged(adata: AnnData, snap: dict) -> None:
    now = _snapshot(adata)
    for k in ("obs", "obsm", "varm", "uns", "layers", "var"):
        assert now[k] == snap[k], k
    a, b = now["X"], snap["X"]
    assert type(a) is type(b)
    if sp.issparse(a):
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        a, b = a.data, b.data
    np.testing.assert_array_equal(a, b)  # NaN == NaN here


# ------------------------------------------------------------------ outputs
def test_outputs_shapes_and_values(fitted):
    K = 3 + S  # target topics, then the shared ones
    U = fitted.obsm["X_bcnmf"]
    L = fitted.varm["bcnmf_loadings"]
    assert U.shape == (fitted.n_obs, K)
    assert L.shape == (fitted.n_vars, K)
    assert np.all(U >= 0) and np.all(L >= 0)
    np.testing.assert_allclose(L.sum(0), 1.0, rtol=1e-5)
    res = fitted.uns["bcnmf"]
    assert res["topics"] == TOPICS
    assert np.isfinite(res["objective"])
    hist = res["history"]
    assert set(hist) >= {"epoch", "objective", "target", "background"}
    assert len(hist["objective"]) == res["n_epochs"] >= 1


def test_projected_cells_get_usages(fitted):
    other = (fitted.obs["group"] == "other").to_numpy()
    U = fitted.obsm["X_bcnmf"]
    assert other.sum() == 50
    # every projected cell has usage, roughly scaled to its library size
    tot = U[other].sum(1)
    lib = np.asarray(fitted.X[other].sum(1)).ravel()
    assert np.all(tot > 0)
    assert np.corrcoef(tot, lib)[0, 1] > 0.9
    assert fitted.uns["bcnmf"]["params"]["n_projected"] == 50


def test_params_recorded(fitted):
    p = fitted.uns["bcnmf"]["params"]
    assert p["background_key"] == "group"
    assert list(p["background"]) == ["background"]
    assert list(p["target"]) == ["target"]
    assert p["n_topics"] == 3
    assert p["loss"] == "kl"
    assert p["max_epochs"] == 20
    assert p["random_state"] == 0
    # n_shared="auto" -> the shared-topic model, which has no alpha (None: left out)
    assert p["n_shared"] == S and "alpha" not in p
    assert p["tol"] == 5e-5  # tol=None -> the shared model's default, recorded
    assert p["holdout"] == 0.2 and p["n_held_out"] == 30 + 30  # 20% of each group
    assert p["n_target"] == 150 and p["n_background"] == 150
    assert "layer" not in p  # None values are left out (h5ad-friendly)


def test_explicit_alpha_recorded():
    adata = _small(n_target=80, n_background=80, n_genes=120)
    bc.tl.bcnmf(adata, "condition", "background", alpha=0.37, **TINY)
    assert adata.uns["bcnmf"]["params"]["alpha"] == pytest.approx(0.37)
    assert adata.uns["bcnmf"]["params"]["n_shared"] == 0  # an alpha: the contrast
    # the contrast without an alpha: the engine's default alpha, recorded
    bc.tl.bcnmf(adata, "condition", "background", n_shared=0, key_added="c", **TINY)
    assert adata.uns["c"]["params"]["alpha"] == 2.0


def test_enrichment_sorted_and_correct(fitted):
    enr = fitted.uns["bcnmf"]["enrichment"]
    assert list(enr.columns) == [
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
    assert sorted(enr.index) == sorted(TOPICS)
    assert np.all(np.diff(enr["log2fc"].to_numpy()) <= 0)
    assert np.all((enr["pval_adj"] >= enr["pval"] - 1e-15) & (enr["pval_adj"] <= 1))
    # independent AUROC for each topic on usage proportions, of the held-out cells (the
    # shared-topic model's table compares the cells left out of training)
    U = fitted.obsm["X_bcnmf"]
    prop = U / U.sum(1, keepdims=True)
    grp = fitted.obs["group"].to_numpy()
    held = held_out_cells(grp == "target", grp == "background", 0.2, 0)
    assert held.sum() == fitted.uns["bcnmf"]["params"]["n_held_out"] == 60
    sel = (grp != "other") & held
    y = grp[sel] == "target"
    assert y.sum() == 30 and (~y).sum() == 30
    for name, row in enr.iterrows():
        k = TOPICS.index(name)
        assert row["auroc"] == pytest.approx(roc_auc_score(y, prop[sel, k]), abs=1e-9)
        assert row["mean_target"] == pytest.approx(prop[sel][y, k].mean())
        mt, mb = prop[sel][y, k].mean(), prop[sel][~y, k].mean()
        eps = 1e-3 / len(TOPICS)  # the pseudo-count: a thousandth of the mean proportion 1/K
        assert row["log2fc"] == pytest.approx(np.log2((mt + eps) / (mb + eps)), rel=1e-6)
        welch = ttest_ind(prop[sel][y, k], prop[sel][~y, k], equal_var=False).pvalue
        assert row["pval"] == pytest.approx(welch, rel=1e-6, abs=1e-300)
        # enriched: log2fc >= 0.5 and a one-sided Welch test of mean_target > 1.2
        # mean_background (that fold change as the null), Benjamini-Hochberg over topics
        assert row["enriched"] == (row["log2fc"] >= 0.5 and row["pval_enriched_adj"] < 0.05)
        significant = row["log2fc"] > 0 and row["pval_adj"] < 0.05
        assert row["excess"] == pytest.approx(1 - mb / mt if significant else 0.0, abs=1e-12)
        top_users = np.quantile(prop[sel][~y, k], 0.99) < np.quantile(prop[sel][y, k], 0.9)
        confident = row["pval_target_only"] < 0.05  # bootstrap: tests/test_enrichment.py
        assert row["target_only"] == (row["enriched"] and top_users and confident)
    # the target score: proportions weighted by the share of each topic's target usage
    # above the background's (topics used significantly more by the target only)
    weights = np.zeros(prop.shape[1])
    for name, row in enr.iterrows():
        k = TOPICS.index(name)
        mt, mb = prop[sel][y, k].mean(), prop[sel][~y, k].mean()
        if mt > mb and row["pval_adj"] < 0.05:
            weights[k] = 1 - mb / mt
    np.testing.assert_allclose(
        fitted.obs["bcnmf_target_score"].to_numpy(), prop @ weights, atol=1e-8
    )


def test_planted_program_in_most_enriched_topic(fitted):
    best = fitted.uns["bcnmf"]["enrichment"].index[0]
    k = list(fitted.uns["bcnmf"]["topics"]).index(best)
    top = np.argsort(-fitted.varm["bcnmf_loadings"][:, k])[:20]
    prog = (fitted.var["program"] == "program_1").to_numpy()
    assert prog[top].sum() >= 5  # planted genes: 10% of all genes, far more among the top


def test_h5ad_round_trip(fitted, tmp_path):
    path = tmp_path / "fitted.h5ad"
    fitted.write_h5ad(path)
    back = read_h5ad(path)
    np.testing.assert_allclose(back.obsm["X_bcnmf"], fitted.obsm["X_bcnmf"])
    np.testing.assert_allclose(back.varm["bcnmf_loadings"], fitted.varm["bcnmf_loadings"])
    res0, res1 = fitted.uns["bcnmf"], back.uns["bcnmf"]
    assert set(res1) == set(res0)
    for k, v in res0["params"].items():
        got = res1["params"][k]
        if isinstance(v, list):
            assert list(got) == v
        else:
            assert got == v, k
    for k, v in res0["history"].items():
        np.testing.assert_allclose(res1["history"][k], v)
    assert list(res1["topics"]) == res0["topics"]
    assert res1["objective"] == pytest.approx(res0["objective"])
    pd.testing.assert_frame_equal(res1["enrichment"], res0["enrichment"])


# ------------------------------------------------------------- copy / views
def test_copy_returns_new_and_leaves_original():
    adata = _small(n_target=80, n_background=80, n_genes=120)
    snap = _snapshot(adata)
    out = bc.tl.bcnmf(adata, "condition", "background", copy=True, **TINY)
    assert isinstance(out, AnnData) and out is not adata
    assert "X_bcnmf" in out.obsm and "bcnmf" in out.uns
    _assert_unchanged(adata, snap)
    assert bc.tl.bcnmf(adata, "condition", "background", **TINY) is None
    assert "X_bcnmf" in adata.obsm
    np.testing.assert_allclose(adata.obsm["X_bcnmf"], out.obsm["X_bcnmf"])


def test_view_input_with_copy():
    adata = _small(n_target=80, n_background=80, n_genes=120)
    view = adata[::2]
    assert view.is_view
    out = bc.tl.bcnmf(view, "condition", "background", copy=True, key_added="v", **TINY)
    assert out.obsm["X_v"].shape == (adata.n_obs // 2, 2 + S)
    assert "X_v" not in adata.obsm


# -------------------------------------------------------------- categories
def test_string_column_and_default_target():
    adata = _small(n_target=80, n_background=80, n_genes=120)
    adata.obs["cond"] = adata.obs["condition"].astype(str).replace({"target": "treated"})
    assert adata.obs["cond"].dtype == object
    bc.tl.bcnmf(adata, "cond", "background", **TINY)
    p = adata.uns["bcnmf"]["params"]
    assert list(p["target"]) == ["treated"]  # default: every other category
    assert p["n_target"] == 80 and p["n_background"] == 80


def test_boolean_column_true_is_target():
    adata = _small(n_target=60, n_background=100, n_genes=120)
    adata.obs["is_treated"] = (adata.obs["condition"] == "target").to_numpy()
    bc.tl.bcnmf(adata, "is_treated", **TINY)
    p = adata.uns["bcnmf"]["params"]
    assert p["n_target"] == 60 and p["n_background"] == 100
    assert list(p["target"]) == [True] and list(p["background"]) == [False]


def test_list_of_background_categories():
    adata = _small(n_target=80, n_background=120, n_genes=120)
    lab = adata.obs["condition"].astype(str).to_numpy().copy()
    lab[np.flatnonzero(lab == "background")[:40]] = "ctrl_b"
    lab[lab == "background"] = "ctrl_a"
    adata.obs["lab"] = pd.Categorical(lab)
    bc.tl.bcnmf(adata, "lab", ["ctrl_a", "ctrl_b"], **TINY)
    p = adata.uns["bcnmf"]["params"]
    assert sorted(p["background"]) == ["ctrl_a", "ctrl_b"]
    assert p["n_background"] == 120 and p["n_target"] == 80 and p["n_projected"] == 0


# ---------------------------------------------------------- genes, layers
def test_mask_var_highly_variable_default():
    adata = _small(n_target=80, n_background=80, n_genes=120)
    hv = np.zeros(adata.n_vars, dtype=bool)
    hv[::2] = True
    adata.var["highly_variable"] = hv
    bc.tl.bcnmf(adata, "condition", "background", **TINY)
    L = adata.varm["bcnmf_loadings"]
    assert np.all(L[~hv] == 0) and np.all(L[hv].sum(1) > 0)
    p = adata.uns["bcnmf"]["params"]
    assert p["mask_var"] == "highly_variable" and p["n_genes_used"] == hv.sum()
    custom = np.arange(adata.n_vars) < 100
    bc.tl.bcnmf(adata, "condition", "background", mask_var=custom, key_added="c", **TINY)
    assert np.all(adata.varm["c_loadings"][~custom] == 0)


def test_formats_give_the_same_fit():
    adata = _small(n_target=80, n_background=80, n_genes=120)
    adata.layers["csc"] = sp.csc_matrix(adata.X)
    adata.layers["dense"] = adata.X.toarray()
    # integer counts: same values as float64 (the engine's result depends on the float width)
    adata.layers["csr64"] = adata.X.astype(np.float64)
    adata.layers["dense_int"] = adata.X.toarray().astype(np.int64)
    for key, layer in [
        ("a", None),
        ("b", "csc"),
        ("c", "dense"),
        ("d", "csr64"),
        ("e", "dense_int"),
    ]:
        bc.tl.bcnmf(adata, "condition", "background", layer=layer, key_added=key, **TINY)
    for key, ref in [("b", "a"), ("c", "a"), ("e", "d")]:
        np.testing.assert_allclose(
            adata.varm[f"{key}_loadings"], adata.varm[f"{ref}_loadings"], rtol=1e-5, atol=1e-9
        )
        np.testing.assert_allclose(
            adata.obsm[f"X_{key}"], adata.obsm[f"X_{ref}"], rtol=1e-4, atol=1e-6
        )
    assert adata.uns["e"]["params"]["layer"] == "dense_int"


def test_backed_anndata_is_read_not_written(tmp_path):
    import scanpy as sc

    adata = _small(n_target=80, n_background=80, n_genes=120)
    path = tmp_path / "backed.h5ad"
    adata.write_h5ad(path)
    before = path.read_bytes()
    backed = sc.read_h5ad(path, backed="r")
    bc.tl.bcnmf(backed, "condition", "background", **TINY)
    bc.tl.bcnmf(adata, "condition", "background", **TINY)
    np.testing.assert_allclose(backed.varm["bcnmf_loadings"], adata.varm["bcnmf_loadings"])
    np.testing.assert_allclose(backed.obsm["X_bcnmf"], adata.obsm["X_bcnmf"])
    backed.file.close()
    assert path.read_bytes() == before


# ------------------------------------------------------------- bad inputs
def _bad_cases():
    def neg(a):
        a.X = a.X.copy()
        a.X.data[0] = -1.0

    def nan(a):
        a.X = a.X.copy()
        a.X.data[0] = np.nan

    def inf(a):
        a.X = a.X.copy()
        a.X.data[0] = np.inf

    def empty(a):
        a.obs["grp"] = pd.Categorical(["target"] * a.n_obs, categories=["target", "background"])

    return [
        ("unknown key", None, {"background_key": "nope"}, KeyError, "condition"),
        ("unknown category", None, {"background": "ctrl"}, ValueError, "background"),
        ("unknown target", None, {"target": "x"}, ValueError, "available"),
        ("no background", None, {"background": None}, ValueError, "background"),
        ("empty group", empty, {"background_key": "grp"}, ValueError, "no cells"),
        ("negative", neg, {}, ValueError, "raw counts"),
        ("negative frob", neg, {"loss": "frobenius"}, ValueError, "negative"),
        ("nan", nan, {}, ValueError, "NaN"),
        ("inf", inf, {}, ValueError, "infinite"),
        ("unknown layer", None, {"layer": "counts"}, KeyError, "counts"),
        ("too many topics", None, {"n_topics": 500}, ValueError, "too large"),
        ("bad n_topics", None, {"n_topics": 0}, ValueError, "n_topics"),
        ("bad loss", None, {"loss": "l1"}, ValueError, "loss"),
        ("bad alpha", None, {"alpha": -1.0}, ValueError, "alpha"),
        ("bad mask", None, {"mask_var": "nope"}, KeyError, "mask_var"),
        ("overlap", None, {"target": ["target", "background"]}, ValueError, "both"),
    ]


@pytest.mark.parametrize(
    ("name", "modify", "kwargs", "exc", "match"), _bad_cases(), ids=[c[0] for c in _bad_cases()]
)
def test_bad_input_leaves_adata_unchanged(name, modify, kwargs, exc, match):
    adata = _small(n_target=60, n_background=60, n_genes=120)
    adata.uns["keep"] = {"a": 1}
    if modify is not None:
        modify(adata)
    call = {"background_key": "condition", "background": "background", **TINY}
    call.update(kwargs)
    snap = _snapshot(adata)
    with pytest.raises(exc, match=match):
        bc.tl.bcnmf(adata, **call)
    _assert_unchanged(adata, snap)
    assert "bcnmf" not in adata.uns and "X_bcnmf" not in adata.obsm


# -------------------------------------------------------------- transform
def test_transform_reproduces_usages(fitted):
    query = fitted.copy()
    del query.obsm["X_bcnmf"]
    # shuffle gene order: matching is by name
    query = query[:, np.random.default_rng(1).permutation(query.n_vars)].copy()
    bc.tl.bcnmf_transform(query, fitted)
    U0, U1 = fitted.obsm["X_bcnmf"], query.obsm["X_bcnmf"]
    assert U1.shape == U0.shape
    for k in range(U0.shape[1]):
        assert np.corrcoef(U0[:, k], U1[:, k])[0, 1] > 0.9
    s0, s1 = fitted.obs["bcnmf_target_score"], query.obs["bcnmf_target_score"]
    if (fitted.uns["bcnmf"]["enrichment"]["excess"] > 0).any():
        assert np.corrcoef(s0, s1)[0, 1] > 0.9
    else:
        assert (s1 == 0).all()


def test_transform_writes_what_pl_and_tl_need(fitted, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    query = AnnData(X=fitted.X[:, ::-1].copy(), obs=fitted.obs[["cell_type"]].copy())
    query.var_names = fitted.var_names[::-1]
    query.obsm["X_umap"] = np.random.default_rng(0).normal(size=(query.n_obs, 2))
    bc.tl.bcnmf_transform(query, fitted)
    ref = fitted.uns["bcnmf"]
    res = query.uns["bcnmf"]
    assert res["topics"] == list(ref["topics"])
    assert res["params"]["projected"] is True
    assert res["params"]["n_genes_matched"] == int((fitted.varm["bcnmf_loadings"].sum(1) > 0).sum())
    assert res["params"]["n_shared"] == ref["params"]["n_shared"] == S  # the model's params
    assert "alpha" not in res["params"] and "alpha" not in ref["params"]
    pd.testing.assert_frame_equal(res["enrichment"], ref["enrichment"])
    # the loadings follow the query's gene order
    np.testing.assert_allclose(
        query.varm["bcnmf_loadings"], fitted.varm["bcnmf_loadings"][::-1], rtol=1e-6, atol=1e-12
    )
    # what used to raise KeyError on a query
    table = bc.tl.topic_enrichment(query, "cell_type")
    assert len(table) == query.obs["cell_type"].nunique() * (3 + S)
    # the plots draw the target topics by default, as on the reference
    assert len(bc.pl.topics(query, show=False)) == 3
    assert len(bc.pl.usage(query, groupby="cell_type", show=False)) == 3
    bc.pl.topic_enrichment(query, groupby="cell_type", show=False)
    bc.pl.gene_loadings(query, n_genes=3, show=False)
    bc.pl.training(query, show=False)
    pd.testing.assert_frame_equal(
        bc.get.top_genes(query, n_genes=5), bc.get.top_genes(fitted, n_genes=5)
    )
    plt.close("all")
    query.write_h5ad(tmp_path / "q.h5ad")
    back = read_h5ad(tmp_path / "q.h5ad")
    assert list(back.uns["bcnmf"]["topics"]) == res["topics"]
    assert len(bc.tl.topic_enrichment(back, "cell_type")) == len(table)


def test_transform_needs_half_the_genes(fitted):
    query = fitted[:, :80].copy()  # 40% of the genes
    with pytest.raises(ValueError, match="50%"):
        bc.tl.bcnmf_transform(query, fitted)
    assert "X_bcnmf" in query.obsm  # the copied, untouched result
    partial = fitted[:, :150].copy()
    del partial.obsm["X_bcnmf"]
    bc.tl.bcnmf_transform(partial, fitted)
    assert partial.obsm["X_bcnmf"].shape == (fitted.n_obs, 3 + S)


# ------------------------------------------------------------- enrichment
def test_topic_enrichment_by_group(fitted, tmp_path):
    adata = fitted.copy()
    df = bc.tl.topic_enrichment(adata, "cell_type")
    types = list(adata.obs["cell_type"].cat.categories)
    assert sorted(df["group"].unique()) == sorted(types)
    assert len(df) == len(types) * (3 + S)
    for _, sub in df.groupby("group"):
        assert np.all(np.diff(sub["log2fc"].to_numpy()) <= 0)
        assert sorted(sub["topic"]) == sorted(TOPICS)
    stored = adata.uns["bcnmf"]["enrichment_cell_type"]
    pd.testing.assert_frame_equal(stored, df)
    # a specific reference: target vs background reproduces the bcnmf table, which
    # compares the held-out cells
    grp = adata.obs["group"].to_numpy()
    held = held_out_cells(grp == "target", grp == "background", 0.2, 0)
    df2 = bc.tl.topic_enrichment(
        adata[held].copy(), "group", groups="target", reference="background"
    )
    enr = adata.uns["bcnmf"]["enrichment"]
    np.testing.assert_allclose(df2["auroc"].to_numpy(), enr["auroc"].to_numpy())
    np.testing.assert_allclose(df2["pval"].to_numpy(), enr["pval"].to_numpy())
    assert list(df2["topic"]) == list(enr.index)
    adata.write_h5ad(tmp_path / "e.h5ad")
    back = read_h5ad(tmp_path / "e.h5ad")
    pd.testing.assert_frame_equal(back.uns["bcnmf"]["enrichment_cell_type"], df)
    with pytest.raises(ValueError, match="reference"):
        bc.tl.topic_enrichment(adata, "group", reference="nope")


# ---------------------------------------------------------------- warnings
@pytest.mark.parametrize("consensus", [False, True])
def test_warnings_point_at_the_callers_line(consensus):
    adata = _small(n_target=80, n_background=80, n_genes=120)
    kwargs = {"n_init": 2, "consensus": True} if consensus else {}
    with pytest.warns(bc.ConvergenceWarning) as record:
        bc.tl.bcnmf(adata, "condition", "background", **{**TINY, "max_epochs": 1}, **kwargs)
    ours = [w for w in record if w.filename.startswith(str(Path(bc.__file__).parent))]
    assert ours == []  # none points into the package
    conv = [w for w in record if issubclass(w.category, bc.ConvergenceWarning)]
    assert conv and {w.filename for w in conv} == {__file__}


def test_at_user_line_passes_other_warnings_on():
    import warnings

    from bcnmf_sc._warnings import at_user_line

    @at_user_line
    def numpy_warns():
        return np.log(np.zeros(1))  # numpy's RuntimeWarning: its own location

    with pytest.warns(RuntimeWarning, match="divide by zero") as record:
        numpy_warns()
    assert record[0].filename == __file__  # numpy reports at the line that called np.log

    with warnings.catch_warnings():
        warnings.simplefilter("error", bc.ConvergenceWarning)  # filters still apply
        with pytest.raises(bc.ConvergenceWarning):
            bc.tl.bcnmf(
                _small(n_target=60, n_background=60, n_genes=100),
                "condition",
                "background",
                **{**TINY, "max_epochs": 1},
            )
