"""The shared-topic model (``n_shared > 0``): engine rules, recovery, calibrated enrichment."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import bcnmf_sc as bc
from bcnmf_sc import BcNMF
from bcnmf_sc._engine.problem import DEFAULT_ALPHA, DEFAULT_SHARED, Group, resolve_model
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
    with pytest.raises(ValueError, match="n_shared must be 'auto' or an integer >= 0, got -1"):
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
        assert len(uns["programs"]) == 0 and ad.obsm["bcnmf_programs"].shape == (ad.n_obs, 0)
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
    # consensus=True with shared topics, refused before, works now (see
    # test_tl_consensus_with_shared_topics)
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


# ------------------------------------------------- the default model (n_shared="auto")
def test_resolve_model_rules():
    assert (DEFAULT_SHARED, DEFAULT_ALPHA) == (16, 2.0)
    # "auto": shared topics for counts without an alpha; the contrast otherwise
    assert resolve_model("auto", None, "kl") == (16, None)
    assert resolve_model("auto", 0.5, "kl") == (0, 0.5)
    assert resolve_model("auto", 0.0, "kl") == (0, 0.0)  # alpha=0 is an alpha: plain NMF
    assert resolve_model("auto", None, "frobenius") == (0, DEFAULT_ALPHA)
    assert resolve_model("auto", 1.5, "frobenius") == (0, 1.5)
    # explicit n_shared: as given; the contrast's alpha defaults to DEFAULT_ALPHA
    assert resolve_model(0, None, "kl") == (0, DEFAULT_ALPHA)
    assert resolve_model(4, None, "kl") == (4, None)
    for alpha in (2.0, 0.0):
        with pytest.raises(ValueError, match="pass n_shared=0 with it"):
            resolve_model(4, alpha, "kl")
    # the estimator resolves the same way, and refuses the clash when fitting
    assert BcNMF(2).resolved_model() == (16, None)
    assert BcNMF(2, alpha=1.0).resolved_model() == (0, 1.0)
    assert BcNMF(2, loss="frobenius").resolved_model() == (0, DEFAULT_ALPHA)
    assert BcNMF(2, n_shared=0).resolved_model() == (0, DEFAULT_ALPHA)
    with pytest.raises(ValueError, match="n_shared=0"):
        BcNMF(2, n_shared=3, alpha=1.0).fit(np.ones((4, 3)), np.ones((4, 3)))


def test_fitted_model_attributes_and_defaults():
    ad = bc.datasets.simulate(
        n_target=60, n_background=60, n_genes=60, n_markers=5, n_program_genes=5, random_state=0
    )
    X, Y, _ = _split(ad)
    from bcnmf_sc._engine import engine_options, get_options

    assert get_options().repair_placement
    # the defaults: 200 epochs, tol 5e-5 (without the placement check, which on these
    # 60 cells swaps a topic and trains again, to convergence)
    with (
        engine_options(repair_placement=False),
        pytest.warns(bc.ConvergenceWarning, match="max_epochs=200 .*tol=5e-05"),
    ):
        shared = BcNMF(2, random_state=0).fit(X, Y)
    assert (shared.n_shared_, shared.alpha_, shared.tol_) == (16, None, 5e-5)
    assert (shared.solver_, shared.init_, shared.n_epochs_) == ("minibatch", "random", 200)
    assert shared.components_.shape == (18, 60) and shared.usage_target_.shape == (60, 18)
    contrast = BcNMF(2, alpha=1.0, random_state=0).fit(X, Y)
    assert (contrast.n_shared_, contrast.alpha_, contrast.tol_) == (0, 1.0, 1e-5)
    assert contrast.init_ == "contrastive" and contrast.components_.shape == (2, 60)


def test_start_orders_target_enriched_components_first():
    """The shared model's start: the components the target has more of become target topics.

    Two gene profiles, a cell type both groups have and a program only target cells use;
    the ratio of mean weights does not depend on depth (the target here is 5x deeper).
    """
    import scipy.sparse as sp

    from bcnmf_sc._engine.init import order_by_enrichment

    rng = np.random.default_rng(0)
    g = 40
    cell_type = np.r_[np.full(20, 3.0), np.full(20, 0.5)]
    program = np.r_[np.full(20, 0.5), np.full(10, 0.5), np.full(10, 6.0)]
    W = np.vstack([cell_type, program, np.ones(g)])  # rows: type, program, flat
    H_t = np.c_[rng.uniform(1, 2, 200), rng.uniform(0, 2, 200), np.ones(200)]
    H_b = np.c_[rng.uniform(1, 2, 300), np.zeros(300), np.ones(300)]
    X = sp.csr_matrix(rng.poisson(5 * H_t @ W).astype(float))
    Y = sp.csr_matrix(rng.poisson(H_b @ W).astype(float))
    ordered = order_by_enrichment(W, X, Y, 1)
    np.testing.assert_array_equal(ordered, W[[1, 0, 2]])  # the program first, the rest kept
    assert np.array_equal(order_by_enrichment(W, X, Y, 3)[0], W[1])
    assert np.array_equal(order_by_enrichment(W[[2, 0, 1]], X, Y, 1)[0], W[1])


def test_auto_start_of_the_shared_model_depends_on_the_genes():
    from bcnmf_sc._engine.setup import resolve_init

    assert resolve_init("auto", 0.0, "kl", 16, wide=False) == "random"
    assert resolve_init("auto", 0.0, "kl", 16, wide=True) == "nndsvda"
    assert resolve_init("auto", 2.0, "kl", 0, wide=True) == "contrastive"
    assert resolve_init("random", 0.0, "kl", 16, wide=True) == "random"
    from bcnmf_sc._engine import engine_options

    with engine_options(auto_nndsvda_genes=50):  # 60 genes count as wide here
        ad = bc.datasets.simulate(
            n_target=60, n_background=60, n_genes=60, n_markers=5, n_program_genes=5
        )
        X, Y, _ = _split(ad)
        assert _fit(X, Y, n_shared=4, max_epochs=2).init_ == "nndsvda"


def test_ordered_nndsvda_start_finds_the_program():
    """With ``init="nndsvda"`` a target topic of the fit is the planted program."""
    ad = bc.datasets.simulate(n_target=150, n_background=150, n_genes=300, random_state=1)
    X, Y, t = _split(ad)
    m = _fit(X, Y, n_shared=8, max_epochs=30, init="nndsvda")
    prog = ad.obs["program_1"].to_numpy()[t]
    P = m.usage_target_ / m.usage_target_.sum(1, keepdims=True)
    assert max(roc_auc_score(prog, P[:, j]) for j in range(2)) > 0.9


def _tl(ad, **kw):
    bc.tl.bcnmf(ad, "condition", "background", n_topics=2, max_epochs=5, progress=False,
                device="cpu", **kw)  # fmt: skip


SHARED_NAMES = ["topic_1", "topic_2"] + [f"shared_{i}" for i in range(1, 17)]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_tl_default_is_the_shared_model_and_alpha_the_contrast():
    ad = bc.datasets.simulate(
        n_target=80, n_background=80, n_genes=100, n_markers=10, n_program_genes=10, random_state=0
    )
    _tl(ad)
    res, p = ad.uns["bcnmf"], ad.uns["bcnmf"]["params"]
    assert ad.obsm["X_bcnmf"].shape == (160, 2 + 16)
    assert ad.varm["bcnmf_loadings"].shape == (100, 2 + 16)
    assert res["topics"] == SHARED_NAMES
    assert sorted(res["enrichment"].index) == sorted(SHARED_NAMES)
    assert p["n_shared"] == 16 and p["holdout"] == 0.2 and "alpha" not in p
    assert p["n_held_out"] == 16 + 16 and p["tol"] == 5e-5
    # an alpha: the contrast, K topics, nothing held out
    _tl(ad, alpha=2, key_added="c")
    res, p = ad.uns["c"], ad.uns["c"]["params"]
    assert ad.obsm["X_c"].shape == (160, 2) and ad.varm["c_loadings"].shape == (100, 2)
    assert res["topics"] == ["topic_1", "topic_2"]
    assert p["n_shared"] == 0 and p["alpha"] == 2.0 and p["holdout"] == 0.0
    assert p["n_held_out"] == 0 and p["tol"] == 1e-5
    # ... and its enrichment table compares all the (training) cells of the two groups
    t = (ad.obs["condition"] == "target").to_numpy()
    prop = ad.obsm["X_c"] / ad.obsm["X_c"].sum(1, keepdims=True)
    auroc = [roc_auc_score(t, prop[:, k]) for k in range(2)]
    np.testing.assert_allclose(res["enrichment"].loc[res["topics"], "auroc"], auroc, atol=1e-9)
    # shared topics with every cell in training
    _tl(ad, holdout=0, key_added="h")
    assert ad.uns["h"]["params"]["n_held_out"] == 0 and ad.obsm["X_h"].shape == (160, 18)
    # an alpha with shared topics: refused before anything is written
    before = sorted(ad.uns)
    with pytest.raises(ValueError, match="n_shared=0"):
        _tl(ad, n_shared=4, alpha=2, key_added="bad")
    assert sorted(ad.uns) == before and "X_bad" not in ad.obsm


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_tl_consensus_with_shared_topics():
    ad = bc.datasets.simulate(
        n_target=80, n_background=80, n_genes=100, n_markers=10, n_program_genes=10, random_state=0
    )
    _tl(ad, consensus=True, n_init=2)
    res = ad.uns["bcnmf"]
    assert res["topics"] == SHARED_NAMES and ad.obsm["X_bcnmf"].shape == (160, 18)
    assert res["params"]["consensus"] and res["params"]["n_shared"] == 16
    enr = res["enrichment"]
    assert list(enr.columns)[-1] == "stability" and len(enr) == 18
    assert enr["stability"].notna().all() and enr["stability"].between(0, 1).all()
    cons = res["consensus"]
    assert len(cons["stability"]) == len(cons["n_kept"]) == 18
    np.testing.assert_allclose(cons["stability"], enr["stability"].reindex(SHARED_NAMES))
    assert len(cons["objectives"]) == 2 and np.all((cons["n_kept"] >= 1) & (cons["n_kept"] <= 2))
    np.testing.assert_allclose(ad.varm["bcnmf_loadings"].sum(0), 1.0, rtol=1e-9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:The set_bad function:PendingDeprecationWarning")
def test_pl_draws_the_target_topics_unless_asked_for_all():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    ad = bc.datasets.simulate(
        n_target=80, n_background=80, n_genes=100, n_markers=10, n_program_genes=10, random_state=0
    )
    _tl(ad)
    ad.obsm["X_umap"] = np.random.default_rng(0).normal(size=(ad.n_obs, 2))
    try:
        titles = [a.get_title() for a in bc.pl.topics(ad, show=False)]
        assert titles == ["topic_1", "topic_2"]
        titles = [a.get_title() for a in bc.pl.topics(ad, topics="all", show=False)]
        assert titles == SHARED_NAMES
        usage = bc.pl.usage(ad, groupby="condition", show=False)
        assert [a.get_title() for a in usage] == ["topic_1", "topic_2"]
        usage = bc.pl.usage(ad, groupby="condition", topics="all", show=False)
        assert [a.get_title() for a in usage] == SHARED_NAMES

        def rows(**kw):
            ax = bc.pl.gene_loadings(ad, kind="heatmap", n_genes=3, show=False, **kw)
            return [t.get_text().removesuffix(" (enriched)") for t in ax.get_yticklabels()]

        assert sorted(rows()) == ["topic_1", "topic_2"]
        assert sorted(rows(topics="all")) == sorted(SHARED_NAMES)
        panels = bc.pl.gene_loadings(ad, n_genes=3, show=False)
        assert len(panels) == 2 and len(panels[0].figure.axes) == 2
        # a shared topic by name or position: drawn when asked for
        asked = bc.pl.topics(ad, topics=["shared_3", 2], show=False)
        assert [a.get_title() for a in asked] == ["shared_3", "shared_1"]
    finally:
        plt.close("all")


@pytest.mark.parametrize("cmd", ["fit", "distributed"])
def test_cli_refuses_shared_topics_with_alpha(cmd, tmp_path, capsys):
    from bcnmf_sc import cli, distributed

    ad = bc.datasets.simulate(
        n_target=40, n_background=40, n_genes=60, n_markers=5, n_program_genes=5, random_state=0
    )
    path, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    ad.write_h5ad(path)
    before = path.read_bytes()
    argv = [str(path), "-o", str(out), "--background-key", "condition", "--background"]
    argv += ["background", "-k", "2", "--max-epochs", "2", "--device", "cpu"]
    argv += ["--n-shared", "16", "--alpha", "2"]
    main, prefix = (cli.main, ["fit"]) if cmd == "fit" else (distributed.main, [])
    rc = main([*prefix, *argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    prefix_err = "bcnmf-sc: error:" if cmd == "fit" else "bcnmf_sc.distributed: error:"
    assert lines[0].startswith(prefix_err), err
    assert "--alpha" in lines[0] and "--n-shared 0" in lines[0], err
    assert not out.exists() and path.read_bytes() == before


def test_target_score_weighs_only_target_topics():
    """Shared topics' excess is a composition shift: it does not enter the target score."""
    import pandas as pd

    from bcnmf_sc.tl._enrichment import score_weights

    table = pd.DataFrame({"excess": [0.5, 0.0, 0.4, 0.3]}, index=["t1", "t2", "s1", "s2"])
    np.testing.assert_array_equal(
        score_weights(table, ["t1", "t2", "s1", "s2"]), [0.5, 0, 0.4, 0.3]
    )
    np.testing.assert_array_equal(score_weights(table, ["t1", "t2", "s1", "s2"], 2), [0.5, 0, 0, 0])
    # on a composition shift (type_1 3x more common in the target) the fit writes a score
    # that is the excess-weighted proportions of the target topics alone
    ad = bc.datasets.simulate(
        n_target=300, n_background=300, n_genes=200, n_markers=20, n_programs=0,
        n_cell_types=6, composition_shift=(0, 3.0), random_state=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bc.tl.bcnmf(ad, "condition", "background", n_topics=2, n_shared=8, max_epochs=20,
                    progress=False)  # fmt: skip
    enr = ad.uns["bcnmf"]["enrichment"]
    topics = ad.uns["bcnmf"]["topics"]
    U = ad.obsm["X_bcnmf"]
    P = U / U.sum(1, keepdims=True)
    excess = enr["excess"].reindex(topics).to_numpy()
    expected = P[:, :2] @ excess[:2]
    np.testing.assert_allclose(ad.obs["bcnmf_target_score"].to_numpy(), expected, atol=1e-12)
    assert (excess[2:] > 0).any()  # the expanded type's shared topic has excess, unweighted
