"""Target topics grouped into programs: the engine's grouping and what ``tl`` writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import read_h5ad
from sklearn.metrics import roc_auc_score

import bcnmf_sc as bc
from bcnmf_sc._engine.programs import (
    excess_profiles,
    group_topics,
    top_gene_members,
    top_gene_overlap,
)
from bcnmf_sc.tl._enrichment import program_scores, topic_programs

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
        {"enriched": [True, True, False, True, True, True], "excess": [0.5, 0.9, 0, 0.7, 0.6, 0.8]},
        index=topics,
    ).iloc[::-1]  # any row order
    table = topic_programs(W, usage, enr, topics, n_shared=2)
    # topic_3 is not enriched; shared_1 (enriched, program B's genes) is not a candidate
    assert list(table.index) == ["program_1", "program_2"]
    assert table["topics"].tolist() == ["topic_1,topic_2", "topic_4"]
    assert table["n_topics"].tolist() == [2, 1] and table["excess"].tolist() == [0.9, 0.7]
    assert table.loc["program_2", "overlap"] == 1.0
    weights = enr.reindex(topics)["excess"].to_numpy() * [1, 1, 1, 1, 0, 0]
    scores = program_scores(usage, table, topics, weights)
    prop = usage / usage.sum(1, keepdims=True)
    np.testing.assert_allclose(scores[:, 0], prop[:, 0] * 0.5 + prop[:, 1] * 0.9)
    np.testing.assert_allclose(scores[:, 1], prop[:, 3] * 0.7)
    none = topic_programs(W, usage, enr.assign(enriched=False), topics, n_shared=2)
    assert len(none) == 0 and list(none.columns) == list(table.columns)
    assert program_scores(usage, none, topics, weights).shape == (30, 0)


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
    assert set(bc.get.program_genes(ad, n_genes=3)["program"]) == set(table.index)
    with pytest.raises(KeyError, match="Unknown programs"):
        bc.get.program_genes(ad, programs="program_99")
    # the programs add up to at most the target score (it also counts unenriched topics)
    assert np.all(scores.to_numpy().sum(1) <= ad.obs["bcnmf_target_score"].to_numpy() + 1e-12)
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
