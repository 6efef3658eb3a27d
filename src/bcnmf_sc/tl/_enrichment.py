"""The enrichment table of a fit (``tl.topic_enrichment``), the target score and programs.

The statistics themselves (:func:`compare_usage`) live in
:mod:`bcnmf_sc._engine.enrichment`, which the fit also uses to check its own topics.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from bcnmf_sc._engine.enrichment import compare_usage, usage_proportions
from bcnmf_sc._engine.programs import group_topics, top_gene_overlap
from bcnmf_sc._utils import default_topic_names

__all__ = ["topic_enrichment"]


def target_score(usage: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-cell target score: ``sum_k p_ik w_k``, topic proportions ``p`` weighted by ``w``.

    With ``weights`` the ``excess`` column of the enrichment table (in topic order), the
    score estimates the share of each cell's usage that the background does not have: a
    topic used 4x more by target cells than by background cells counts 3/4 of its
    proportion, a topic used alike counts nothing. This adds up a target program that the
    fit has split over several topics, including topics that mix it with shared structure
    and so fall below the ``enriched`` threshold. A boolean mask gives the plain share of
    usage on the masked topics.
    """
    prop = usage_proportions(usage)
    return prop @ np.asarray(weights, dtype=float)


def score_weights(
    enrichment: pd.DataFrame | None, topics: Sequence[str], n_shared: int = 0
) -> np.ndarray:
    """The target-score weight of each topic (in ``topics`` order) from an enrichment table.

    The weight is the table's ``excess``. With ``n_shared`` shared topics (the last
    ``n_shared`` of ``topics``) those weigh nothing: the model fits them to both groups,
    so a shared topic the target uses more is a change of abundance of something the
    background also has (a composition shift), not a target program; a target-only
    program that a fit left in a shared topic is moved to the target block by the fit
    itself (the placement check). Tables written before the ``excess`` column existed
    fall back on the ``enriched`` flag; no table, no weight.
    """
    w = np.zeros(len(topics))
    if enrichment is None or len(enrichment) == 0:
        return w
    col = "excess" if "excess" in enrichment else "enriched"
    if col not in enrichment:
        return w
    values = pd.Series(np.asarray(enrichment[col], dtype=float), index=enrichment.index)
    w = values.reindex([str(t) for t in topics]).fillna(0.0).to_numpy()
    if n_shared > 0:
        w[len(topics) - int(n_shared) :] = 0.0
    return w


def topic_programs(
    components: np.ndarray,
    usage: np.ndarray,
    enrichment: pd.DataFrame | None,
    topics: Sequence[str],
    n_shared: int = 0,
) -> pd.DataFrame:
    """The programs table: the ``enriched`` target topics, grouped by shared top genes.

    ``components``: K x genes (``topics`` order); ``usage``: cells x K, the cells the
    mean profile is taken over (all fitted cells). Candidates are the topics the
    enrichment table calls ``enriched``, shared topics (the last ``n_shared``) excluded;
    :func:`bcnmf_sc._engine.programs.group_topics` groups them. One row per program,
    ``program_1``, ``program_2``, ... in decreasing order of their largest ``excess``:
    ``topics`` (comma-separated names), ``n_topics``, ``excess`` (the largest of its
    topics), ``overlap`` (the mean share of top genes its pairs of topics have in
    common; 1 for a single topic) and ``target_only`` (at least one of its topics is
    ``target_only`` in the enrichment table: the background's top users stay below the
    target's, with confidence; a program without it is a change the background also
    shows in some cells, such as a cell type more abundant in the target). No enriched
    topic, no row.
    """
    columns = ["topics", "n_topics", "excess", "overlap", "target_only"]
    names = [str(t) for t in topics]
    dtypes = (str, int, float, float, bool)
    empty = pd.DataFrame({c: pd.Series(dtype=d) for c, d in zip(columns, dtypes, strict=True)})
    if enrichment is None or len(enrichment) == 0 or "enriched" not in enrichment:
        return empty
    table = enrichment.reindex(names)
    candidates = table["enriched"].fillna(False).to_numpy(dtype=bool)
    if n_shared > 0:
        candidates[len(names) - int(n_shared) :] = False
    excess = (
        table["excess"].fillna(0.0).to_numpy(dtype=float)
        if "excess" in table
        else candidates.astype(float)
    )
    only = (
        table["target_only"].fillna(False).to_numpy(dtype=bool)
        if "target_only" in table
        else np.zeros(len(names), dtype=bool)
    )
    overlap = top_gene_overlap(components, usage)
    groups = group_topics(overlap, candidates)
    if not groups:
        return empty
    rows = []
    for g in groups:
        pairs = overlap[np.ix_(g, g)][np.triu_indices(len(g), 1)]
        rows.append(
            {
                "topics": ",".join(names[i] for i in g),
                "n_topics": len(g),
                "excess": float(excess[g].max()),
                "overlap": float(pairs.mean()) if len(pairs) else 1.0,
                "target_only": bool(only[g].any()),
            }
        )
    out = pd.DataFrame(rows, columns=columns)
    out = out.sort_values(["excess", "n_topics"], ascending=False, kind="stable")
    out.index = pd.Index([f"program_{i + 1}" for i in range(len(out))], name="program")
    return out


def program_groups(programs: pd.DataFrame | None, topics: Sequence[str]) -> list[np.ndarray]:
    """Each program's topics as indices into ``topics`` (the programs table's order).

    Topics of the table that ``topics`` does not hold are skipped.
    """
    if programs is None or len(programs) == 0:
        return []
    index = {str(t): i for i, t in enumerate(topics)}
    return [
        np.array([index[t] for t in str(members).split(",") if t in index], dtype=int)
        for members in programs["topics"]
    ]


def topic_enrichment(
    adata: AnnData,
    groupby: str,
    *,
    key: str = "bcnmf",
    groups: str | Sequence[str] | None = None,
    reference: str = "rest",
    sample_key: str | None = None,
    min_cells: int = 10,
) -> pd.DataFrame:
    """Test which topics each group of cells uses more than a reference.

    Uses the per-cell topic proportions of ``adata.obsm[f"X_{key}"]`` (written by
    :func:`bcnmf_sc.tl.bcnmf` or :func:`~bcnmf_sc.tl.bcnmf_transform`) and the statistics
    of the ``enrichment`` table of :func:`~bcnmf_sc.tl.bcnmf` (log2 fold change of the
    mean proportions, AUROC, two-sided Welch t-test with Benjamini-Hochberg adjustment
    within each group, ``enriched`` and ``target_only`` flags).

    With thousands of cells from a few donors, cell-level tests call almost any
    difference between donors significant (the cells of one donor are not independent
    replicates). Pass ``sample_key`` to test per sample instead: each sample's cells of
    a group (and of its reference) are averaged into one pseudo-bulk proportion per
    topic, and the Welch test compares these per-sample values, so the p-values say
    whether the difference holds across samples.

    Parameters
    ----------
    adata
        Annotated data with a fitted bcNMF.
    groupby
        Column of ``adata.obs`` defining the groups.
    key
        The ``key_added`` used in :func:`~bcnmf_sc.tl.bcnmf`.
    groups
        Groups to test; default all (except ``reference``).
    reference
        ``"rest"`` (all other cells with a value in ``groupby``) or one group.
    sample_key
        Column of ``adata.obs`` naming each cell's sample (donor, replicate): test per
        sample (pseudo-bulk mean proportions) instead of per cell. Cells with a missing
        sample are left out. The test is unpaired (Welch): right when samples are nested
        in the groups (condition per donor); conservative when every sample has cells on
        both sides (cell types within donors).
    min_cells
        With ``sample_key``: a sample counts on one side (group or reference) when it has
        at least this many cells there. Each side needs at least 2 samples.

    Returns
    -------
    Tidy table with columns ``group``, ``reference`` (``"rest"`` or the reference group),
    ``topic``, ``mean_group``, ``mean_reference``, ``log2fc``, ``auroc``, ``pval``,
    ``pval_adj``, ``pval_enriched_adj``, ``enriched``, ``excess``, ``pval_target_only``,
    ``target_only`` (see :func:`bcnmf_sc.tl._enrichment.compare_usage`) and, with
    ``sample_key``, ``n_samples_group`` and ``n_samples_reference``; within each group the
    most enriched topic (largest ``log2fc``) comes first. It is also stored in
    ``adata.uns[key][f"enrichment_{groupby}"]`` (replacing the table of an earlier call
    for the same ``groupby``, with or without ``sample_key``), where
    :func:`bcnmf_sc.pl.topic_enrichment` (``groupby=``) reads it.
    """
    obsm_key = f"X_{key}"
    if obsm_key not in adata.obsm or key not in adata.uns:
        raise KeyError(f"No bcNMF result under key {key!r}: run bcnmf_sc.tl.bcnmf first.")
    for what, column in (("groupby", groupby), ("sample_key", sample_key)):
        if column is not None and column not in adata.obs.columns:
            raise KeyError(
                f"{what} {column!r} is not a column of adata.obs; "
                f"available: {list(adata.obs.columns)}."
            )
    if sample_key is not None and sample_key == groupby:
        raise ValueError("sample_key must differ from groupby (samples are compared within).")
    if isinstance(min_cells, bool) or not isinstance(min_cells, numbers.Integral) or min_cells < 1:
        raise ValueError(f"min_cells must be a positive integer, got {min_cells!r}.")
    samples = None if sample_key is None else adata.obs[sample_key].to_numpy()
    col = adata.obs[groupby]
    present = list(pd.unique(col.dropna()))
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = [c for c in col.cat.categories if c in set(present)]
    labels = {str(c): c for c in present}
    if reference != "rest" and reference not in labels:
        raise ValueError(
            f"reference {reference!r} is not a value of {groupby!r}; "
            f"use 'rest' or one of {list(labels)}."
        )
    if groups is None:
        groups = [g for g in labels if g != reference]
    elif isinstance(groups, str):
        groups = [groups]
    unknown = [g for g in groups if str(g) not in labels]
    if unknown:
        raise ValueError(f"Unknown groups {unknown} in {groupby!r}; choose from {list(labels)}.")
    usage = np.asarray(adata.obsm[obsm_key])
    topics = list(adata.uns[key].get("topics", default_topic_names(usage.shape[1])))
    values = col.astype(object).map(lambda v: str(v) if pd.notna(v) else None).to_numpy()
    has_value = col.notna().to_numpy()
    frames = []
    for g in groups:
        in_g = values == str(g)
        in_ref = has_value & ~in_g if reference == "rest" else values == reference
        if in_g.sum() == 0 or in_ref.sum() == 0:
            raise ValueError(f"Group {g!r} or its reference has no cells.")
        try:
            df = compare_usage(
                usage,
                in_g,
                in_ref,
                topics,
                names=("group", "reference"),
                samples=samples,
                min_cells=int(min_cells),
            )
        except ValueError as err:
            raise ValueError(f"Group {g!r} of {groupby!r}: {err}") from None
        df.insert(0, "topic", df.index.astype(str))
        df.insert(0, "reference", str(reference))
        df.insert(0, "group", str(g))
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out.index = out.index.astype(str)
    adata.uns[key][f"enrichment_{groupby}"] = out
    return out
