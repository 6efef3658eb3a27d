"""Tests of the plotting namespace bcnmf_sc.pl (Agg backend, one small fit)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
import torch
from anndata import AnnData
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import bcnmf_sc as bc
from bcnmf_sc.datasets import simulate

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore::bcnmf_sc.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:Topics .* have \\(almost\\) no usage:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:FigureCanvasAgg is non-interactive:UserWarning"),
    pytest.mark.filterwarnings("ignore:The set_bad function:PendingDeprecationWarning"),
]

K = 4


@pytest.fixture(scope="module")
def fitted() -> AnnData:
    """300 cells x 120 genes, 4 target topics (+ 16 shared: the default), a few epochs, a
    cheap 2-d embedding."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        adata = simulate(
            n_target=150, n_background=150, n_genes=120, n_markers=15, n_program_genes=15
        )
        bc.tl.bcnmf(
            adata, "condition", "background", n_topics=K, max_epochs=6, progress=False, device="cpu"
        )
    finally:
        torch.set_num_threads(n_threads)
    logx = np.log1p(adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X))
    proj = np.random.default_rng(0).normal(size=(adata.n_vars, 2))
    adata.obsm["X_umap"] = logx @ proj
    return adata


def _snapshot(adata: AnnData) -> AnnData:
    return adata.copy()


def _assert_same(a: AnnData, b: AnnData) -> None:
    assert list(a.obs.columns) == list(b.obs.columns)
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    assert sorted(a.obsm) == sorted(b.obsm)
    assert sorted(a.varm) == sorted(b.varm)
    assert sorted(a.layers) == sorted(b.layers)
    for k in a.obsm:
        np.testing.assert_array_equal(a.obsm[k], b.obsm[k])
    for k in a.varm:
        np.testing.assert_array_equal(a.varm[k], b.varm[k])
    assert sorted(a.uns) == sorted(b.uns)
    assert sorted(a.uns["bcnmf"]) == sorted(b.uns["bcnmf"])
    pd.testing.assert_frame_equal(a.uns["bcnmf"]["enrichment"], b.uns["bcnmf"]["enrichment"])
    xa, xb = a.X, b.X
    if sp.issparse(xa):
        xa, xb = xa.toarray(), xb.toarray()
    np.testing.assert_array_equal(xa, xb)


@pytest.fixture(autouse=True)
def _unchanged_and_closed(fitted):
    """Every plot leaves the user's AnnData as it was; figures are closed after each test."""
    before = _snapshot(fitted)
    yield
    plt.close("all")
    _assert_same(fitted, before)


def _labels(ticklabels) -> list[str]:
    return [t.get_text() for t in ticklabels]


def _topic_names(adata) -> list[str]:
    return list(adata.uns["bcnmf"]["topics"])


def _drawn(adata) -> list[str]:
    """The topics drawn by default: the target topics (the fixture's fit has shared ones)."""
    names = _topic_names(adata)
    n_shared = adata.uns["bcnmf"]["params"]["n_shared"]
    assert n_shared == 16 and len(names) == K + n_shared  # the default model for counts
    return names[:K]


def test_fixture_is_the_default_shared_model(fitted):
    names = _topic_names(fitted)
    assert names == [f"topic_{i}" for i in range(1, K + 1)] + [f"shared_{i}" for i in range(1, 17)]
    assert _drawn(fitted) == names[:K]


# ------------------------------------------------------------------ gene_loadings
def _enriched_first(adata) -> list[str]:
    """Drawn topic names with the target-enriched ones first (in the table's order)."""
    table = adata.uns["bcnmf"]["enrichment"]
    drawn = _drawn(adata)
    enriched = [str(t) for t in table.index[table["enriched"]] if t in drawn]
    return enriched + [t for t in drawn if t not in enriched]


@pytest.mark.parametrize("rank_by", ["score", "loading"])
def test_ranking_panels_titles_and_genes(fitted, rank_by):
    axes = bc.pl.gene_loadings(fitted, n_genes=6, rank_by=rank_by, show=False)
    assert isinstance(axes, list) and len(axes) == K
    assert all(isinstance(a, Axes) for a in axes)
    order = _enriched_first(fitted)
    enriched = set(fitted.uns["bcnmf"]["enrichment"].query("enriched").index)
    assert enriched  # the fixture's fit finds the planted program
    # enriched topics first, and marked
    assert [a.get_title() for a in axes] == [
        f"{t} (enriched)" if t in enriched else t for t in order
    ]
    assert len(axes[0].figure.axes) == K  # no stray panels
    top = bc.get.top_genes(fitted, n_genes=6, rank_by=rank_by)
    for a, name in zip(axes, order, strict=True):
        sub = top[top["topic"] == name]
        assert _labels(a.get_yticklabels()) == list(sub["gene"])
        # genes sit at their score (or loading), rank 1 at the top
        np.testing.assert_allclose(a.collections[-1].get_offsets()[:, 0], sub[rank_by])
        assert a.get_ylim()[0] > a.get_ylim()[1]
        assert a.get_xlabel() == ("specificity score" if rank_by == "score" else "loading")


def test_ranking_subset_of_topics_by_name_and_position(fitted):
    enriched = set(fitted.uns["bcnmf"]["enrichment"].query("enriched").index)
    axes = bc.pl.gene_loadings(fitted, topics=["topic_3", 0], n_genes=4, show=False)
    # the order asked for, enriched topics marked
    assert [a.get_title().removesuffix(" (enriched)") for a in axes] == ["topic_3", "topic_1"]
    for a in axes:
        assert a.get_title().endswith(" (enriched)") == (a.get_title()[:7] in enriched)
    assert len(axes[0].figure.axes) == 2
    top = bc.get.top_genes(fitted, n_genes=4, topics="topic_3")
    assert _labels(axes[0].get_yticklabels()) == list(top["gene"])


def test_ranking_into_given_ax_and_return_fig(fitted):
    fig, ax = plt.subplots()
    out = bc.pl.gene_loadings(fitted, topics=1, n_genes=5, ax=ax, show=False)
    assert out == [ax] and ax.get_title().split()[0] == "topic_2"  # "(enriched)" may follow
    fig = bc.pl.gene_loadings(fitted, n_genes=3, return_fig=True, show=False)
    assert isinstance(fig, Figure) and len(fig.axes) == K
    with pytest.raises(ValueError, match="ax= takes a single topic"):
        bc.pl.gene_loadings(fitted, n_genes=3, ax=ax, show=False)


def test_heatmap_genes_grouped_by_topic(fitted):
    ax = bc.pl.gene_loadings(fitted, kind="heatmap", n_genes=5, show=False)
    assert isinstance(ax, Axes)
    enriched = set(fitted.uns["bcnmf"]["enrichment"].query("enriched").index)
    rows = [f"{t} (enriched)" if t in enriched else t for t in _enriched_first(fitted)]
    assert _labels(ax.get_yticklabels()) == rows
    genes = _labels(ax.get_xticklabels())
    top = bc.get.top_genes(fitted, n_genes=5, topics=_drawn(fitted))
    assert len(genes) == len(set(genes)) == top["gene"].nunique()
    # each gene is listed under a topic it is a top gene of; groups follow the topic order
    home = top.sort_values("score", ascending=False).drop_duplicates("gene")
    home = dict(zip(home["gene"], home["topic"], strict=True))
    names = _enriched_first(fitted)
    order = [names.index(home[g]) for g in genes]
    assert order == sorted(order)
    # the image holds the loadings (topics x genes)
    L = fitted.varm["bcnmf_loadings"]
    image = ax.images[0].get_array()
    cols = [_topic_names(fitted).index(t) for t in names]
    np.testing.assert_allclose(image, L[fitted.var_names.get_indexer(genes)][:, cols].T)
    # group labels on top name the topics
    top_axis = ax.child_axes[0] if ax.child_axes else None
    assert top_axis is not None
    groups = [n for n in names if n in set(home.values())]
    assert _labels(top_axis.get_xticklabels()) == groups


def test_heatmap_standard_scale(fitted):
    ax = bc.pl.gene_loadings(fitted, kind="heatmap", n_genes=5, standard_scale="var", show=False)
    np.testing.assert_allclose(ax.images[0].get_array().max(0), 1.0)


def test_dotplot_expression_by_condition(fitted):
    axes = bc.pl.gene_loadings(fitted, kind="dotplot", n_genes=4, show=False)
    assert isinstance(axes, dict) and "mainplot_ax" in axes
    main = axes["mainplot_ax"]
    top = bc.get.top_genes(fitted, n_genes=4, topics=_drawn(fitted))
    top = pd.concat([top[top["topic"] == t] for t in _enriched_first(fitted)])
    assert _labels(main.get_xticklabels()) == list(top["gene"])
    assert sorted(_labels(main.get_yticklabels())) == ["background", "target"]
    group_texts = {t.get_text() for t in axes["gene_group_ax"].texts}
    assert group_texts == set(_drawn(fitted))
    dp = bc.pl.gene_loadings(
        fitted, kind="dotplot", n_genes=3, groupby="cell_type", return_fig=True
    )
    assert isinstance(dp, sc.pl.DotPlot)
    expected = fitted.obs["cell_type"].astype("category").cat.categories
    assert list(dp.dot_color_df.index) == list(expected)


def test_dotplot_layer_and_raw_errors(fitted):
    with pytest.raises(KeyError, match="Layer 'nope' not found"):
        bc.pl.gene_loadings(fitted, kind="dotplot", layer="nope", show=False)
    with pytest.raises(ValueError, match="adata.raw is None"):
        bc.pl.gene_loadings(fitted, kind="dotplot", use_raw=True, show=False)
    with pytest.raises(KeyError, match="groupby 'nope' is not a column"):
        bc.pl.gene_loadings(fitted, kind="dotplot", groupby="nope", show=False)


# --------------------------------------------------------------- topic_enrichment
@pytest.mark.parametrize("metric", ["log2fc", "auroc"])
def test_enrichment_order_values_and_highlight(fitted, metric):
    table = fitted.uns["bcnmf"]["enrichment"]
    ax = bc.pl.topic_enrichment(fitted, metric=metric, show=False)
    assert isinstance(ax, Axes)
    assert _labels(ax.get_yticklabels()) == list(table.index)  # top to bottom, table order
    assert ax.get_ylim()[0] > ax.get_ylim()[1]
    markers = ax.collections[1]
    np.testing.assert_allclose(markers.get_offsets()[:, 0], table[metric])
    colors = [mcolors.to_hex(c) for c in markers.get_facecolors()]
    highlight = mcolors.to_hex(sc.pl.palettes.default_20[3])
    grey = mcolors.to_hex("lightgray")
    if "enriched" in table:  # the call made by tl.bcnmf
        enriched = table["enriched"].to_numpy(dtype=bool)
    else:
        null = 0.5 if metric == "auroc" else 0.0
        enriched = (table["pval_adj"] < 0.05).to_numpy() & (table[metric] > null).to_numpy()
    expected = [highlight if e else grey for e in enriched]
    assert colors == expected
    assert any(t.get_text().startswith("*") for t in ax.texts) == bool(
        (table["pval_adj"] < 0.05).any()
    )


def test_enrichment_n_topics_and_cutoff(fitted):
    table = fitted.uns["bcnmf"]["enrichment"]
    ax = bc.pl.topic_enrichment(fitted, n_topics=2, pval_cutoff=1.0, color="blue", show=False)
    assert _labels(ax.get_yticklabels()) == list(table.index[:2])
    colors = [mcolors.to_hex(c) for c in ax.collections[1].get_facecolors()]
    up = table["log2fc"].to_numpy()[:2] > 0
    assert colors == [mcolors.to_hex("blue") if u else mcolors.to_hex("lightgray") for u in up]
    assert isinstance(bc.pl.topic_enrichment(fitted, return_fig=True, show=False), Figure)
    with pytest.raises(ValueError, match="n_topics must be a positive integer"):
        bc.pl.topic_enrichment(fitted, n_topics=0, show=False)
    with pytest.raises(ValueError, match="Unknown metric"):
        bc.pl.topic_enrichment(fitted, metric="pval", show=False)
    with pytest.raises(ValueError, match="pval_cutoff"):
        bc.pl.topic_enrichment(fitted, pval_cutoff=2, show=False)


def test_enrichment_by_group_heatmap(fitted):
    adata = fitted.copy()
    with pytest.raises(KeyError, match=r"run bcnmf_sc\.tl\.topic_enrichment\(adata, 'cell_type'"):
        bc.pl.topic_enrichment(adata, groupby="cell_type", show=False)
    table = bc.tl.topic_enrichment(adata, "cell_type")
    ax = bc.pl.topic_enrichment(adata, groupby="cell_type", show=False)
    groups = list(adata.obs["cell_type"].cat.categories)
    topics = [str(t) for t in adata.uns["bcnmf"]["enrichment"].index]  # target vs bg order
    assert _labels(ax.get_yticklabels()) == groups
    assert _labels(ax.get_xticklabels()) == topics
    values = np.asarray(ax.images[0].get_array())
    for i, g in enumerate(groups):
        for j, t in enumerate(topics):
            row = table[(table["group"] == g) & (table["topic"] == t)]
            assert values[i, j] == pytest.approx(float(row["log2fc"].iloc[0]))
    # one star per enriched (group, topic), centred on its cell
    stars = sorted((round(x.get_position()[1]), round(x.get_position()[0])) for x in ax.texts)
    expected = sorted(
        (groups.index(g), topics.index(t))
        for g, t in table.loc[table["enriched"], ["group", "topic"]].itertuples(index=False)
    )
    assert stars == expected
    assert ax.get_title() == "cell_type: each group vs rest"
    # AUROC, centred on 0.5; the first two topics; another reference
    bc.tl.topic_enrichment(adata, "condition", reference="background")
    ax = bc.pl.topic_enrichment(
        adata, groupby="condition", metric="auroc", n_topics=2, pval_cutoff=1.0, show=False
    )
    assert _labels(ax.get_xticklabels()) == topics[:2]
    assert _labels(ax.get_yticklabels()) == ["target"]
    lo, hi = ax.images[0].get_clim()
    assert (lo + hi) / 2 == pytest.approx(0.5)
    assert ax.get_title() == "condition: each group vs background"


# -------------------------------------------------------------------------- usage
def test_usage_violin_panels(fitted):
    axes = bc.pl.usage(fitted, groupby="cell_type", topics=[2, "topic_1"], show=False)
    assert isinstance(axes, list) and [a.get_title() for a in axes] == ["topic_3", "topic_1"]
    assert len(axes[0].figure.axes) == 2
    cats = list(fitted.obs["cell_type"].astype("category").cat.categories)
    assert _labels(axes[0].get_xticklabels()) == cats
    axes = bc.pl.usage(fitted, groupby="condition", show=False)
    assert [a.get_title() for a in axes] == _drawn(fitted)


def test_usage_matrix_means(fitted):
    axes = bc.pl.usage(fitted, groupby="cell_type", kind="matrix", show=False)
    assert isinstance(axes, dict)
    assert _labels(axes["mainplot_ax"].get_xticklabels()) == _drawn(fitted)
    # proportions by default, raw usages on request
    by_type = fitted.obs["cell_type"].to_numpy()
    for proportions in (True, False):
        mp = bc.pl.usage(
            fitted, groupby="cell_type", kind="matrix", proportions=proportions, return_fig=True
        )
        assert isinstance(mp, sc.pl.MatrixPlot)
        expected = bc.get.usage(fitted, proportions=proportions).groupby(by_type).mean()
        expected = expected[_drawn(fitted)]  # proportions of all topics; the targets drawn
        np.testing.assert_allclose(mp.values_df.to_numpy(), expected.to_numpy(), rtol=1e-5)
    # every topic drawn: the proportions add up to one
    mp = bc.pl.usage(fitted, groupby="cell_type", kind="matrix", topics="all", return_fig=True)
    assert list(mp.values_df.columns) == _topic_names(fitted)
    np.testing.assert_allclose(mp.values_df.sum(1), 1.0, rtol=1e-5)
    axes = bc.pl.usage(fitted, groupby="condition", topics=0, show=False)
    assert axes[0].get_ylabel() == "usage proportion"


def test_usage_errors(fitted):
    with pytest.raises(KeyError, match="groupby 'nope' is not a column"):
        bc.pl.usage(fitted, groupby="nope", show=False)
    with pytest.raises(ValueError, match="Unknown kind"):
        bc.pl.usage(fitted, groupby="condition", kind="box", show=False)
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="ax= takes a single topic"):
        bc.pl.usage(fitted, groupby="condition", ax=ax, show=False)
    assert bc.pl.usage(fitted, groupby="condition", topics=0, ax=ax, show=False) == [ax]


# ------------------------------------------------------------------------- topics
@pytest.mark.parametrize("basis", ["umap", "X_umap"])
def test_topics_panels_on_embedding(fitted, basis):
    axes = bc.pl.topics(fitted, basis=basis, show=False)
    assert isinstance(axes, list) and len(axes) == K
    assert [a.get_title() for a in axes] == _drawn(fitted)
    # colours are the usage proportions by default, the usages on request
    W = fitted.obsm["X_bcnmf"]
    colours = np.sort(axes[0].collections[0].get_array())
    np.testing.assert_allclose(colours, np.sort(W[:, 0] / W.sum(1)), rtol=1e-6)
    axes = bc.pl.topics(fitted, basis=basis, topics=0, proportions=False, show=False)
    colours = np.sort(axes[0].collections[0].get_array())
    np.testing.assert_allclose(colours, np.sort(W[:, 0]), rtol=1e-6)


def test_topics_with_obs_columns(fitted):
    # obs columns next to topics (used to raise "multiple values for 'color'")
    axes = bc.pl.topics(fitted, color=["cell_type", "bcnmf_target_score"], topics=[0], show=False)
    assert [a.get_title() for a in axes] == ["cell_type", "bcnmf_target_score", "topic_1"]
    # topics named in color: only those, in the order given
    axes = bc.pl.topics(fitted, color=["topic_3", "condition", "topic_1"], show=False)
    assert [a.get_title() for a in axes] == ["topic_3", "condition", "topic_1"]
    axes = bc.pl.topics(fitted, color="condition", show=False)
    assert [a.get_title() for a in axes] == ["condition", *_drawn(fitted)]
    assert "condition_colors" not in fitted.uns  # scanpy's colours went to a throwaway
    with pytest.raises(KeyError, match=r"color \['nope'\] are neither \.obs columns nor"):
        bc.pl.topics(fitted, color=["nope"], show=False)
    with pytest.raises(TypeError, match="color must be"):
        bc.pl.topics(fitted, color=[1], show=False)


def test_topics_subset_ax_and_fig(fitted):
    axes = bc.pl.topics(fitted, topics=["topic_2", 3], show=False)
    assert [a.get_title() for a in axes] == ["topic_2", "topic_4"]
    fig, ax = plt.subplots()
    assert bc.pl.topics(fitted, topics="topic_1", ax=ax, show=False) == [ax]
    fig = bc.pl.topics(fitted, topics=[0, 1, 2], return_fig=True, show=False)
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match="ax= takes a single panel"):
        bc.pl.topics(fitted, ax=ax, show=False)


def test_topics_missing_basis(fitted):
    with pytest.raises(KeyError, match=r"Basis 'tsne' not found.*available \.obsm keys"):
        bc.pl.topics(fitted, basis="tsne", show=False)


# ----------------------------------------------------------------------- training
def test_training_curves(fitted):
    hist = fitted.uns["bcnmf"]["history"]
    axes = bc.pl.training(fitted, show=False)
    assert [a.get_title() for a in axes] == ["objective", "target term", "background term"]
    for a, name in zip(axes, ["objective", "target", "background"], strict=True):
        line = a.get_lines()[0]
        np.testing.assert_allclose(line.get_xdata(), hist["epoch"])
        np.testing.assert_allclose(line.get_ydata(), hist[name])
        assert a.get_xlabel() == "epoch"
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    state = "converged" if fitted.uns["bcnmf"]["converged"] else "not converged"
    assert legend == [f"{state} (epoch {fitted.uns['bcnmf']['n_epochs']})"]
    fig, ax = plt.subplots()
    assert bc.pl.training(fitted, ax=ax, show=False) == [ax]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["objective", "target term", "background term"]


# ------------------------------------------------------------- conventions/errors
@pytest.fixture
def figdir(tmp_path):
    """scanpy's figure settings pointed at a temporary folder (restored afterwards)."""
    old = sc.settings.figdir, sc.settings.file_format_figs
    sc.settings.figdir, sc.settings.file_format_figs = tmp_path, "png"
    yield tmp_path
    sc.settings.figdir, sc.settings.file_format_figs = old


def test_save_writes_into_figdir_and_show_returns_none(fitted, figdir):
    tmp_path = figdir
    assert bc.pl.topic_enrichment(fitted, save="_x.pdf", show=True) is None
    bc.pl.training(fitted, save=True, show=False)
    bc.pl.gene_loadings(fitted, kind="dotplot", n_genes=2, save="_d.png", show=False)
    bc.pl.usage(fitted, groupby="condition", kind="matrix", save="_m.png", show=False)
    bc.pl.topics(fitted, topics=0, save="_t.png", show=False)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [
        "bcnmf_gene_loadings_dotplot_d.png",
        "bcnmf_topic_enrichment_x.pdf",
        "bcnmf_topics_umap_t.png",
        "bcnmf_training.png",
        "bcnmf_usage_matrix_condition_m.png",
    ]
    assert all(p.stat().st_size > 1000 for p in tmp_path.iterdir())


CALLS = {
    "gene_loadings": lambda ad, **kw: bc.pl.gene_loadings(ad, show=False, **kw),
    "heatmap": lambda ad, **kw: bc.pl.gene_loadings(ad, kind="heatmap", show=False, **kw),
    "topic_enrichment": lambda ad, **kw: bc.pl.topic_enrichment(ad, show=False, **kw),
    "usage": lambda ad, **kw: bc.pl.usage(ad, groupby="condition", show=False, **kw),
    "topics": lambda ad, **kw: bc.pl.topics(ad, show=False, **kw),
    "training": lambda ad, **kw: bc.pl.training(ad, show=False, **kw),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_unknown_key(fitted, name):
    with pytest.raises(KeyError, match=r"run bcnmf_sc\.tl\.bcnmf\(\.\.\., key_added='nope'\)"):
        CALLS[name](fitted, key="nope")


@pytest.mark.parametrize("name", ["gene_loadings", "heatmap", "usage", "topics"])
def test_bad_topics(fitted, name):
    n = len(_topic_names(fitted))  # positions count every topic, the shared ones too
    with pytest.raises(ValueError, match=rf"Topic position {n} out of range 0\.\.{n - 1}"):
        CALLS[name](fitted, topics=[0, n])
    with pytest.raises(ValueError, match="Unknown topic 'topic_9'"):
        CALLS[name](fitted, topics="topic_9")


def test_other_key_and_bad_options(fitted):
    alt = AnnData(
        X=fitted.X,
        obs=fitted.obs.copy(),
        var=fitted.var.copy(),
        obsm={"X_umap": fitted.obsm["X_umap"]},
    )
    alt.obsm["X_mine"] = fitted.obsm["X_bcnmf"]
    alt.varm["mine_loadings"] = fitted.varm["bcnmf_loadings"]
    alt.uns["mine"] = dict(fitted.uns["bcnmf"])
    assert len(bc.pl.gene_loadings(alt, key="mine", n_genes=3, show=False)) == K
    assert len(bc.pl.topics(alt, key="mine", show=False)) == K
    with pytest.raises(KeyError, match=r"Keys holding a bcNMF result: \['mine'\]"):
        bc.pl.training(alt)
    with pytest.raises(ValueError, match="Unknown kind 'bars'"):
        bc.pl.gene_loadings(fitted, kind="bars", show=False)
    with pytest.raises(ValueError, match="n_genes must be a positive integer"):
        bc.pl.gene_loadings(fitted, n_genes=0, show=False)


# ------------------------------------------------------ figures that read well
def _overlaps(boxes) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]


TEN_TYPES = [
    "CD14+ Monocyte",
    "CD19+ B",
    "CD34+",
    "CD4+/CD25 T Reg",
    "CD4+/CD45RA+/CD25- Naive T",
    "CD4+/CD45RO+ Memory",
    "CD56+ NK",
    "CD8+ Cytotoxic T",
    "CD8+/CD45RA+ Naive Cytotoxic",
    "Dendritic",
]


@pytest.mark.parametrize("n_groups", [2, 10])
def test_usage_violin_labels_do_not_overlap(fitted, n_groups):
    adata = fitted.copy()
    labels = ["target", "background"] if n_groups == 2 else TEN_TYPES
    adata.obs["types"] = pd.Categorical(np.resize(labels, adata.n_obs), categories=labels)
    axes = bc.pl.usage(adata, groupby="types", show=False)
    fig = axes[0].figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for a in axes:
        ticks = [t for t in a.get_xticklabels() if t.get_text()]
        assert [t.get_text() for t in ticks] == labels
        assert _overlaps([t.get_window_extent(renderer) for t in ticks]) == []
    # and the labels of neighbouring panels do not run into each other either
    boxes = [a.get_tightbbox(renderer) for a in axes]
    assert _overlaps(boxes) == []


def test_enrichment_heatmap_colour_limits_are_robust(fitted):
    adata = fitted.copy()
    bc.tl.topic_enrichment(adata, "cell_type")
    table = adata.uns["bcnmf"]["enrichment_cell_type"]
    table.iloc[0, table.columns.get_loc("log2fc")] = 25.0  # one extreme cell
    ax = bc.pl.topic_enrichment(adata, groupby="cell_type", show=False)
    lo, hi = ax.images[0].get_clim()
    others = np.abs(table["log2fc"].to_numpy()[1:])
    assert lo == pytest.approx(-hi)
    assert hi == pytest.approx(np.quantile(np.abs(table["log2fc"]), 0.9))
    assert hi <= others.max() < 25.0
    assert ax.figure.axes[-1].get_label() == "<colorbar>"
    # cells beyond the scale: the colour bar says so
    assert ax.images[0].colorbar.extend == "both"


def _fake_sweep() -> AnnData:
    rng = np.random.default_rng(0)
    rows = []
    for a in (0.0, 1.0, 2.0, 3.0):
        for k in (3, 4):
            row = {"alpha": a, "n_topics": k}
            row.update({m: rng.random() for m in bc.pl._sweep.METRICS})
            row["n_enriched"] = int(rng.integers(0, 3))
            row["n_stable_enriched"] = int(rng.integers(0, 2))
            rows.append(row)
    adata = AnnData(np.zeros((2, 2)))
    adata.uns["bcnmf_sweep"] = {
        "table": pd.DataFrame(rows),
        "recommended": {"alpha": 2.0, "n_topics": 3},
    }
    return adata


@pytest.mark.parametrize("metrics", [None, ["n_enriched"], ["n_enriched", "n_stable_enriched"]])
def test_sweep_title_clear_of_panels_and_integer_ticks(metrics):
    adata = _fake_sweep()
    kwargs = {} if metrics is None else {"metrics": metrics}
    fig = bc.pl.sweep(adata, return_fig=True, show=False, **kwargs)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    axes = list(fig.axes)
    texts = [a.title for a in axes]
    if fig._suptitle is not None:  # type: ignore[attr-defined]
        texts.append(fig._suptitle)  # type: ignore[attr-defined]
    legend = axes[-1].get_legend()
    assert legend.get_title().get_text() == "recommended:\nalpha=2, K=3"
    boxes = [t.get_window_extent(renderer) for t in texts]
    boxes += [a.get_window_extent(renderer) for a in axes]
    boxes.append(legend.get_window_extent(renderer))
    assert _overlaps(boxes) == []
    for a in axes:
        if a.get_title() in ("n_enriched", "n_stable_enriched"):
            ticks = a.get_yticks()
            lo, hi = a.get_ylim()
            shown = ticks[(ticks >= lo) & (ticks <= hi)]
            assert len(shown) >= 2 and np.allclose(shown, np.round(shown))


def test_training_scale_not_set_by_the_first_epoch(fitted):
    adata = fitted.copy()
    n = 12
    rest = 1.0 + np.exp(-np.arange(1, n))
    hist = {"epoch": np.arange(1, n + 1.0)}
    for name, first in (("objective", 50.0), ("target", 40.0), ("background", 30.0)):
        hist[name] = np.r_[first, rest]
    adata.uns["bcnmf"] = {**adata.uns["bcnmf"], "history": hist}
    panels = bc.pl.training(adata, show=False)
    for axes in (panels, bc.pl.training(adata, ax=plt.subplots()[1], show=False)):
        for a in axes:
            lo, hi = a.get_ylim()
            assert hi < 30.0  # the first epoch is off the scale
            assert lo <= rest.min() and hi >= rest.max()
            assert (hi - lo) < 2 * (rest.max() - rest.min())
    # two epochs: nothing to leave out
    adata.uns["bcnmf"]["history"] = {k: v[:2] for k, v in hist.items()}
    a = bc.pl.training(adata, show=False)[0]
    assert a.get_ylim()[1] >= 50.0


def test_topics_legend_clear_of_the_next_panel(fitted):
    axes = bc.pl.topics(fitted, color=["cell_type", "topic_1"], show=False)
    fig = axes[0].figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    legend = axes[0].get_legend()
    assert legend is not None
    assert not legend.get_window_extent(renderer).overlaps(axes[1].get_tightbbox(renderer))


# ----------------------------------------------------------------------- programs
@pytest.fixture(scope="module")
def fitted_programs() -> AnnData:
    """800 cells x 300 genes with two planted target programs, 4 target topics."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        adata = simulate(
            n_target=400,
            n_background=400,
            n_genes=300,
            n_programs=2,
            program_fold=[3.0, 3.0],
            random_state=0,
        )
        bc.tl.bcnmf(adata, "condition", "background", n_topics=4, random_state=0, progress=False)
    finally:
        torch.set_num_threads(n_threads)
    return adata


def _program_title(name: str, row) -> str:
    topics = ",".join(t.removeprefix("topic_") for t in str(row["topics"]).split(","))
    which = "topic" if int(row["n_topics"]) == 1 else "topics"
    only = "target-only" if row["target_only"] else "not target-only"
    return f"{name} ({which} {topics}; {only})"


@pytest.mark.parametrize("n", [3, 10])
def test_programs_genes_titles_and_groups(fitted_programs, n):
    adata = fitted_programs
    table = adata.uns["bcnmf"]["programs"]
    assert len(table) == 2  # the two planted programs
    fig = bc.pl.programs(adata, n_genes=n, return_fig=True, show=False)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * len(table)
    genes = bc.get.program_genes(adata, n_genes=n)
    scores = adata.obsm["bcnmf_programs"]
    is_target = (adata.obs["condition"] == "target").to_numpy()
    for i, name in enumerate(table.index):
        bars, box = fig.axes[2 * i], fig.axes[2 * i + 1]
        sub = genes[genes["program"] == name]
        assert _labels(bars.get_yticklabels()) == list(sub["gene"])  # rank 1 first
        assert bars.get_ylim()[0] > bars.get_ylim()[1]  # ... and at the top
        widths = [p.get_width() for p in bars.patches]
        np.testing.assert_allclose(widths, sub["excess"])
        assert bars.get_title() == _program_title(name, table.loc[name])
        assert _labels(box.get_xticklabels()) == ["target", "background"]
        medians = [np.median(line.get_ydata()) for line in box.lines if len(line.get_ydata())]
        assert len(box.patches) == 2  # one box per group
        col = scores[name].to_numpy()
        assert any(np.isclose(m, np.median(col[is_target])) for m in medians)
        assert any(np.isclose(m, np.median(col[~is_target])) for m in medians)


def test_programs_groupby_subset_and_axes(fitted_programs):
    adata = fitted_programs
    cats = list(adata.obs["cell_type"].astype("category").cat.categories)
    out = bc.pl.programs(adata, programs="program_2", groupby="cell_type", n_genes=4, show=False)
    assert isinstance(out, list) and len(out) == 1
    bars, box = out[0]
    assert isinstance(bars, Axes) and isinstance(box, Axes)
    assert bars.get_title().startswith("program_2 (")
    assert _labels(box.get_xticklabels()) == cats and len(box.patches) == len(cats)
    assert len(bars.figure.axes) == 2
    genes = bc.get.program_genes(adata, n_genes=4, programs="program_2")
    assert _labels(bars.get_yticklabels()) == list(genes["gene"])
    # the order asked for
    pairs = bc.pl.programs(adata, programs=["program_2", "program_1"], ncols=1, show=False)
    assert [b.get_title().split()[0] for b, _ in pairs] == ["program_2", "program_1"]


def test_programs_leave_adata_unchanged(fitted_programs, figdir):
    adata = fitted_programs
    before = adata.copy()
    bc.pl.programs(adata, show=False)
    bc.pl.programs(adata, groupby="cell_type", save="_ct.png", show=False)
    assert sorted(p.name for p in figdir.iterdir()) == ["bcnmf_programs_ct.png"]
    _assert_same(adata, before)
    assert list(adata.obs.columns) == list(before.obs.columns)
    assert sorted(adata.obsm) == sorted(before.obsm)
    assert sorted(adata.uns) == sorted(before.uns)
    pd.testing.assert_frame_equal(adata.uns["bcnmf"]["programs"], before.uns["bcnmf"]["programs"])
    pd.testing.assert_frame_equal(adata.obsm["bcnmf_programs"], before.obsm["bcnmf_programs"])


def test_programs_errors(fitted_programs):
    adata = fitted_programs
    with pytest.raises(KeyError, match=r"Unknown programs \['program_9'\].*'program_1'"):
        bc.pl.programs(adata, programs="program_9", show=False)
    with pytest.raises(KeyError, match=r"groupby 'nope' is not a column.*'cell_type'"):
        bc.pl.programs(adata, groupby="nope", show=False)
    with pytest.raises(ValueError, match="n_genes must be a positive integer"):
        bc.pl.programs(adata, n_genes=0, show=False)
    with pytest.raises(KeyError, match=r"run bcnmf_sc\.tl\.bcnmf\(\.\.\., key_added='nope'\)"):
        bc.pl.programs(adata, key="nope", show=False)
    # a result without a programs table (an older fit)
    old = adata.copy()
    old.uns["bcnmf"] = {k: v for k, v in adata.uns["bcnmf"].items() if k != "programs"}
    with pytest.raises(KeyError, match=r"No programs table.*run bcnmf_sc\.tl\.bcnmf"):
        bc.pl.programs(old, show=False)
    # a fit that found no program
    empty = adata.copy()
    empty.uns["bcnmf"] = {**adata.uns["bcnmf"], "programs": adata.uns["bcnmf"]["programs"].iloc[:0]}
    empty.obsm["bcnmf_programs"] = adata.obsm["bcnmf_programs"].iloc[:, :0]
    with pytest.raises(ValueError, match="found no target-enriched program: nothing to draw"):
        bc.pl.programs(empty, show=False)


def test_programs_null_fit_has_nothing_to_draw():
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        adata = simulate(n_target=200, n_background=200, n_genes=200, n_programs=0, random_state=0)
        bc.tl.bcnmf(adata, "condition", "background", n_topics=3, random_state=0, progress=False)
    finally:
        torch.set_num_threads(n_threads)
    assert len(adata.uns["bcnmf"]["programs"]) == 0
    with pytest.raises(ValueError, match="found no target-enriched program"):
        bc.pl.programs(adata, show=False)
