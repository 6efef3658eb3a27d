"""Target topics grouped into programs: the engine's grouping and what ``tl`` writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import read_h5ad
from sklearn.metrics import roc_auc_score

import bcnmf_sc as bc
from bcnmf_sc._engine import BcNMF
from bcnmf_sc._engine.programs import (
    excess_profiles,
    group_topics,
    program_basis,
    program_profiles,
    program_shares,
    top_gene_members,
    top_gene_overlap,
)
from bcnmf_sc.tl._enrichment import program_groups, topic_programs

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _components(seed: int = 0) -> np.ndarray:
    """Six topics over 300 genes: 0-2 load program A (genes 0-29), 3-4 program B (30-59),
    5 neither; each also loads 20 random genes of its own (a topic's share of noise)."""
    rng = np.random.default_rng(seed)
    W = np.ones((6, 300)) + rng.uniform(0, 0.2, (6, 300))
    W[:3, :30] += 4.0
    W[3:5, 30:60] += 4.0
    for k in range(6):
        W[k, rng.choice(np.arange(60, 300), 20, replace=False)] += 3.0
    return W / W.sum(1, keepdims=True)


def test_group_topics_joins_topics_of_one_program_and_separates_two():
    W = _components()
    usage = np.ones((50, 6))
    overlap = top_gene_overlap(W, usage, n_genes=50)
    np.testing.assert_allclose(np.diag(overlap), 1.0)
    np.testing.assert_allclose(overlap, overlap.T)
    assert overlap[0, 1] >= 0.5 and overlap[0, 3] <= 0.1
    members = top_gene_members(excess_profiles(W, usage), n_genes=50)
    assert np.array_equal(members.sum(1), np.full(6, 50.0))
    np.testing.assert_allclose(overlap, members @ members.T / 50)
    overlap = top_gene_overlap(W, usage)  # the default: 50 genes
    groups = group_topics(overlap, np.ones(6, bool))
    assert [g.tolist() for g in groups] == [[0, 1, 2], [3, 4], [5]]
    # non-candidates belong to no group; one candidate is a group; none, no group
    groups = group_topics(overlap, np.array([1, 1, 0, 1, 0, 0], bool))
    assert [g.tolist() for g in groups] == [[0, 1], [3]]
    assert [g.tolist() for g in group_topics(overlap, np.eye(6, dtype=bool)[4])] == [[4]]
    assert group_topics(overlap, np.zeros(6, bool)) == []


def test_excess_profiles_are_relative_to_the_fitted_mean():
    W = _components()
    usage = np.random.default_rng(1).uniform(0, 5, (40, 6))
    excess = excess_profiles(W, usage)
    mean = usage.sum(0) @ W
    np.testing.assert_allclose(excess, W - mean / mean.sum())
    np.testing.assert_allclose((excess * usage.sum(0)[:, None]).sum(0), 0.0, atol=1e-12)


def test_programs_table_and_scores_from_an_enrichment_table():
    W = _components()
    rng = np.random.default_rng(2)
    usage = rng.uniform(0, 1, (30, 6))
    topics = [f"topic_{i}" for i in range(1, 5)] + ["shared_1", "shared_2"]
    enr = pd.DataFrame(
        {
            "enriched": [True, True, False, True, True, True],
            "excess": [0.5, 0.9, 0, 0.7, 0.6, 0.8],
            "target_only": [False, True, False, False, True, True],
        },
        index=topics,
    ).iloc[::-1]  # any row order
    table = topic_programs(W, usage, enr, topics, n_shared=2)
    # topic_3 is not enriched; shared_1 (enriched, program B's genes) is not a candidate
    assert list(table.index) == ["program_1", "program_2"]
    assert table["topics"].tolist() == ["topic_1,topic_2", "topic_4"]
    assert table["n_topics"].tolist() == [2, 1] and table["excess"].tolist() == [0.9, 0.7]
    assert table.loc["program_2", "overlap"] == 1.0
    # a program is target-only when one of its topics is
    assert table["target_only"].tolist() == [True, False]
    groups = program_groups(table, topics)
    assert [g.tolist() for g in groups] == [[0, 1], [3]]
    none = topic_programs(W, usage, enr.assign(enriched=False), topics, n_shared=2)
    assert len(none) == 0 and list(none.columns) == list(table.columns)
    assert program_groups(none, topics) == []


def test_program_profiles_and_basis():
    W = _components() * np.arange(1, 7)[:, None]  # topics of different total loading
    usage = np.random.default_rng(3).uniform(0, 2, (40, 6))
    groups = [np.array([0, 1]), np.array([3])]
    profiles = program_profiles(W, usage, groups)
    # the counts each topic explains: its usage times its total loading
    counts = usage.sum(0) * W.sum(1)
    expect = counts[0] * W[0] / W[0].sum() + counts[1] * W[1] / W[1].sum()
    np.testing.assert_allclose(profiles[0], expect / expect.sum())
    np.testing.assert_allclose(profiles[1], W[3] / W[3].sum())
    shares = W / W.sum(1, keepdims=True)
    # shared-topic model (2 shared topics): the profiles, then the shared topics only
    basis = program_basis(W, profiles, groups, n_shared=2)
    np.testing.assert_allclose(basis, np.r_[profiles, shares[4:]])
    # the contrast: the profiles, then every topic in no program
    basis = program_basis(W, profiles, groups, n_shared=0)
    np.testing.assert_allclose(basis, np.r_[profiles, shares[[2, 4, 5]]])


def test_program_shares_agree_with_a_projection():
    rng = np.random.default_rng(4)
    basis = _components()[[0, 3, 5]]
    X = rng.poisson(rng.gamma(2.0, 1.0, (60, 3)) @ basis * 400).astype(float)
    H = BcNMF.from_components(basis).transform(X)
    P = program_shares(lambda V: BcNMF.from_components(V).transform(X), basis, 2)
    assert P.shape == (60, 2)
    np.testing.assert_allclose(P, (H / H.sum(1, keepdims=True))[:, :2])
    assert np.all(P >= 0) and np.all(P.sum(1) <= 1 + 1e-12)


def test_program_genes_needs_a_programs_table():
    ad = bc.datasets.simulate(n_target=50, n_background=50, random_state=0)
    with pytest.raises(KeyError, match="No programs table"):
        bc.get.program_genes(ad)


def test_tl_writes_one_score_per_planted_program(tmp_path):
    # two programs in independent halves of the target cells: one target score mixes them,
    # the program scores tell them apart
    ad = bc.datasets.simulate(
        n_target=800, n_background=800, n_genes=600, n_programs=2, program_fold=[3.0, 3.0],
        random_state=0,
    )  # fmt: skip
    bc.tl.bcnmf(ad, "condition", "background", n_topics=4, random_state=0, progress=False)
    table = ad.uns["bcnmf"]["programs"]
    scores = ad.obsm["bcnmf_programs"]
    assert isinstance(scores, pd.DataFrame) and list(scores.columns) == list(table.index)
    assert list(scores.index) == list(ad.obs_names)
    t = (ad.obs["condition"] == "target").to_numpy()
    best = []
    for prog in ("program_1", "program_2"):
        cells = ad.obs[prog].to_numpy()[t]
        auc = [roc_auc_score(cells, scores[c].to_numpy()[t]) for c in scores]
        best.append(int(np.argmax(auc)))
        assert max(auc) >= 0.95
        # the target score is high in the cells of either program
        assert roc_auc_score(cells, ad.obs["bcnmf_target_score"].to_numpy()[t]) < max(auc)
    assert best[0] != best[1]
    # the genes of each program: the planted genes lead, shared by the program's topics
    for prog, j in zip(("program_1", "program_2"), best, strict=True):
        name = scores.columns[j]
        genes = bc.get.program_genes(ad, programs=name, n_genes=10)
        assert list(genes.columns) == ["program", "rank", "gene", "excess", "in_topics"]
        assert (ad.var.loc[genes["gene"], "program"] == prog).sum() >= 8
        assert (genes["excess"].diff().dropna() <= 0).all()
        assert genes["in_topics"].max() <= table.loc[name, "n_topics"]
        assert table.loc[name, "target_only"]  # the background has no cell like these
    assert set(bc.get.program_genes(ad, n_genes=3)["program"]) == set(table.index)
    with pytest.raises(KeyError, match="Unknown programs"):
        bc.get.program_genes(ad, programs="program_99")
    # each score is a share of the cell's counts; the target has the programs, the
    # background hardly
    S = scores.to_numpy()
    assert np.all(S >= 0) and np.all(S.sum(1) <= 1 + 1e-9)
    assert np.all(S[t].mean(0) > 5 * S[~t].mean(0))
    # one gene profile per program (.varm), summing to one
    profiles = ad.varm["bcnmf_programs"]
    assert isinstance(profiles, pd.DataFrame) and list(profiles.columns) == list(table.index)
    np.testing.assert_allclose(profiles.sum(0), 1.0)
    # the scores: the cells projected onto the profiles and the shared topics
    n_shared = ad.uns["bcnmf"]["params"]["n_shared"]
    L = ad.varm["bcnmf_loadings"]
    basis = np.c_[profiles.to_numpy(), L[:, L.shape[1] - n_shared :]].T
    H = BcNMF.from_components(basis).transform(ad.X)
    np.testing.assert_allclose(S, (H / H.sum(1, keepdims=True))[:, : S.shape[1]], atol=1e-5)
    topics = ad.uns["bcnmf"]["topics"]
    for members in table["topics"]:
        assert all(m in topics and m.startswith("topic_") for m in members.split(","))
    path = tmp_path / "programs.h5ad"
    ad.write_h5ad(path)
    back = read_h5ad(path)
    pd.testing.assert_frame_equal(back.uns["bcnmf"]["programs"], table, check_dtype=False)
    np.testing.assert_allclose(back.obsm["bcnmf_programs"].to_numpy(), scores.to_numpy())
    # a query projected onto the fit gets the reference's programs, scored on its cells
    query = ad[:200].copy()
    del query.obsm["bcnmf_programs"]
    bc.tl.bcnmf_transform(query, ad)
    assert list(query.obsm["bcnmf_programs"].columns) == list(table.index)
    pd.testing.assert_frame_equal(query.uns["bcnmf"]["programs"], table)
    r = np.corrcoef(query.obsm["bcnmf_programs"].to_numpy()[:, 0], scores.to_numpy()[:200, 0])
    assert r[0, 1] >= 0.95
    pd.testing.assert_frame_equal(query.varm["bcnmf_programs"], profiles)
    # program_genes: the profile's share of each gene minus the fit's mean profile
    L, U = ad.varm["bcnmf_loadings"], ad.obsm["X_bcnmf"]
    mean = (L / L.sum(0)) @ U.sum(0)
    mean = mean / mean.sum()
    for name in table.index:
        genes = bc.get.program_genes(ad, programs=name, n_genes=5)
        expect = profiles[name].to_numpy() - mean
        np.testing.assert_allclose(
            genes["excess"], expect[ad.var_names.get_indexer(genes["gene"])], rtol=1e-9
        )


def test_a_composition_shift_is_no_target_only_program():
    # one cell type 3x as frequent in the target, no program: whatever target topics
    # take up the extra cells, the table does not call their program target-only
    ad = bc.datasets.simulate(
        n_target=800, n_background=800, n_genes=400, n_cell_types=6, n_programs=0,
        composition_shift=(0, 3.0), random_state=3,
    )  # fmt: skip
    bc.tl.bcnmf(ad, "condition", "background", n_topics=4, random_state=0, progress=False)
    table = ad.uns["bcnmf"]["programs"]
    assert not table["target_only"].any()
    assert ad.obsm["bcnmf_programs"].shape == (ad.n_obs, len(table))
