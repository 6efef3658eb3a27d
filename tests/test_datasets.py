"""Bundled data sets: the semi-synthetic PBMC counts and the simulator's ground truth."""

import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp

from bcnmf_sc.datasets import image_demo, pbmc_semisynthetic, simulate, simulation_families


# ------------------------------------------------------------------ pbmc_semisynthetic
@pytest.fixture(scope="module")
def pbmc():
    return pbmc_semisynthetic()


@pytest.fixture(scope="module")
def original():
    return sc.datasets.pbmc68k_reduced()


def _dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def test_counts_are_nonnegative_integers(pbmc):
    assert sp.issparse(pbmc.X) and pbmc.X.format == "csr"
    X = _dense(pbmc.X)
    assert X.min() >= 0
    np.testing.assert_array_equal(X, np.round(X))
    np.testing.assert_array_equal(X, _dense(pbmc.layers["counts"]))


def test_recovered_counts_reproduce_the_stored_log_normalised_values(pbmc, original):
    """Before planting, log1p(counts * 1e4 / n_counts) rounded to 3 decimals is .raw."""
    assert list(pbmc.obs_names) == list(original.obs_names)
    assert list(pbmc.var_names) == list(original.raw.var_names)
    counts = _dense(pbmc.X).astype(np.float64)
    counts[np.ix_(pbmc.obs["program"], pbmc.var["program"])] = np.nan  # planted block
    n_counts = original.obs["n_counts"].to_numpy(dtype=np.float64)[:, None]
    renormalised = np.log1p(counts * 1e4 / n_counts)
    raw = _dense(original.raw.X).astype(np.float64)
    ok = ~np.isnan(renormalised)
    assert ok.mean() > 0.99
    # .raw holds 3 decimals: the renormalised counts agree to that precision
    np.testing.assert_allclose(renormalised[ok], raw[ok], rtol=0, atol=5.1e-4)


def test_conditions_share_cell_types(pbmc):
    assert list(pbmc.obs["condition"].cat.categories) == ["background", "target"]
    table = pbmc.obs.groupby("bulk_labels", observed=True)["condition"].value_counts().unstack()
    assert (table > 0).all().all()  # every cell type is in both conditions
    share = table["target"] / table.sum(1)
    assert share.between(0.3, 0.7).all()
    assert pbmc.obs["condition"].value_counts().min() >= 340


def test_program_cells_are_target_cells(pbmc):
    params = pbmc.uns["pbmc_semisynthetic"]
    program = pbmc.obs["program"].to_numpy()
    target = (pbmc.obs["condition"] == "target").to_numpy()
    assert program.dtype == bool and not program[~target].any()
    assert program.sum() == params["n_program_cells"]
    assert program.sum() == round(params["program_fraction"] * target.sum())
    assert pbmc.var["program"].dtype == bool
    assert pbmc.var["program"].sum() == params["n_program_genes"]
    assert sorted(pbmc.var_names[pbmc.var["program"]]) == sorted(params["program_genes"])
    assert (pbmc.obs.loc[program, "planted_counts"] > 0).all()
    assert (pbmc.obs.loc[~program, "planted_counts"] == 0).all()


def test_program_genes_are_raised_by_about_the_fold(pbmc):
    X = _dense(pbmc.X).astype(np.float64)
    totals = X.sum(1) - pbmc.obs["planted_counts"].to_numpy()  # depth before planting
    rel = X / totals[:, None]
    program = pbmc.obs["program"].to_numpy()
    target = (pbmc.obs["condition"] == "target").to_numpy()
    genes = pbmc.var["program"].to_numpy()
    fold = pbmc.uns["pbmc_semisynthetic"]["program_fold"]
    in_program = rel[program][:, genes].sum(1).mean()
    other_target = rel[target & ~program][:, genes].sum(1).mean()
    background = rel[~target][:, genes].sum(1).mean()
    assert in_program / other_target == pytest.approx(fold, rel=0.25)
    assert in_program / background == pytest.approx(fold, rel=0.25)
    assert other_target / background == pytest.approx(1.0, rel=0.2)


def test_other_genes_are_untouched(pbmc, original):
    """Outside the planted block every count is the recovered real count."""
    X = _dense(pbmc.X)
    n_counts = original.obs["n_counts"].to_numpy(dtype=np.float64)[:, None]
    real = np.rint(np.expm1(_dense(original.raw.X).astype(np.float64)) * n_counts / 1e4)
    block = np.outer(pbmc.obs["program"], pbmc.var["program"])
    np.testing.assert_array_equal(X[~block], real[~block])
    assert (X[block] >= real[block]).all()
    assert X[block].sum() - real[block].sum() == pbmc.obs["planted_counts"].sum()


def test_program_genes_are_not_cell_type_markers(pbmc):
    genes = set(pbmc.var_names[pbmc.var["program"]])
    markers = {"CD74", "LYZ", "CST3", "HLA-DRA", "NKG7", "GNLY", "CD79A", "MS4A1", "S100A8"}
    assert not genes & markers
    background = (pbmc.obs["condition"] == "background").to_numpy()
    detected = (_dense(pbmc.X[background]) > 0).mean(0)[pbmc.var["program"].to_numpy()]
    assert np.all((detected > 0.1) & (detected < 0.9))


def test_annotations_and_parameters_are_recorded(pbmc):
    for col in ("bulk_labels", "louvain", "phase", "n_counts"):
        assert col in pbmc.obs
    assert pbmc.obsm["X_umap_original"].shape == (pbmc.n_obs, 2)
    assert "X_umap" not in pbmc.obsm and "X_pca" not in pbmc.obsm
    params = pbmc.uns["pbmc_semisynthetic"]
    assert params["random_state"] == 0 and params["target_fraction"] == 0.5


def test_seed_reproducibility():
    kwargs = {"n_program_genes": 10, "program_fold": 2.5, "program_fraction": 0.5}
    a = pbmc_semisynthetic(random_state=3, **kwargs)
    b = pbmc_semisynthetic(random_state=3, **kwargs)
    c = pbmc_semisynthetic(random_state=4, **kwargs)
    assert (a.X != b.X).nnz == 0
    assert a.obs.equals(b.obs) and a.var.equals(b.var)
    assert not a.var["program"].equals(c.var["program"])
    assert not a.obs["condition"].equals(c.obs["condition"])


def test_parameters_change_the_result():
    a = pbmc_semisynthetic(n_program_genes=5, program_fraction=1.0, target_fraction=0.3)
    target = a.obs["condition"] == "target"
    assert a.var["program"].sum() == 5
    assert (a.obs.loc[target, "program"]).all()
    assert target.mean() == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"program_fraction": 0.0}, "program_fraction must be in"),
        ({"program_fraction": 1.5}, "program_fraction must be in"),
        ({"program_fold": 1.0}, "program_fold must be in"),
        ({"program_fold": float("nan")}, "program_fold must be a finite number"),
        ({"target_fraction": 1.0}, "target_fraction must be in"),
        ({"n_program_genes": 0}, "n_program_genes must be between 1 and"),
        ({"n_program_genes": 10_000}, "n_program_genes must be between 1 and"),
        ({"n_program_genes": 2.5}, "n_program_genes must be an integer"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pbmc_semisynthetic(**kwargs)


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        pbmc_semisynthetic(20)


# ----------------------------------------------------------------------------- simulate
def test_simulate_ground_truth():
    ad = simulate(
        n_target=300, n_background=200, n_genes=300, n_cell_types=3, n_markers=20,
        n_programs=2, n_program_genes=15, n_shared_programs=1, program_fraction=0.4,
    )  # fmt: skip
    assert ad.shape == (500, 300)
    target = (ad.obs["condition"] == "target").to_numpy()
    assert target.sum() == 300
    # planted programs only in target cells; shared programs in both
    for p in ("program_1", "program_2"):
        assert not ad.obs[p].to_numpy()[~target].any()
        assert ad.obs[p].to_numpy()[target].mean() == pytest.approx(0.4, abs=0.1)
        assert (ad.var["program"] == p).sum() == 15
        assert all(g.startswith(f"P{p[-1]}_") for g in ad.var_names[ad.var["program"] == p])
    assert ad.obs["shared_1"].to_numpy()[~target].any()
    assert (ad.var["program"] == "shared_1").sum() == 15
    assert ((ad.var["marker_of"] != "none").sum()) == 3 * 20
    # marker and program genes are disjoint
    assert not ((ad.var["marker_of"] != "none") & (ad.var["program"] != "none")).any()
    assert set(ad.obs["cell_type"].cat.categories) == {"type_1", "type_2", "type_3"}


def test_simulate_shared_program_fold():
    kw = dict(n_target=1500, n_background=1500, n_genes=300, n_cell_types=2, n_markers=20,
              n_shared_programs=1, n_program_genes=20, dispersion=0.0)  # fmt: skip
    # the default is program_fold, with the same random numbers as before the option existed
    same = simulate(**kw, shared_program_fold=3.0)
    assert (same.X != simulate(**kw).X).nnz == 0
    assert same.uns["simulation"]["shared_program_fold"] == 3.0

    def shared_fold(ad):
        X = ad.X.toarray()
        X = X / X.sum(1, keepdims=True)
        on = ad.obs["shared_1"].to_numpy()
        genes = (ad.var["program"] == "shared_1").to_numpy()
        return X[on][:, genes].sum(1).mean() / X[~on][:, genes].sum(1).mean()

    # the planted program (in half of the target cells) and the shared one differ in fold;
    # the shared genes' share of counts rises by less than the fold (the profile is
    # renormalised; here 4.6 for 6-fold and 2.7 for 3-fold)
    strong = simulate(**kw, shared_program_fold=6.0, program_fold=2.0)
    assert 4.0 < shared_fold(strong) < 6.0
    assert 2.3 < shared_fold(same) < 3.0


def test_simulate_counts_and_planted_signal():
    ad = simulate(n_target=400, n_background=400, n_genes=200, n_markers=10, dispersion=0.0)
    X = ad.X.toarray()
    np.testing.assert_array_equal(X, np.round(X))
    assert X.min() >= 0
    rel = X / X.sum(1, keepdims=True)
    genes = (ad.var["program"] == "program_1").to_numpy()
    on = ad.obs["program_1"].to_numpy()
    target = (ad.obs["condition"] == "target").to_numpy()
    ratio = rel[on][:, genes].mean() / rel[target & ~on][:, genes].mean()
    assert ratio == pytest.approx(3.0, rel=0.3)  # program_fold, before renormalisation


def test_simulate_seed_and_errors():
    a = simulate(n_target=50, n_background=50, n_genes=300, random_state=1)
    b = simulate(n_target=50, n_background=50, n_genes=300, random_state=1)
    assert (a.X != b.X).nnz == 0
    assert "counts" not in a.layers
    assert "counts" in simulate(n_target=20, n_background=20, counts_layer=True).layers
    with pytest.raises(ValueError, match="n_genes=100 is too small"):
        simulate(n_genes=100)


# ------------------------------------------------------------------ simulation families
@pytest.mark.parametrize("name", sorted(simulation_families()))
def test_family_shapes_and_ground_truth(name):
    fam = simulation_families()[name]
    kw = dict(fam["kwargs"])
    n_t, n_b = kw.pop("n_target", 1000) // 5, kw.pop("n_background", 1000) // 5
    ad = simulate(n_target=n_t, n_background=n_b, random_state=2, **kw)
    assert ad.shape == (n_t + n_b, 1000)
    target = (ad.obs["condition"] == "target").to_numpy()
    assert target.sum() == n_t
    assert {"condition", "cell_type"} <= set(ad.obs.columns)
    assert {"program", "marker_of"} <= set(ad.var.columns)
    progs = [c for c in ad.obs.columns if c.startswith("program_")]
    if fam["kind"] == "program":
        assert progs
        for p in progs:
            assert ad.obs[p].dtype == bool and not ad.obs[p].to_numpy()[~target].any()
            assert ad.obs[p].to_numpy()[target].any()
            assert (ad.var["program"] == p).sum() == 30
    else:
        assert not progs and not (ad.var["program"].astype(str).str.startswith("program")).any()
    assert fam["what"] and fam["kind"] in {"program", "null", "composition"}


def test_families_keep_the_default_simulation():
    fams = simulation_families()
    assert fams["default"]["kwargs"] == {}
    assert len(fams) >= 11
    fams["default"]["kwargs"]["n_target"] = 5  # a fresh copy each call
    assert simulation_families()["default"]["kwargs"] == {}


def _rel(ad):
    X = ad.X.toarray().astype(np.float64)
    return X / X.sum(1, keepdims=True)


def test_null_family_conditions_share_one_distribution():
    ad = simulate(n_target=2000, n_background=2000, random_state=0,
                  **simulation_families()["null"]["kwargs"])  # fmt: skip
    t = (ad.obs["condition"] == "target").to_numpy()
    from scipy.stats import ttest_ind

    rel = _rel(ad)
    p = ttest_ind(rel[t], rel[~t], axis=0, equal_var=False).pvalue
    p = p[np.isfinite(p)]
    assert (p < 0.01).mean() < 0.03  # about 1% under the null
    tot = np.asarray(ad.X.sum(1)).ravel()
    assert np.median(tot[t]) / np.median(tot[~t]) == pytest.approx(1.0, abs=0.08)
    share = ad.obs.groupby("condition", observed=True)["cell_type"].value_counts(normalize=True)
    np.testing.assert_allclose(share["target"].sort_index(), share["background"].sort_index(),
                               atol=0.04)  # fmt: skip
    # and the same expected profile: the program-free simulation is the default one minus
    # the program, so its target cells look like the default's background cells
    assert ad.uns["simulation"]["n_programs"] == 0


@pytest.mark.parametrize("name", ["depth", "depth_only"])
def test_depth_families_double_the_target_depth(name):
    ad = simulate(random_state=1, **simulation_families()[name]["kwargs"])
    t = (ad.obs["condition"] == "target").to_numpy()
    tot = np.asarray(ad.X.sum(1)).ravel()
    assert tot[t].mean() / tot[~t].mean() == pytest.approx(2.0, rel=0.08)
    assert np.median(tot[t]) / np.median(tot[~t]) == pytest.approx(2.0, rel=0.1)


def test_depth_ratio_keeps_the_profile():
    kw = dict(n_target=1500, n_background=1500, n_genes=300, n_markers=20, n_programs=0)
    a = simulate(**kw, random_state=0)
    b = simulate(**kw, depth_ratio=2.0, random_state=0)
    # same cell types and libraries up to the factor: the same profiles, deeper
    assert a.obs.equals(b.obs)
    np.testing.assert_allclose(_rel(b)[:1500].mean(0), _rel(a)[:1500].mean(0), atol=2e-3)


def test_composition_shift_proportions():
    ad = simulate(n_target=3000, n_background=3000, random_state=0,
                  **simulation_families()["composition"]["kwargs"])  # fmt: skip
    t = (ad.obs["condition"] == "target").to_numpy()
    is1 = (ad.obs["cell_type"] == "type_1").to_numpy()
    assert is1[t].mean() == pytest.approx(0.5, abs=0.03)
    assert is1[~t].mean() == pytest.approx(1 / 6, abs=0.02)
    assert is1[t].mean() / is1[~t].mean() == pytest.approx(3.0, rel=0.15)
    others = ad.obs.loc[t & ~is1, "cell_type"].value_counts(normalize=True)
    np.testing.assert_allclose(others[others > 0], 0.2, atol=0.03)
    with pytest.raises(ValueError, match="composition_shift factor"):
        simulate(composition_shift=(0, 4.0))


def test_program_in_one_cell_type():
    ad = simulate(random_state=0, **simulation_families()["one_type"]["kwargs"])
    on = ad.obs["program_1"].to_numpy()
    assert on.any() and (ad.obs.loc[on, "cell_type"] == "type_1").all()
    t1 = ((ad.obs["condition"] == "target") & (ad.obs["cell_type"] == "type_1")).to_numpy()
    assert on[t1].mean() == pytest.approx(0.5, abs=0.08)
    with pytest.raises(ValueError, match="program_cell_type"):
        simulate(program_cell_type=4)


def test_programs_of_different_strength():
    ad = simulate(n_target=2000, n_background=500, dispersion=0.0, random_state=0,
                  **simulation_families()["two_programs"]["kwargs"])  # fmt: skip
    assert ad.uns["simulation"]["program_fold"] == [3.0, 1.8]
    rel = _rel(ad)
    t = (ad.obs["condition"] == "target").to_numpy()
    ratios = []
    for p in ("program_1", "program_2"):
        on = ad.obs[p].to_numpy()
        g = (ad.var["program"] == p).to_numpy()
        ratios.append(rel[on][:, g].mean() / rel[t & ~on][:, g].mean())
    assert ratios[0] == pytest.approx(3.0, rel=0.2)
    assert ratios[1] == pytest.approx(1.8, rel=0.2)


def test_weak_and_unbalanced_families():
    fams = simulation_families()
    weak = simulate(random_state=0, **fams["weak"]["kwargs"])
    t = (weak.obs["condition"] == "target").to_numpy()
    assert weak.obs["program_1"].to_numpy()[t].mean() == pytest.approx(0.1, abs=0.03)
    assert weak.uns["simulation"]["program_fold"] == 1.5
    kw = fams["unbalanced"]["kwargs"]
    assert kw["n_background"] == 10 * kw["n_target"]


# -------------------------------------------------------------------------- image_demo
def test_image_demo():
    ad = image_demo()
    assert ad.shape == (350, 784)
    assert list(ad.obs["condition"].cat.categories) == ["background", "target"]
    t = (ad.obs["condition"] == "target").to_numpy()
    assert t.sum() == 200 and t[:200].all()
    assert ad.obs.loc[t, "digit"].value_counts().to_dict() == {"0": 100, "1": 100}
    assert ad.obs.loc[~t, "digit"].isna().all()
    X = np.asarray(ad.X)
    assert X.dtype == np.float32 and X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_allclose(X * 255, np.round(X * 255), atol=1e-4)  # uint8 / 255
    from bcnmf_sc.datasets._image_demo import DATA_DIR

    licence = (DATA_DIR / "LICENSE-source").read_text()
    assert "MIT License" in licence and "Yixuan Li" in licence
    assert ad.uns["image_demo"]["image_shape"] == [28, 28]
