"""Tests of tl.bcnmf_sweep (choosing alpha and K), consensus topics and pl.sweep."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData, read_h5ad
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, roc_auc_score

import bcnmf_sc as bc
from bcnmf_sc.datasets import simulate
from bcnmf_sc.tl._consensus import consensus_components, relative_loss, restart_seeds
from bcnmf_sc.tl._sweep import _COLUMNS, recommend

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:Topics .* have \\(almost\\) no usage:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:FigureCanvasAgg is non-interactive:UserWarning"),
]

# Small and quick: minibatch updates (the full-batch solver re-solves the background at
# every step) and few epochs. A strong planted program (15 genes, 5-fold, in half of the
# target cells) so that these short fits find it.
FAST = {
    "max_epochs": 20,
    "engine_kwargs": {"solver": "minibatch"},
    "progress": False,
    "device": "cpu",
}
ENGINE = {"max_epochs": 20, "solver": "minibatch", "device": "cpu"}
GRID = {"alphas": (0, 2), "n_topics": (2, 4), "n_init": 2}


def _sim(seed: int = 0) -> AnnData:
    return simulate(
        n_target=150,
        n_background=150,
        n_genes=100,
        n_markers=10,
        n_program_genes=15,
        program_fold=5.0,
        random_state=seed,
    )


def _split(adata: AnnData):
    t = (adata.obs["condition"] == "target").to_numpy()
    return adata.X[t], adata.X[~t], t


def _cosine_matching(A: np.ndarray, B: np.ndarray) -> float:
    """Mean cosine similarity of Hungarian-matched topics (rows)."""
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    C = A @ B.T
    r, c = linear_sum_assignment(-C)
    return float(C[r, c].mean())


def _ari(adata: AnnData, score) -> float:
    t = (adata.obs["condition"] == "target").to_numpy()
    s = np.asarray(score, dtype=float)[t]
    labels = KMeans(2, n_init=10, random_state=0).fit_predict(s[:, None])
    return adjusted_rand_score(adata.obs["program_1"].to_numpy()[t], labels)


@pytest.fixture(scope="module")
def swept() -> AnnData:
    adata = _sim()
    bc.tl.bcnmf_sweep(adata, "condition", "background", **GRID, **FAST)
    return adata


# ------------------------------------------------------------------ the table
def test_table_shape_columns_and_identities(swept):
    res = swept.uns["bcnmf_sweep"]
    assert set(res) == {"table", "recommended", "rule", "params"}
    tab = res["table"]
    assert list(tab.columns) == _COLUMNS
    assert len(tab) == 4
    assert list(zip(tab["n_topics"], tab["alpha"], strict=True)) == [
        (2, 0.0),
        (2, 2.0),
        (4, 0.0),
        (4, 2.0),
    ]
    np.testing.assert_allclose(
        tab["objective"], tab["target_term"] - tab["alpha"] * tab["background_term"], rtol=1e-9
    )
    np.testing.assert_allclose(tab["background_explained"], 1 - tab["background_term"])
    assert tab["stability"].between(0, 1).all()
    assert tab["stability_enriched"].dropna().between(0, 1).all()
    assert (tab["stability_enriched"].isna() == (tab["n_enriched"] == 0)).all()
    assert (tab["n_stable_enriched"] <= tab["n_enriched"]).all()
    assert tab["heldout_target"].between(0, 1.5).all()
    assert tab["recommended"].sum() == 1
    row = tab[tab["recommended"]].iloc[0]
    assert res["recommended"] == {"alpha": row["alpha"], "n_topics": row["n_topics"]}
    p = res["params"]
    assert list(p["alphas"]) == [0.0, 2.0] and list(p["n_topics"]) == [2, 4]
    assert p["n_init"] == 2 and list(p["seeds"]) == restart_seeds(0, 2)
    assert p["engine_solver"] == "minibatch"
    # more contrast explains less of the background
    for k in (2, 4):
        sub = tab[tab["n_topics"] == k].set_index("alpha")
        assert sub.at[2.0, "background_explained"] < sub.at[0.0, "background_explained"]


def test_values_agree_with_an_independent_fit(swept):
    """Refit one setting with the recorded seed: the same objective, enrichment, stability."""
    tab = swept.uns["bcnmf_sweep"]["table"]
    row = tab[(tab["alpha"] == 2.0) & (tab["n_topics"] == 4)].iloc[0]
    X, Y, _ = _split(swept)
    seeds = list(swept.uns["bcnmf_sweep"]["params"]["seeds"])
    fits = [bc.BcNMF(4, alpha=2.0, random_state=s, n_init=1, **ENGINE).fit(X, Y) for s in seeds]
    m = fits[int(np.argmin([f.objective_ for f in fits]))]
    assert int(row["random_state"]) == seeds[fits.index(m)]
    assert m.objective_ == pytest.approx(row["objective"], rel=1e-6)
    assert m.background_term_ == pytest.approx(row["background_term"], rel=1e-6)
    # enrichment of usage proportions, computed here from scratch
    U = np.vstack([m.usage_target_, m.usage_background_])
    P = U / U.sum(1, keepdims=True)
    y = np.r_[np.ones(X.shape[0], bool), np.zeros(Y.shape[0], bool)]
    eps = 1e-3 / 4  # the table's pseudo-count, a thousandth of the mean proportion 1/K
    log2fc = np.log2((P[y].mean(0) + eps) / (P[~y].mean(0) + eps))
    aurocs = [roc_auc_score(y, P[:, k]) for k in range(4)]
    assert row["max_log2fc"] == pytest.approx(log2fc.max(), rel=1e-6)
    assert row["best_auroc"] == pytest.approx(max(aurocs), rel=1e-9)
    assert row["median_auroc"] == pytest.approx(np.median(aurocs), rel=1e-9)
    # stability: two restarts, so the mean cosine of their matched topics
    stab = _cosine_matching(fits[0].components_, fits[1].components_)
    assert row["stability"] == pytest.approx(stab, abs=1e-6)
    # the held-out loss uses the engine's scaling: on the training cells it is target_term
    rel = relative_loss(X, m.usage_target_, m.components_, loss="kl")
    assert rel == pytest.approx(m.target_term_, rel=1e-5)


def test_recommended_setting_is_contrastive_and_recovers_the_program(swept):
    res = swept.uns["bcnmf_sweep"]
    rec = res["recommended"]
    assert rec["alpha"] > 0 and res["rule"] == "contrastive"
    tab = res["table"]
    assert not tab.loc[tab["alpha"] == 0, "recommended"].any()
    # the user's next step: fit the recommended setting (consensus of the same seeds)
    adata = swept.copy()
    bc.tl.bcnmf(adata, "condition", "background", **rec, n_init=2, consensus=True, **FAST)
    assert _ari(adata, adata.obs["bcnmf_target_score"]) >= 0.8


def test_h5ad_round_trip(swept, tmp_path):
    path = tmp_path / "swept.h5ad"
    swept.write_h5ad(path)
    back = read_h5ad(path).uns["bcnmf_sweep"]
    res = swept.uns["bcnmf_sweep"]
    pd.testing.assert_frame_equal(back["table"], res["table"])
    assert back["recommended"]["alpha"] == res["recommended"]["alpha"]
    assert back["recommended"]["n_topics"] == res["recommended"]["n_topics"]
    assert back["rule"] == res["rule"]
    assert list(back["params"]["seeds"]) == list(res["params"]["seeds"])


def test_heldout_zero_skips_the_heldout_fits():
    adata = _sim(1)
    tab = bc.tl.bcnmf_sweep(
        adata,
        "condition",
        "background",
        alphas=[2],
        n_topics=[2],
        n_init=2,
        heldout=0,
        key_added="sw",
        **{**FAST, "max_epochs": 3},
    )
    assert tab["heldout_target"].isna().all()
    assert adata.uns["sw"]["table"] is tab
    assert adata.uns["sw"]["recommended"] == {"alpha": 2.0, "n_topics": 2}


# ---------------------------------------------------------- the rule, on tables
def _table(rows) -> pd.DataFrame:
    cols = ["alpha", "n_topics", "n_stable_enriched", "target_score_effect"]
    df = pd.DataFrame(rows, columns=cols)
    df.index = df.index.astype(str)
    return df


def test_rule_never_prefers_alpha_zero_over_a_stable_contrastive_topic():
    df = _table([(0, 2, 2, 0.9), (1, 2, 1, 0.2), (2, 4, 1, 0.3)])
    pick, step = recommend(df)
    assert step == "contrastive" and df.loc[pick, "alpha"] == 2


def test_rule_tolerance_prefers_fewer_topics_then_smaller_alpha():
    df = _table([(2, 8, 1, 0.30), (3, 4, 1, 0.28), (2, 4, 1, 0.275), (1, 4, 0, 0.5)])
    pick, _ = recommend(df, tolerance=0.1)
    assert (df.loc[pick, "alpha"], df.loc[pick, "n_topics"]) == (2, 4)
    pick, _ = recommend(df, tolerance=0.0)
    assert df.loc[pick, "n_topics"] == 8


def test_rule_fallbacks():
    df = _table([(0, 2, 1, 0.2), (2, 2, 0, 0.3)])
    pick, step = recommend(df)
    assert step == "plain" and df.loc[pick, "alpha"] == 0
    df = _table([(0, 2, 0, 0.0), (1, 2, 0, 0.1), (2, 2, 0, 0.2)])
    pick, step = recommend(df)
    assert step == "none" and df.loc[pick, "alpha"] == 2


# --------------------------------------------------------------- consensus
@pytest.fixture(scope="module")
def consensus_runs() -> dict:
    """Consensus and single fits with two random_states each (random starts, as cNMF).

    The contrast (``n_shared=0``): test_consensus_outputs refits its restarts with
    BcNMF and recomputes their consensus (the shared-topic model's consensus is tested
    in test_shared_topics.py).
    """
    adata = _sim()
    kw = {**FAST, "n_shared": 0, "engine_kwargs": {"solver": "minibatch", "init": "random"}}
    out = {}
    for rs in (0, 1):
        for name, extra in (("single", {}), ("consensus", {"n_init": 3, "consensus": True})):
            ad = adata.copy()
            bc.tl.bcnmf(ad, "condition", "background", n_topics=4, random_state=rs, **extra, **kw)
            out[name, rs] = ad
    return out


def test_consensus_topics_are_more_stable_than_single_runs(consensus_runs):
    def matching(name):
        A, B = (consensus_runs[name, rs].varm["bcnmf_loadings"].T for rs in (0, 1))
        return _cosine_matching(A, B)

    assert matching("consensus") > matching("single")


def test_consensus_outputs(consensus_runs):
    ad = consensus_runs["consensus", 0]
    res = ad.uns["bcnmf"]
    enr = res["enrichment"]
    assert list(enr.columns)[-1] == "stability"
    assert enr["stability"].between(0, 1).all()
    cons = res["consensus"]
    np.testing.assert_allclose(
        cons["stability"], enr["stability"].reindex(res["topics"]).to_numpy()
    )
    assert len(cons["objectives"]) == 3 and 0 <= cons["reference"] < 3
    assert np.all((cons["n_kept"] >= 1) & (cons["n_kept"] <= 3))
    assert res["params"]["consensus"] is True or res["params"]["consensus"] == 1
    assert list(res["params"]["seeds"]) == restart_seeds(0, 3)
    L = ad.varm["bcnmf_loadings"]
    np.testing.assert_allclose(L.sum(0), 1.0, rtol=1e-9)
    assert ad.obsm["X_bcnmf"].shape == (ad.n_obs, 4) and np.all(ad.obsm["X_bcnmf"] >= 0)
    assert np.isfinite(res["objective"])
    # the written loadings are the consensus of the restarts refitted here
    X, Y, _ = _split(ad)
    eng = {**ENGINE, "n_shared": 0, "init": "random"}
    fits = [bc.BcNMF(4, random_state=s, **eng).fit(X, Y) for s in restart_seeds(0, 3)]
    np.testing.assert_allclose([f.objective_ for f in fits], cons["objectives"], rtol=1e-9)
    expected = consensus_components([f.components_ for f in fits], reference=cons["reference"])
    np.testing.assert_allclose(L.T, expected["components"], atol=1e-12)
    # usages are refitted to the consensus topics (the same cells in one batch: the
    # solver stops on the batch's loss). From the very same float64 topics: the loadings
    # written to .varm agree with them to 1e-17, but a 1-ulp change of a float32 loading
    # can move the step at which the solve stops, and with it usages near zero
    _, _, t = _split(ad)
    U = bc.BcNMF.from_components(expected["components"], device="cpu").transform(X)
    np.testing.assert_allclose(ad.obsm["X_bcnmf"][t], U, rtol=1e-4, atol=1e-6)  # float32
    # a single run has no stability column
    assert "stability" not in consensus_runs["single", 0].uns["bcnmf"]["enrichment"]
    assert "consensus" not in consensus_runs["single", 0].uns["bcnmf"]


def test_consensus_components_drops_outliers_and_reports_stability():
    rng = np.random.default_rng(0)
    base = rng.gamma(1.0, size=(3, 50))
    runs = [base * rng.uniform(0.95, 1.05, size=base.shape) for _ in range(4)]
    runs = [r[rng.permutation(3)] for r in runs]  # each restart lists topics in its own order
    odd = runs[3].copy()
    odd[0] = rng.gamma(1.0, size=50)  # one restart replaces a topic by an artefact
    runs[3] = odd
    res = consensus_components(runs, reference=0)
    assert res["components"].shape == (3, 50)
    np.testing.assert_allclose(res["components"].sum(1), 1.0)
    assert res["kept"].sum() == 11  # the artefact is dropped, everything else kept
    # its consensus topic is less stable than the others
    k = int(np.argmin(res["stability"]))
    assert res["stability"][k] < 0.95 <= np.delete(res["stability"], k).min()
    truth = base / base.sum(1, keepdims=True)
    assert _cosine_matching(res["components"], truth) > 0.999


# ------------------------------------------------------------------ pl.sweep
def test_pl_sweep_draws_and_marks_the_recommendation(swept):
    before = sorted(swept.uns["bcnmf_sweep"])
    axes = bc.pl.sweep(swept, show=False)
    assert isinstance(axes, list) and len(axes) == 4
    assert [a.get_title() for a in axes] == [
        "target_score_effect",
        "background_explained",
        "stability",
        "heldout_target",
    ]
    tab = swept.uns["bcnmf_sweep"]["table"]
    rec = swept.uns["bcnmf_sweep"]["recommended"]
    row = tab[tab["recommended"]].iloc[0]
    for a in axes:
        labels = [ln.get_label() for ln in a.lines]
        assert labels == ["K=2", "K=4", "recommended"]
        star = a.lines[-1]
        np.testing.assert_allclose(star.get_xdata(), [rec["alpha"]])
        np.testing.assert_allclose(star.get_ydata(), [row[a.get_title()]])
        k2 = a.lines[0]
        sub = tab[tab["n_topics"] == 2].sort_values("alpha")
        np.testing.assert_allclose(k2.get_ydata(), sub[a.get_title()])
    fig, ax = plt.subplots()
    assert bc.pl.sweep(swept, metrics="max_log2fc", ax=ax, show=False) == [ax]
    fig = bc.pl.sweep(swept, metrics=["n_enriched"], return_fig=True, show=False)
    assert isinstance(fig, Figure) and isinstance(fig.axes[0], Axes)
    assert sorted(swept.uns["bcnmf_sweep"]) == before
    plt.close("all")


def test_pl_sweep_errors(swept):
    with pytest.raises(KeyError, match="run bcnmf_sc.tl.bcnmf_sweep"):
        bc.pl.sweep(swept, key="nothing", show=False)
    with pytest.raises(ValueError, match="Unknown metric"):
        bc.pl.sweep(swept, metrics="ari", show=False)
    with pytest.raises(ValueError, match="single metric"):
        _, ax = plt.subplots()
        bc.pl.sweep(swept, ax=ax, show=False)
    plt.close("all")


# ------------------------------------------------------------------ bad input
def _state(adata: AnnData) -> tuple:
    return (list(adata.obs.columns), sorted(adata.obsm), sorted(adata.varm), sorted(adata.uns))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alphas": ()}, "alphas is empty"),
        ({"alphas": (1, -0.5)}, "alphas must be finite numbers >= 0"),
        ({"alphas": (np.nan,)}, "alphas must be finite numbers >= 0"),
        ({"n_topics": []}, "n_topics is empty"),
        ({"n_topics": (2, 0)}, "n_topics must be integers >= 1"),
        ({"n_topics": (2, 500)}, "n_topics=500 is too large"),
        ({"n_init": 1}, "n_init must be an integer >= 2"),
        ({"heldout": 0.9}, "heldout must be a fraction"),
        ({"min_stability": 2}, "min_stability must be in"),
        ({"tolerance": 1.0}, "tolerance must be in"),
        ({"engine_kwargs": {"alpha": 1}}, "engine_kwargs cannot set"),
        ({"engine_kwargs": {"colour": 1}}, "unknown BcNMF parameter"),
        ({"engine_kwargs": {"solver": "sgd"}}, "Unknown solver"),
        ({"loss": "l1"}, "Unknown loss"),
        ({"key_added": ""}, "key_added must be"),
    ],
)
def test_sweep_bad_inputs(kwargs, match):
    adata = _sim()
    before = _state(adata)
    kw = {**GRID, **FAST, **kwargs}
    with pytest.raises(ValueError, match=match):
        bc.tl.bcnmf_sweep(adata, "condition", "background", **kw)
    assert _state(adata) == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_init": 1, "consensus": True}, "n_init must be an integer >= 2"),
        ({"engine_kwargs": {"n_init": 3}}, "engine_kwargs cannot set"),
    ],
)
def test_bcnmf_consensus_bad_inputs(kwargs, match):
    adata = _sim()
    before = _state(adata)
    with pytest.raises(ValueError, match=match):
        bc.tl.bcnmf(adata, "condition", "background", n_topics=2, **{**FAST, **kwargs})
    assert _state(adata) == before


def test_sweep_streams_backed_data_and_matches_in_memory(tmp_path):
    # a backed AnnData is read through the same row sources as tl.bcnmf: never into
    # memory, and the same table as from the data in memory
    adata = _sim()
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    path = tmp_path / "sim.h5ad"
    adata.write_h5ad(path)
    grid = {"alphas": (2,), "n_topics": (2,), "n_init": 2, "heldout": 0.1}
    mem = bc.tl.bcnmf_sweep(adata, "condition", "background", **grid, **FAST)
    backed = read_h5ad(path, backed="r")
    disk = bc.tl.bcnmf_sweep(backed, "condition", "background", **grid, **FAST)
    assert backed.isbacked
    num = [c for c in mem.columns if c != "converged"]
    pd.testing.assert_frame_equal(disk[num], mem[num], rtol=1e-6)
    backed.file.close()


def test_heldout_loss_is_finite_when_a_gene_has_no_training_counts():
    """A gene with counts only in held-out cells used to make the measure 0 (inf null)."""
    from bcnmf_sc import BcNMF
    from bcnmf_sc._engine import InMemoryRows
    from bcnmf_sc.tl._sweep_measures import heldout_loss

    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.poisson(2.0, size=(60, 30)).astype(float))
    Y = sp.csr_matrix(rng.poisson(2.0, size=(40, 30)).astype(float))
    X = X.tolil()
    X[:40, 0] = 0  # gene 0: no counts in the training target cells ...
    X[40:, 0] = 5  # ... and counts in every held-out cell
    X = X.tocsr()
    train, test = InMemoryRows(X[:40]), InMemoryRows(X[40:])
    # the sweep's model, the contrast (its full-batch solver)
    model = BcNMF(2, n_shared=0, solver="full", max_epochs=20, random_state=0).fit_source(
        train, InMemoryRows(Y)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no divide-by-zero either
        value = heldout_loss(model, train, test, "kl")
    assert np.isfinite(value) and 0 < value < 1.5
    # the same as a direct computation with the smoothed null profile
    usage = model.transform(X[40:])
    M = usage @ model.components_
    T = X[40:].toarray()
    prof = np.asarray(X[:40].sum(0)).ravel() + 0.5
    N = T.sum(1, keepdims=True) * prof / prof.sum()

    def kl(A, B):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(np.where(A > 0, A * np.log(A / B), 0.0) - A + B)

    assert value == pytest.approx(kl(T, M) / kl(T, N), rel=1e-4)
