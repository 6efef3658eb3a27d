"""Tests of bcnmf_sc.get."""

from __future__ import annotations

import numpy as np
import pytest

import bcnmf_sc as bc
from bcnmf_sc.datasets import simulate

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def fitted():
    adata = simulate(n_target=100, n_background=100, n_genes=150, n_markers=20, n_program_genes=20)
    bc.tl.bcnmf(
        adata, "condition", "background", n_topics=3, max_epochs=10, progress=False, device="cpu"
    )
    return adata


def test_top_genes_matches_loadings(fitted):
    df = bc.get.top_genes(fitted, n_genes=7)
    assert list(df.columns) == ["topic", "rank", "gene", "loading", "specificity"]
    L = fitted.varm["bcnmf_loadings"]
    assert len(df) == 7 * L.shape[1]
    for k, topic in enumerate(fitted.uns["bcnmf"]["topics"]):
        sub = df[df["topic"] == topic]
        expected = fitted.var_names[np.argsort(L[:, k])[::-1][:7]]
        assert list(sub["gene"]) == list(expected)
        assert list(sub["rank"]) == list(range(1, 8))
        np.testing.assert_allclose(sub["loading"], np.sort(L[:, k])[::-1][:7])
        idx = fitted.var_names.get_indexer(sub["gene"])
        np.testing.assert_allclose(sub["specificity"], L[idx, k] / L[idx].sum(1))
    assert df["specificity"].between(0, 1).all()


def test_top_genes_topic_selection(fitted):
    by_name = bc.get.top_genes(fitted, n_genes=5, topics=["topic_2"])
    by_pos = bc.get.top_genes(fitted, n_genes=5, topics=1)
    assert set(by_name["topic"]) == {"topic_2"}
    assert by_name.equals(by_pos)
    with pytest.raises(ValueError, match="Unknown topic"):
        bc.get.top_genes(fitted, topics=["topic_9"])
    with pytest.raises(KeyError):
        bc.get.top_genes(fitted, key="other")
