"""Tests of geneae.pp: each step against scanpy / numpy / scikit-learn on random data."""

from __future__ import annotations

import json
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from geneae import facts as _facts
from geneae import matrix_values
from geneae.config import PreprocessConfig
from geneae.errors import (
    ConfigError,
    DataWarning,
    GeneaeError,
    InputError,
    ModelFileError,
    NotFittedError,
)
from geneae.matrix_values import is_count_matrix
from geneae.pp import Preprocessor, blocks, pseudobulk, transpose
from geneae.resolve_preprocess import PRESET_STEPS


# -- data ---------------------------------------------------------------------------------
def make_counts(n_cells: int = 240, n_genes: int = 300, seed: int = 0, sparse: bool = True):
    """NB counts with gene-specific means, no all-zero cells or genes, labels in obs."""
    rng = np.random.default_rng(seed)
    mean = rng.lognormal(0.0, 1.0, size=n_genes) * rng.lognormal(0.0, 0.3, size=(n_cells, 1))
    x = rng.poisson(rng.gamma(2.0, mean / 2.0)).astype(np.float32)
    x[:, x.sum(axis=0) == 0] = 1.0
    x[x.sum(axis=1) == 0, 0] = 1.0
    obs = pd.DataFrame(
        {"label": pd.Categorical(rng.choice(["a", "b", "c"], size=n_cells))},
        index=[f"cell{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)])
    return ad.AnnData(X=sp.csr_matrix(x) if sparse else x, obs=obs, var=var)


def make_continuous(n_cells: int = 150, n_genes: int = 80, seed: int = 0, negative: bool = True):
    """Dense non-count values: standardised-looking (negative) or log-normalised-looking."""
    rng = np.random.default_rng(seed)
    scale = rng.lognormal(0.0, 0.7, size=n_genes)
    x = rng.normal(0.0, 1.0, size=(n_cells, n_genes)) * scale
    if not negative:
        x = np.log1p(np.abs(x) * 3)
    obs = pd.DataFrame(index=[f"s{i}" for i in range(n_cells)])
    obs["label"] = pd.Categorical(rng.choice(["x", "y"], size=n_cells))
    var = pd.DataFrame(index=[f"g{j}" for j in range(n_genes)])
    return ad.AnnData(X=x.astype(np.float32), obs=obs, var=var)


def dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def scanpy_lognorm(adata: ad.AnnData) -> ad.AnnData:
    out = adata.copy()
    out.X = sp.csr_matrix(out.X, dtype=np.float64) if sp.issparse(out.X) else out.X.astype(float)
    sc.pp.normalize_total(out, target_sum=1e4)
    sc.pp.log1p(out)
    return out


# -- single steps against references ------------------------------------------------------
def test_normalize_total_and_log1p_match_scanpy() -> None:
    adata = make_counts()
    norm = Preprocessor("none", normalize=True, target_sum=1e4).fit_transform(adata)
    ref = adata.copy()
    sc.pp.normalize_total(ref, target_sum=1e4)
    np.testing.assert_allclose(dense(norm.X), dense(ref.X), rtol=1e-5)
    logged = Preprocessor("none", normalize=True, log1p=True).fit_transform(adata)
    np.testing.assert_allclose(dense(logged.X), dense(scanpy_lognorm(adata).X), rtol=1e-5)


@pytest.mark.parametrize("sparse", [True, False])
def test_hvg_seurat_v3_matches_scanpy(sparse: bool) -> None:
    pytest.importorskip("skmisc")
    adata = make_counts(sparse=sparse)
    pre = Preprocessor("counts", n_top_genes=60).fit(adata)
    table = sc.pp.highly_variable_genes(adata, flavor="seurat_v3", n_top_genes=60, inplace=False)
    assert pre.genes_ == list(adata.var_names[table["highly_variable"].to_numpy()])


@pytest.mark.parametrize("flavor", ["seurat", "cell_ranger"])
def test_hvg_on_lognormalised_data_matches_scanpy(flavor: str) -> None:
    adata = make_counts(seed=1)
    pre = Preprocessor("lognorm", n_top_genes=50, hvg_flavor=flavor).fit(adata)
    ref = scanpy_lognorm(adata)
    table = sc.pp.highly_variable_genes(ref, flavor=flavor, n_top_genes=50, inplace=False)
    assert pre.genes_ == list(adata.var_names[table["highly_variable"].to_numpy()])


def counts_with_rare_genes(n_rare: int = 150, seed: int = 0) -> ad.AnnData:
    """Counts of 300 common genes and ``n_rare`` genes seen once each (a whole-genome
    table's tail): skmisc's loess is singular at scanpy's span 0.3 on them, not at 0.4."""
    rng = np.random.default_rng(seed)
    n_cells = 200
    common = rng.poisson(rng.lognormal(0, 1, 300), size=(n_cells, 300))
    rare = np.zeros((n_cells, n_rare))
    rare[rng.integers(0, n_cells, n_rare), np.arange(n_rare)] = 1
    x = np.hstack([common, rare]).astype(np.float32)
    x[x.sum(axis=1) == 0, 0] = 1.0
    x = x[:, x.sum(axis=0) > 0]
    var = pd.DataFrame(index=[f"gene{j}" for j in range(x.shape[1])])
    return ad.AnnData(X=sp.csr_matrix(x), var=var)


def test_hvg_seurat_v3_widens_a_singular_loess_as_scanpy_would_be_told_to() -> None:
    pytest.importorskip("skmisc")
    adata = counts_with_rare_genes()
    with pytest.raises(ValueError):  # scanpy's own default span
        sc.pp.highly_variable_genes(adata, flavor="seurat_v3", n_top_genes=100, inplace=False)
    with pytest.warns(DataWarning, match="singular at span 0.3 .* fitted at span 0.4"):
        pre = Preprocessor("counts", n_top_genes=100).fit(adata)
    table = sc.pp.highly_variable_genes(
        adata, flavor="seurat_v3", n_top_genes=100, span=0.4, inplace=False
    )
    assert pre.genes_ == list(adata.var_names[table["highly_variable"].to_numpy()])


def test_a_loess_singular_at_every_span_is_one_line_naming_the_way_out() -> None:
    from geneae.pp.transforms import SEURAT_V3_SPANS, with_loess_span

    tried = []

    def singular(span: float) -> None:
        tried.append(span)
        raise ValueError(b"reciprocal condition number  1e-16\n")

    with pytest.raises(InputError, match=r"singular on these 7 genes .*min_cells_per_gene"):
        with_loess_span(singular, 7)
    assert tried == list(SEURAT_V3_SPANS)

    def other_error(span: float) -> None:  # not the loess's: not retried, not renamed
        raise ValueError("something else")

    with pytest.raises(ValueError, match="something else"):
        with_loess_span(other_error, 7)


def test_hvg_by_variance_matches_numpy() -> None:
    adata = make_continuous()
    pre = Preprocessor("standardize", n_top_genes=20).fit(adata)
    top = np.argsort(-adata.X.astype(np.float64).var(axis=0), kind="stable")[:20]
    assert pre.genes_ == list(adata.var_names[np.sort(top)])


def test_hvg_by_mad_matches_numpy() -> None:
    adata = make_continuous(negative=False)
    pre = Preprocessor("minmax", n_top_genes=15).fit(adata)
    x = adata.X.astype(np.float64)
    mad = np.median(np.abs(x - np.median(x, axis=0)), axis=0)
    top = np.argsort(-mad, kind="stable")[:15]
    assert pre.genes_ == list(adata.var_names[np.sort(top)])


def test_n_top_genes_at_least_n_genes_keeps_all() -> None:
    adata = make_counts(n_genes=50)
    out = Preprocessor("lognorm", n_top_genes=50).fit_transform(adata)
    assert list(out.var_names) == list(adata.var_names)


def test_zscore_matches_standard_scaler() -> None:
    adata = make_continuous()
    out = Preprocessor("standardize", clip=0.0).fit_transform(adata)
    ref = StandardScaler().fit_transform(adata.X.astype(np.float64))
    assert isinstance(out.X, np.ndarray) and out.X.dtype == np.float32
    np.testing.assert_allclose(out.X, ref, rtol=1e-5, atol=1e-5)
    clipped = Preprocessor("standardize", clip=1.5).fit_transform(adata)
    np.testing.assert_allclose(clipped.X, np.clip(ref, -1.5, 1.5), rtol=1e-5, atol=1e-5)


def test_standardize_on_counts_normalises_and_logs_first() -> None:
    adata = make_counts()
    out = Preprocessor("standardize").fit_transform(adata)
    ref = StandardScaler().fit_transform(dense(scanpy_lognorm(adata).X))
    np.testing.assert_allclose(out.X, np.clip(ref, -10, 10), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(dense(out.layers["counts"]), dense(adata.X))


@pytest.mark.parametrize("clip", [0.0, 0.7, 10.0])
def test_scaling_a_sparse_block_gives_the_bits_of_densifying_first(clip: float) -> None:
    from geneae.pp.steps import _scaled_dense

    rng = np.random.default_rng(3)
    x = sp.random(300, 120, density=0.08, format="csr", random_state=4) * 30
    x.data = np.log1p(x.data)
    mean, std = rng.random(120), rng.random(120) + 0.05
    mean[:3], std[:3] = 0.0, 1.0  # a gene that is all zeros after fitting
    ref = (x.toarray() - mean) / std
    if clip > 0:
        ref = np.clip(ref, -clip, clip)
    out = _scaled_dense(x, mean, std, clip)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, ref.astype(np.float32))
    # duplicates are added, as toarray adds them
    dup = sp.csr_matrix(
        (np.array([1.0, 2.0, 4.0]), np.array([1, 1, 0]), np.array([0, 2, 3])), shape=(2, 3)
    )
    np.testing.assert_array_equal(
        _scaled_dense(dup, np.zeros(3), np.ones(3), 0.0),
        np.array([[0, 3, 0], [4, 0, 0]], np.float32),
    )


def test_constant_gene_scales_to_zero_not_nan() -> None:
    adata = make_continuous()
    adata.X[:, 3] = 2.5
    out = Preprocessor("standardize").fit_transform(adata)
    assert np.all(np.isfinite(out.X)) and np.all(out.X[:, 3] == 0)


def test_minmax_matches_sklearn_and_clips_new_data() -> None:
    adata = make_continuous(negative=False)
    pre = Preprocessor("minmax")
    out = pre.fit_transform(adata)
    np.testing.assert_allclose(out.X, MinMaxScaler().fit_transform(adata.X), atol=1e-6)
    new = adata.copy()
    new.X = new.X * 3.0 - 1.0
    moved = pre.transform(new).X
    assert moved.min() >= 0.0 and moved.max() <= 1.0
    assert (moved == 0).any() and (moved == 1).any()


# -- presets and the output contract ------------------------------------------------------
def test_counts_preset_output_contract() -> None:
    adata = make_counts()
    before = adata.copy()
    out = Preprocessor("counts", n_top_genes=100).fit_transform(adata)
    assert out.n_vars == 100 and out.n_obs == adata.n_obs
    assert sp.isspmatrix_csr(out.X) and out.X.dtype == np.float32
    raw = adata[:, out.var_names].X.toarray()
    np.testing.assert_array_equal(out.layers["counts"].toarray(), raw)
    lib = raw.sum(axis=1, keepdims=True)  # library size over the kept genes
    np.testing.assert_allclose(out.X.toarray(), np.log1p(raw / lib * 1e4), rtol=1e-5)
    assert out.obs["label"].equals(adata.obs["label"])
    np.testing.assert_array_equal(adata.X.toarray(), before.X.toarray())  # input untouched
    assert list(adata.var_names) == list(before.var_names)


def test_dense_input_gives_dense_output() -> None:
    out = Preprocessor("lognorm", n_top_genes=40).fit_transform(make_counts(sparse=False))
    assert isinstance(out.X, np.ndarray) and isinstance(out.layers["counts"], np.ndarray)


def test_counts_layer_is_used_and_kept() -> None:
    adata = make_counts()
    lognorm = scanpy_lognorm(adata)
    lognorm.layers["counts"] = adata.X.copy()
    pre = Preprocessor("counts", n_top_genes=0)
    out = pre.fit_transform(lognorm)
    assert pre.steps_.preset == "counts" and pre.steps_.source == "counts"
    np.testing.assert_allclose(dense(out.X), dense(lognorm.X), rtol=1e-5)
    # auto finds the same counts and gives the model's input: the same values z-scored
    auto = Preprocessor("auto", n_top_genes=0)
    scaled = auto.fit_transform(lognorm).X
    assert auto.steps_.preset == "counts" and auto.steps_.scale and auto.steps_.clip == 10
    expected = np.clip(StandardScaler().fit_transform(dense(lognorm.X)), -10, 10)
    np.testing.assert_allclose(dense(scaled), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(dense(out.layers["counts"]), dense(adata.X))


def test_auto_resolves_from_the_data() -> None:
    assert Preprocessor().fit(make_counts()).steps_.preset == "counts"
    assert Preprocessor().fit(make_continuous()).steps_.preset == "standardize"


def test_none_preset_only_aligns_genes() -> None:
    adata = make_continuous()
    adata.X[0] = 0.0  # an all-zero cell is kept: no filtering in "none"
    out = Preprocessor("none").fit_transform(adata)
    np.testing.assert_array_equal(out.X, adata.X)
    assert "counts" not in out.layers


def test_from_config_uses_fields_and_resolves_auto_at_fit() -> None:
    cfg = PreprocessConfig(n_top_genes=30, clip=5.0, min_cells_per_gene=2)
    pre = Preprocessor.from_config(cfg)
    assert pre.config == cfg and pre.get_params() == cfg.model_dump()
    steps = pre.fit(make_counts()).steps_
    assert steps.preset == "counts" and steps.n_top_genes == 30 and steps.min_cells_per_gene == 2
    assert steps.is_resolved and steps.scale and steps.clip == 5.0  # auto on counts: z-scored
    steps = Preprocessor.from_config(cfg).fit(make_continuous(negative=False)).steps_
    assert steps.preset == "standardize" and not steps.log1p  # log-normalised: kept as is


@pytest.mark.parametrize(
    "kwargs",
    [
        {"preset": "zscore"},
        {"n_top_genes": -1},
        {"n_top_genes": 2.5},
        {"target_sum": 0},
        {"clip": -1.0},
        {"hvg_flavor": "pearson"},
        {"scale": "yes"},
        {"min_cells_per_gene": True},
        {"preset": "minmax", "scale": True},
    ],
)
def test_bad_parameters_raise_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        Preprocessor(**kwargs)


def test_presets_are_complete() -> None:
    keys = set(PRESET_STEPS["counts"])
    assert all(set(values) == keys for values in PRESET_STEPS.values())
    value_steps = {"preset", "source", "unlog", "normalize", "log1p", "gene_list"}
    # n_wide_genes follows the model (its wide members), not the preset.
    assert keys | value_steps | {"n_wide_genes"} == set(PreprocessConfig.model_fields)


# -- fitted state, persistence, alignment -------------------------------------------------
FITS = [
    ("counts", {"n_top_genes": 80}, True),
    ("lognorm", {"n_top_genes": 80}, True),
    ("standardize", {"n_top_genes": 80}, True),
    ("minmax", {"n_top_genes": 80}, False),
    ("none", {}, True),
]


@pytest.mark.parametrize(("preset", "kwargs", "sparse"), FITS)
def test_json_round_trip_gives_identical_transform(preset, kwargs, sparse, tmp_path) -> None:
    adata = make_counts(sparse=sparse, seed=2)
    pre = Preprocessor(preset, **kwargs).fit(adata)
    path = pre.save(tmp_path / "preprocessor.json")
    loaded = Preprocessor.load(path)
    assert loaded.to_dict() == pre.to_dict()
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    first, second, third = (p.transform(adata) for p in (pre, loaded, again))
    np.testing.assert_array_equal(dense(first.X), dense(second.X))
    np.testing.assert_array_equal(dense(first.X), dense(third.X))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind


@pytest.mark.parametrize(("preset", "kwargs", "sparse"), FITS)
def test_gene_permuted_input_gives_identical_output(preset, kwargs, sparse) -> None:
    adata = make_counts(sparse=sparse, seed=3)
    pre = Preprocessor(preset, **kwargs).fit(adata)
    perm = np.random.default_rng(0).permutation(adata.n_vars)
    shuffled = adata[:, perm].copy()
    a, b = pre.transform(adata), pre.transform(shuffled)
    assert list(a.var_names) == list(b.var_names) == pre.genes_
    np.testing.assert_array_equal(dense(a.X), dense(b.X))
    np.testing.assert_array_equal(dense(a.layers["counts"]), dense(b.layers["counts"]))


@pytest.mark.parametrize(("preset", "kwargs", "sparse"), FITS)
def test_transform_treats_each_cell_on_its_own(preset, kwargs, sparse) -> None:
    adata = make_counts(sparse=sparse, seed=4)
    pre = Preprocessor(preset, **kwargs).fit(adata)
    rows = np.random.default_rng(1).choice(adata.n_obs, size=25, replace=False)
    whole, part = pre.transform(adata), pre.transform(adata[rows].copy())
    np.testing.assert_array_equal(dense(whole.X)[rows], dense(part.X))
    assert list(part.obs_names) == list(adata.obs_names[rows])


def test_fit_transform_equals_fit_then_transform() -> None:
    adata = make_counts()
    pre = Preprocessor("counts", n_top_genes=50)
    out = pre.fit_transform(adata)
    np.testing.assert_array_equal(dense(out.X), dense(pre.transform(adata).X))


def test_missing_genes_raise_with_names() -> None:
    adata = make_counts()
    pre = Preprocessor("lognorm", n_top_genes=40).fit(adata)
    gone = pre.genes_[:7]
    subset = adata[:, ~adata.var_names.isin(gone)].copy()
    with pytest.raises(InputError, match=r"7 of the 40 genes .* missing") as info:
        pre.transform(subset)
    assert all(g in str(info.value) for g in gone[:5]) and "2 more" in str(info.value)


def test_extra_genes_are_dropped_with_a_warning() -> None:
    adata = make_counts()
    pre = Preprocessor("lognorm", n_top_genes=40).fit(adata)
    pre.transform(adata)  # the training genes: nothing to warn about
    more = make_counts(n_genes=3, seed=9).X
    var = pd.DataFrame(index=[*adata.var_names, "new1", "new2", "new3"])
    extra = ad.AnnData(X=sp.hstack([adata.X, more], format="csr"), obs=adata.obs, var=var)
    with pytest.warns(DataWarning, match="genes not used"):
        out = pre.transform(extra)
    assert list(out.var_names) == pre.genes_


def test_transform_before_fit_raises() -> None:
    with pytest.raises(NotFittedError, match="not fitted") as caught:
        Preprocessor().transform(make_counts())
    with pytest.raises(NotFittedError):
        Preprocessor().counts_to_input(np.zeros((2, 3)))
    # A GeneaeError (the CLI prints it), and a ValueError like scikit-learn's.
    assert isinstance(caught.value, GeneaeError)
    assert isinstance(caught.value, ValueError)


def test_counts_to_input_matches_transform() -> None:
    adata = make_counts()
    pre = Preprocessor("counts", n_top_genes=50).fit(adata)
    out = pre.transform(adata)
    mapped = pre.counts_to_input(out.layers["counts"].toarray())
    np.testing.assert_allclose(mapped, out.X.toarray(), rtol=1e-6)


def test_load_rejects_bad_files(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        Preprocessor.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        Preprocessor.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ModelFileError, match="not a saved geneae preprocessor"):
        Preprocessor.load(tmp_path / "other.json")


# -- data problems ------------------------------------------------------------------------
def test_counts_preset_on_lognormalised_data_says_use_lognorm() -> None:
    adata = scanpy_lognorm(make_counts())
    expected = r"needs raw counts .* hold log-normalised values \(max"
    with pytest.raises(InputError, match=expected) as e:
        Preprocessor("counts").fit(adata)
    assert "lognorm" in str(e.value) and "standardize" in str(e.value)


def test_counts_preset_on_scaled_data_says_use_standardize() -> None:
    with pytest.raises(InputError, match="needs raw counts") as e:
        Preprocessor("counts").fit(make_continuous())
    assert "centred values" in str(e.value) and "'standardize'" in str(e.value)


def test_seurat_v3_needs_counts() -> None:
    adata = make_continuous(negative=False)
    with pytest.raises(InputError, match="seurat_v3.*not raw counts"):
        Preprocessor("standardize", n_top_genes=10, hvg_flavor="seurat_v3").fit(adata)


def test_transform_of_counts_model_needs_counts() -> None:
    # Another preset is no fix once the model is trained: only the counts are.
    pre = Preprocessor("counts", n_top_genes=30).fit(make_counts())
    with pytest.raises(InputError, match=r"trained on raw counts.*Give the new data's raw") as e:
        pre.transform(scanpy_lognorm(make_counts()))
    assert "preset" not in str(e.value)


def test_negative_values_refused_by_log1p() -> None:
    with pytest.raises(InputError, match="non-negative values"):
        Preprocessor("none", log1p=True).fit(make_continuous())


def test_non_finite_values_refused() -> None:
    adata = make_continuous()
    adata.X[4, 2] = np.nan
    with pytest.raises(
        InputError, match=r"1 NaN or infinite value\(s\), the first nan at sample 's4', gene 'g2'"
    ):
        Preprocessor("standardize").fit(adata)


def test_lognorm_keeps_lognormalised_data_as_it_is(caplog) -> None:
    adata = make_continuous(negative=False)
    pre = Preprocessor("lognorm", n_top_genes=0)
    with caplog.at_level("INFO", logger="geneae.resolve"):
        out = pre.fit_transform(adata)
    assert "log-normalised already" in caplog.text
    assert not pre.steps_.normalize and not pre.steps_.log1p
    np.testing.assert_array_equal(out.X, adata.X)


def test_lognorm_refuses_scaled_data() -> None:
    with pytest.raises(InputError, match="lognorm.*centred values.*'standardize'"):
        Preprocessor("lognorm").fit(make_continuous())
    z_scores = make_continuous()
    z_scores.X = StandardScaler().fit_transform(z_scores.X).astype(np.float32)
    with pytest.raises(InputError, match="lognorm.*standardised values.*'standardize'"):
        Preprocessor("lognorm").fit(z_scores)


def test_unlogged_expression_is_scaled_to_a_million_and_logged_before_standardising(
    caplog,
) -> None:
    adata = make_continuous(negative=False)
    adata.X = np.expm1(adata.X) * 1000  # expected counts: non-integer, max in the thousands
    pre = Preprocessor("auto")
    with caplog.at_level("INFO", logger="geneae.resolve"):
        out = pre.fit_transform(adata)
    x = adata.X.astype(np.float64)
    assert "unlogged" in caplog.text and "each sample scaled to 1,000,000 and log1p" in caplog.text
    assert pre.steps_.log1p and pre.steps_.normalize and pre.steps_.target_sum == 1e6
    expected = StandardScaler().fit_transform(np.log1p(x / x.sum(1, keepdims=True) * 1e6))
    np.testing.assert_allclose(out.X, np.clip(expected, -10, 10), rtol=1e-4, atol=1e-4)
    # a target the user gives is the one used and said
    caplog.clear()
    with caplog.at_level("INFO", logger="geneae.resolve"):
        Preprocessor("auto", target_sum=1e4).fit(adata)
    assert "each sample scaled to 10,000 and log1p" in caplog.text


def test_tpm_is_only_logged_and_depth_is_normalised_out() -> None:
    """TPM (every total a million) keeps its values; a sample's depth (expected counts,
    the same profile at 3x the reads) no longer shows once normalised."""
    rng = np.random.default_rng(0)
    profile = rng.lognormal(2.0, 2.0, size=(40, 300))
    tpm = profile / profile.sum(1, keepdims=True) * 1e6
    adata = ad.AnnData(tpm.astype(np.float32))
    pre = Preprocessor("auto", n_top_genes=0, scale=False)
    out = pre.fit_transform(adata)
    assert pre.steps_.target_sum == 1e6 and pre.steps_.normalize
    np.testing.assert_allclose(out.X, np.log1p(adata.X.astype(np.float64)), rtol=1e-5)
    deeper = adata.copy()
    deeper.X = adata.X * np.where(np.arange(40) % 2, 3.0, 1.0)[:, None].astype(np.float32)
    np.testing.assert_allclose(pre.transform(deeper).X, out.X, rtol=1e-5, atol=1e-6)


def whole_genome_values(kind: str = "log-normalised") -> ad.AnnData:
    """Counts of more genes than the counts preset keeps, as they are (``counts``), as
    log-normalised values without counts, or as TPM-like ``unlogged`` values."""
    n_genes = PRESET_STEPS["counts"]["n_top_genes"] + 300
    counts = make_counts(n_cells=120, n_genes=n_genes, seed=3)
    if kind == "counts":
        return counts
    adata = scanpy_lognorm(counts)
    x = dense(adata.X)
    adata.X = (np.expm1(x) * 100 if kind == "unlogged" else x).astype(np.float32)
    return adata


@pytest.mark.parametrize("kind", ["counts", "log-normalised", "unlogged"])
def test_auto_keeps_the_seurat_top_genes_of_a_whole_genome_table(kind, caplog) -> None:
    adata = whole_genome_values(kind)
    n_top = PRESET_STEPS["counts"]["n_top_genes"]
    pre = Preprocessor("auto")
    with caplog.at_level("INFO", logger="geneae.pp.selection"):
        pre.fit(adata)
    # scanpy's seurat flavour on the log-normalised values
    ref = scanpy_lognorm(adata) if kind == "counts" else adata.copy()
    if kind == "unlogged":
        sc.pp.log1p(ref)
    table = sc.pp.highly_variable_genes(ref, flavor="seurat", n_top_genes=n_top, inplace=False)
    assert pre.genes_ == list(adata.var_names[table["highly_variable"].to_numpy()])
    assert f"kept the {n_top:,} most variable of {adata.n_vars:,} genes" in caplog.text
    assert "n_top_genes: 0 keeps them all" in caplog.text


def test_auto_keeps_every_gene_when_told_or_when_values_are_scaled() -> None:
    adata = whole_genome_values()
    every = Preprocessor("auto", n_top_genes=0).fit(adata)
    assert every.genes_ == list(adata.var_names)
    # z-scores: every gene's variance is one, nothing to rank by
    scaled = adata.copy()
    scaled.X = StandardScaler().fit_transform(scaled.X).astype(np.float32)
    assert Preprocessor("auto").fit(scaled).genes_ == list(adata.var_names)


def test_auto_keeps_the_genes_of_largest_variance_of_centred_log_values(caplog) -> None:
    from geneae.facts import FactsAccumulator, describe

    # UCSC Xena's pan-cancer form: each gene's log expression minus its mean, not scaled
    adata = whole_genome_values()
    centred = adata.copy()
    centred.X = (centred.X - centred.X.mean(axis=0)).astype(np.float32)
    facts = describe(centred)
    assert facts.value_type == "standardised" and not facts.unit_variance
    assert facts.describe_values().startswith("centred values (min ")
    streamed = FactsAccumulator(centred.n_vars, has_counts_layer=False)
    for start in range(0, centred.n_obs, 50):
        streamed.add(centred.X[start : start + 50], None)
    assert streamed.facts() == facts  # on disk as in memory
    n_top = PRESET_STEPS["counts"]["n_top_genes"]
    pre = Preprocessor("auto")
    with caplog.at_level("INFO", logger="geneae.pp.selection"):
        pre.fit(centred, facts=facts)
    kept = np.sort(np.argsort(-np.var(centred.X.astype(np.float64), axis=0))[:n_top])
    assert pre.genes_ == list(centred.var_names[kept])
    assert f"kept the {n_top:,} most variable of {centred.n_vars:,} genes" in caplog.text
    # scaled to z-scores they are kept whole (the test above), and told apart by their facts
    scaled = StandardScaler().fit_transform(centred.X).astype(np.float32)
    assert describe(ad.AnnData(scaled, var=centred.var)).unit_variance
    clipped = np.clip(scaled, -3.0, 3.0)  # scanpy's max_value: still z-scores
    assert describe(ad.AnnData(clipped, var=centred.var)).unit_variance


def test_unit_variance_against_numpy_on_random_spreads() -> None:
    from geneae.matrix_values import gene_variances, is_unit_variance

    rng = np.random.default_rng(5)
    x = rng.normal(0.0, rng.lognormal(0.0, 0.8, 300), (90, 300))
    np.testing.assert_allclose(gene_variances(x, rows=16), np.var(x, axis=0), rtol=1e-10)
    sparse = np.where(rng.random(x.shape) < 0.7, 0.0, x)
    np.testing.assert_allclose(
        gene_variances(sp.csr_matrix(sparse), rows=7), np.var(sparse, axis=0), rtol=1e-10
    )
    assert not is_unit_variance(np.var(x, axis=0))
    z = (x - x.mean(0)) / x.std(0)
    z[3, 7], z[5, 9] = np.nan, np.inf  # bad values: those two genes are left out
    variances = gene_variances(z, rows=16)
    assert np.isnan(variances[[7, 9]]).all() and np.isfinite(np.delete(variances, [7, 9])).all()
    assert is_unit_variance(np.r_[variances, 0.0])  # a constant gene left out too
    assert not is_unit_variance(np.zeros(4))


def test_why_counts_with_a_negative_entry_are_not_counts_is_said() -> None:
    from geneae.facts import describe

    adata = make_counts()
    adata.X = np.asarray(adata.X.toarray() if sp.issparse(adata.X) else adata.X, float)
    assert describe(adata).describe_values().startswith("raw counts (max ")
    adata.X[3, 4] = -1.0  # one bad entry: the table is no longer counts, and why is named
    facts = describe(adata)
    assert facts.value_type != "raw counts" and facts.min_value == -1.0
    assert f"(min -1, max {adata.X.max():,.4g})" in facts.describe_values()


@pytest.mark.parametrize(
    ("log", "named"), [(np.log2, "log2(0.001)"), (np.log, "ln(0.001)"), (np.log10, None)]
)
def test_a_log_floor_is_named_as_the_log_of_its_pseudo_count(log, named) -> None:
    from geneae.facts import describe

    tpm = np.expm1(dense(make_counts().X).astype(np.float64))
    adata = ad.AnnData(np.round(log(tpm + 0.001), 4).astype(np.float32))  # as tables write them
    text = describe(adata).describe_values()
    assert text.startswith("other values (min ")
    if named is None:  # log10's floor (-3) is a whole number: not named
        assert "pseudo-count" not in text
    else:
        assert f" = {named}: log values with a pseudo-count, max " in text


def test_duplicate_gene_names_refused() -> None:
    adata = make_counts()
    adata.var_names = ["same"] * 2 + list(adata.var_names[2:])
    with pytest.raises(InputError, match="more than once"):
        Preprocessor("counts").fit(adata)


# -- filters ------------------------------------------------------------------------------
def test_empty_cells_and_genes_dropped_with_warning_only_in_fit() -> None:
    adata = make_counts(sparse=False)
    adata.X[[3, 7]] = 0
    adata.X[:, 5] = 0
    adata.X = sp.csr_matrix(adata.X)
    pre = Preprocessor("counts", n_top_genes=0)
    with pytest.warns(DataWarning, match=r"2 of 240 cells .*1 of 300 genes"):
        out = pre.fit_transform(adata)
    assert out.n_obs == 238 and "cell3" not in out.obs_names and "gene5" not in out.var_names
    full = pre.transform(adata)
    assert list(full.obs_names) == list(adata.obs_names)  # transform keeps every cell
    assert np.all(full.X[3].toarray() == 0)


def test_cells_empty_in_the_selected_genes_are_dropped(tmp_path) -> None:
    adata = make_counts(sparse=False)
    high = np.argsort(-adata.X.sum(axis=0))[:5]  # detected in every cell
    adata.X[10, high] = 0
    path = tmp_path / "genes.txt"
    path.write_text("\n".join(adata.var_names[high]))
    with pytest.warns(DataWarning, match="1 all zero in the selected genes"):
        out = Preprocessor("lognorm", gene_list=path).fit_transform(adata)
    assert "cell10" not in out.obs_names and out.n_obs == adata.n_obs - 1


def test_cell_and_gene_filters() -> None:
    adata = make_counts(sparse=False)
    totals = adata.X.sum(axis=1)
    threshold = float(np.median(totals))
    pre = Preprocessor("lognorm", n_top_genes=0, min_counts_per_cell=threshold)
    with pytest.warns(DataWarning, match="min_counts_per_cell"):
        out = pre.fit_transform(adata)
    assert list(out.obs_names) == list(adata.obs_names[totals >= threshold])
    n_cells = (adata.X > 0).sum(axis=0)
    threshold = int(np.median(n_cells))
    pre = Preprocessor("lognorm", n_top_genes=0, min_cells_per_gene=threshold)
    with pytest.warns(DataWarning, match="min_cells_per_gene"):
        pre.fit(adata)
    assert pre.genes_ == list(adata.var_names[n_cells >= threshold])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"min_counts_per_cell": 1e9}, "min_counts_per_cell"),
        ({"min_genes_per_cell": 100_000}, "min_genes_per_cell"),
        ({"min_cells_per_gene": 100_000}, "min_cells_per_gene"),
    ],
)
def test_filter_that_removes_everything_is_named(kwargs: dict, name: str) -> None:
    with pytest.raises(InputError, match=f"{name}=.* removed all"):
        Preprocessor("lognorm", **kwargs).fit(make_counts())


def test_gene_list_keeps_file_order_and_warns_on_unknown(tmp_path) -> None:
    adata = make_counts()
    wanted = list(adata.var_names[np.argsort(-adata.X.toarray().sum(axis=0))[:3]])
    path = tmp_path / "genes.txt"
    path.write_text(f"# wanted\n{wanted[2]}\n{wanted[0]}\n\n{wanted[1]}\nnot_a_gene\n")
    with pytest.warns(DataWarning, match="1 of 4 listed genes"):
        out = Preprocessor("lognorm", gene_list=path).fit_transform(adata)
    assert list(out.var_names) == [wanted[2], wanted[0], wanted[1]]


def test_gene_list_matching_nothing_names_file_and_ids(tmp_path) -> None:
    path = tmp_path / "ensembl.txt"
    path.write_text("ENSG0001\nENSG0002\nENSG0003\nENSG0004\n")
    with pytest.raises(InputError, match="ensembl.txt: none of its 4 gene IDs") as e:
        Preprocessor("lognorm", gene_list=path).fit(make_counts())
    assert "ENSG0001" in str(e.value) and "gene0" in str(e.value)
    with pytest.raises(InputError, match="not found"):
        Preprocessor("lognorm", gene_list=tmp_path / "absent.txt").fit(make_counts())


# -- pseudobulk and transpose -------------------------------------------------------------
def test_pseudobulk_matches_pandas_groupby() -> None:
    adata = make_counts(n_cells=90, n_genes=20)
    adata.obs["sample"] = np.repeat(["s1", "s2", "s3"], 30)
    adata.layers["counts"] = adata.X.copy()
    out = pseudobulk(adata, ["sample", "label"])
    frame = pd.DataFrame(adata.X.toarray(), columns=adata.var_names)
    ref = frame.groupby([adata.obs["sample"].to_numpy(), adata.obs["label"].to_numpy()]).sum()
    np.testing.assert_array_equal(out.X, ref.to_numpy().astype(np.int64))
    sizes = adata.obs.groupby(["sample", "label"], observed=True).size().to_numpy()
    np.testing.assert_array_equal(out.obs["n_cells"], sizes)
    assert out.obs_names[0] == f"s1_{ref.index[0][1]}" and "counts" in out.layers


def test_pseudobulk_refuses_non_counts_and_skips_missing_groups() -> None:
    with pytest.raises(InputError, match="pseudobulk needs raw counts"):
        pseudobulk(make_continuous(), "label", layer=None)
    adata = make_counts(n_cells=30, n_genes=5)
    adata.obs["group"] = ["g1"] * 10 + [None] * 5 + ["g2"] * 15
    with pytest.warns(DataWarning, match="5 cells with a missing group"):
        out = pseudobulk(adata, "group")
    assert list(out.obs["n_cells"]) == [10, 15]
    np.testing.assert_array_equal(out.X[1], adata.X[15:].toarray().sum(axis=0))


def test_transpose_swaps_samples_and_genes() -> None:
    adata = make_counts(n_cells=12, n_genes=7)
    adata.layers["counts"] = adata.X.copy()
    out = transpose(adata)
    assert out.shape == (7, 12) and list(out.obs_names) == list(adata.var_names)
    assert sp.isspmatrix_csr(out.X) and sp.isspmatrix_csr(out.layers["counts"])
    np.testing.assert_array_equal(out.X.toarray(), adata.X.toarray().T)
    assert "label" in out.var


# -- memory: blocks of rows, shared arrays ------------------------------------------------
BLOCK_FITS = [
    *FITS,
    ("counts", {"min_counts_per_cell": 400, "n_top_genes": 80}, True),  # drops cells
    ("standardize", {"n_top_genes": 80}, False),
    ("minmax", {"n_top_genes": 0}, True),
]


def outputs(out: ad.AnnData) -> list[np.ndarray]:
    parts = [out.X, out.layers["counts"]] if "counts" in out.layers else [out.X]
    return [dense(p) for p in parts] + [np.asarray(out.obs_names), np.asarray(out.var_names)]


@pytest.mark.parametrize(("preset", "kwargs", "sparse"), BLOCK_FITS)
def test_blocks_of_rows_give_the_one_piece_result(preset, kwargs, sparse, monkeypatch) -> None:
    adata = make_counts(sparse=sparse, seed=5)
    x = dense(adata.X)
    x[3] = 0  # an empty cell, dropped in fit
    adata.X = sp.csr_matrix(x) if sparse else x
    monkeypatch.setattr(blocks, "BLOCK_VALUES", 10**12)  # one block
    pre_one = Preprocessor(preset, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        fitted_one = pre_one.fit_transform(adata)
        monkeypatch.setattr(blocks, "BLOCK_VALUES", 97)  # a few rows per block
        pre_many = Preprocessor(preset, **kwargs)
        fitted_many = pre_many.fit_transform(adata)
    assert pre_many.to_dict() == pre_one.to_dict()
    for a, b in zip(outputs(fitted_one), outputs(fitted_many), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(
        outputs(pre_one.transform(adata)), outputs(pre_many.transform(adata)), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_counts_preset_is_float64_arithmetic_rounded_once() -> None:
    adata = make_counts(seed=6)
    out = Preprocessor("counts", n_top_genes=0).fit_transform(adata)
    x = dense(adata.X).astype(np.float64)
    expected = np.log1p(x * (1e4 / x.sum(axis=1, keepdims=True))).astype(np.float32)
    np.testing.assert_allclose(dense(out.X), expected, rtol=1e-7, atol=0)
    # float32 arithmetic throughout would differ by more than the final rounding.
    x32 = dense(adata.X)
    in_float32 = np.log1p(x32 * (np.float32(1e4) / x32.sum(axis=1, keepdims=True)))
    np.testing.assert_allclose(dense(out.X), in_float32, rtol=1e-5)


@pytest.mark.parametrize("sparse", [True, False])
def test_copy_false_shares_unchanged_arrays_copy_true_does_not(sparse: bool) -> None:
    adata = make_counts(sparse=sparse, seed=7)
    pre = Preprocessor("counts", n_top_genes=0).fit(adata)
    source = adata.X
    shared, copied = pre.transform(adata, copy=False), pre.transform(adata)
    for a, b in zip(outputs(shared), outputs(copied), strict=True):
        np.testing.assert_array_equal(a, b)
    arrays = [source.data, source.indices] if sparse else [source]
    for a in arrays:
        assert not np.shares_memory(copied.layers["counts"].data, a)
    if sparse:
        assert np.shares_memory(shared.layers["counts"].data, source.data)
        assert np.shares_memory(shared.X.indices, source.indices)
        assert np.shares_memory(shared.X.indptr, source.indptr)
        assert not np.shares_memory(copied.X.indices, source.indices)
    else:
        assert np.shares_memory(shared.layers["counts"], source)
    # Genes left out or reordered: nothing is shared.
    subset = Preprocessor("counts", n_top_genes=50).fit(adata).transform(adata, copy=False)
    assert not np.shares_memory(dense(subset.layers["counts"]), dense(source))


def test_a_reader_and_the_checks_word_missing_values_alike(tmp_path) -> None:
    from geneae.io import read

    adata = make_continuous()
    adata.X[4, 2] = np.nan
    path = tmp_path / "holes.npy"
    np.save(path, adata.X)
    with pytest.raises(InputError) as by_reader:
        read(path)
    with pytest.raises(InputError) as by_check:
        Preprocessor("standardize").fit(adata)
    said = [str(e.value) for e in (by_reader, by_check)]
    for text in said:
        assert "1 NaN or infinite value(s), the first " in text
    # the same fix, word for word
    assert said[0][said[0].index("Remove") :] == said[1][said[1].index("Remove") :]


def test_bad_values_in_several_blocks_report_the_total_and_the_first(monkeypatch) -> None:
    adata = make_continuous()
    adata.X[4, 2] = adata.X[120, 7] = np.nan
    adata.X[130, 1] = -np.inf
    monkeypatch.setattr(blocks, "BLOCK_VALUES", 200)
    with pytest.raises(
        InputError, match=r"3 NaN or infinite value\(s\), the first .* at sample 's4', gene 'g2'"
    ):
        Preprocessor("standardize").fit(adata)
    positive = make_continuous(negative=False)
    pre = Preprocessor("none", log1p=True).fit(positive)
    positive.X[140, 3], positive.X[149, 5] = -1.0, -2.0  # both in late blocks
    with pytest.raises(InputError, match=r"X has 2 negative values \(e.g. -1 at sample 's140'"):
        pre.transform(positive)


def test_count_check_looks_at_every_block(monkeypatch) -> None:
    monkeypatch.setattr(matrix_values, "CHECK_BLOCK", 16)
    x = np.arange(100, dtype=np.float32)
    assert is_count_matrix(x)
    x[-1] = 0.5
    assert not is_count_matrix(x)
    x[-1], x[40] = 1.0, -3.0
    assert not is_count_matrix(x)


def xena_like(log=np.log2, pseudo: float = 0.001) -> tuple[ad.AnnData, np.ndarray]:
    """UCSC Xena's log2(TPM + 0.001), written to 4 decimals, and its TPM (samples total 1e6).

    Unmeasured genes sit at log2(0.001) = -9.97, not at 0.
    """
    tpm = np.expm1(dense(whole_genome_values().X).astype(np.float64))
    unmeasured = np.random.default_rng(0).random(tpm.shape) < 0.9  # mostly
    unmeasured[tpm.argmax(axis=0), np.arange(tpm.shape[1])] = False  # each gene somewhere
    tpm[unmeasured] = 0.0
    tpm *= 1e6 / tpm.sum(axis=1, keepdims=True)
    values = np.round(log(tpm + pseudo), 4).astype(np.float32)
    return ad.AnnData(values, obs=whole_genome_values().obs, var=whole_genome_values().var), tpm


def test_auto_ranks_log_values_with_a_negative_floor_as_if_the_floor_were_zero() -> None:
    from geneae.facts import describe

    adata, _ = xena_like()
    assert describe(adata).value_type == "other"
    n_top = PRESET_STEPS["counts"]["n_top_genes"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # scanpy's log of negative dispersions
        pre = Preprocessor("auto", unlog="no").fit(adata)  # kept on their log
    # scanpy's seurat flavour on the same values with their floor moved to 0
    ref = ad.AnnData(adata.X.astype(np.float64) - adata.X.min(), var=adata.var)
    table = sc.pp.highly_variable_genes(ref, flavor="seurat", n_top_genes=n_top, inplace=False)
    assert pre.genes_ == list(adata.var_names[table["highly_variable"].to_numpy()])


def test_auto_ranks_values_without_a_floor_by_their_variance() -> None:
    from geneae.facts import describe
    from geneae.logscale import may_be_floor

    # some samples of a table centred over all of them: their gene means moved off 0
    whole = whole_genome_values()
    values = dense(whole.X).astype(np.float64)
    subset = (values - values.mean(axis=0))[:60] + 0.3
    adata = ad.AnnData(subset.astype(np.float32), var=whole.var)
    facts = describe(adata)
    assert facts.value_type == "other" and facts.log_scale is None
    assert not may_be_floor(facts.min_value)
    pre = Preprocessor("auto").fit(adata)
    n_top = PRESET_STEPS["counts"]["n_top_genes"]
    kept = np.sort(np.argsort(-np.var(subset, axis=0), kind="stable")[:n_top])
    assert pre.steps_.hvg_flavor == "variance"
    assert pre.genes_ == list(adata.var_names[kept])
    # log10(TPM + 0.001) has a floor (-3): ranked floored at 0, as log values are
    xena10, _ = xena_like(np.log10)
    assert may_be_floor(describe(xena10).min_value) and describe(xena10).log_scale is None
    assert Preprocessor("auto").fit(xena10).steps_.hvg_flavor == "seurat"


def test_floors_of_logs_against_their_closed_form() -> None:
    from geneae.logscale import may_be_floor

    for pseudo in (0.1, 1e-3, 1e-6):
        for log in (np.log2, np.log, np.log10):
            assert may_be_floor(float(log(pseudo)))
    assert not any(may_be_floor(v) for v in (-8.274, -0.5, -2.5, -4.2))


# -- log values with a pseudo-count, undone (preprocess.unlog) -----------------------------
def test_auto_undoes_a_log_with_a_pseudo_count_as_if_given_the_expression() -> None:
    # log2(TPM + 0.001) takes the path of its TPM: the same genes and the same input
    adata, tpm = xena_like()
    pre = Preprocessor("auto")
    out = pre.fit_transform(adata)
    # 90% unmeasured: mostly zeros once undone, as single cells are, so scaled to 1e4
    assert pre.steps_.unlog == "log2(x+0.001)" and pre.steps_.target_sum == 1e4
    ref_pre = Preprocessor("auto")
    ref = ref_pre.fit_transform(ad.AnnData(tpm.astype(np.float32), var=adata.var))
    assert ref_pre.steps_.unlog == "no" and ref_pre.steps_.target_sum == 1e4
    assert pre.genes_ == ref_pre.genes_
    np.testing.assert_allclose(dense(out.X), dense(ref.X), atol=1e-3)  # 4 decimals of log2
    assert "log2(x+0.001) undone, normalised to 10000 per cell, log1p" in pre.describe_steps()


@pytest.mark.parametrize("preset", ["standardize", "minmax", "lognorm"])
def test_presets_that_log_transform_undo_a_log_first(preset) -> None:
    adata, _ = xena_like(np.log, pseudo=1e-5)
    pre = Preprocessor(preset, n_top_genes=0).fit(adata)
    assert pre.steps_.unlog == "ln(x+1e-05)" and pre.steps_.log1p
    assert Preprocessor("none").fit(adata).steps_.unlog == "no"  # none keeps every value


def test_a_value_below_the_floor_of_the_log_undone_is_refused() -> None:
    adata, _ = xena_like()
    pre = Preprocessor("auto").fit(adata)
    new = adata.copy()
    new.X[4, new.var_names.get_loc(pre.genes_[0])] = -12.0  # no TPM has this log2(TPM + 0.001)
    with pytest.raises(InputError, match=r"X has 1 values below -9.966, the floor of log2"):
        pre.transform(new)


def test_expression_given_to_a_model_of_its_log_is_refused() -> None:
    # TPM where the model was fitted on log2(TPM + 0.001): 2^5000 is no expression
    adata, tpm = xena_like()
    pre = Preprocessor("auto").fit(adata)
    new = ad.AnnData(tpm.astype(np.float32), obs=adata.obs, var=adata.var)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow on the console
        with pytest.raises(InputError, match=r"values above 29.9 .*not on the log"):
            pre.transform(new)


def test_unlog_given_is_used_and_no_keeps_the_log() -> None:
    adata, _ = xena_like()
    kept = Preprocessor("standardize", unlog=False, n_top_genes=0).fit(adata)  # YAML's `no`
    assert kept.steps_.unlog == "no" and not kept.steps_.log1p
    given = Preprocessor("standardize", unlog="log2( x + 1e-3 )", n_top_genes=0).fit(adata)
    assert given.steps_.unlog == "log2(x+0.001)"
    with pytest.raises(ConfigError, match="not a log with a pseudo-count"):
        Preprocessor(unlog="log2(x)")
    with pytest.raises(ConfigError, match="undoes a log of X, but preset 'counts'"):
        Preprocessor("counts", unlog="log2(x+1)").fit(make_counts())


def test_a_state_saved_before_unlog_loads_as_not_unlogged() -> None:
    pre = Preprocessor("auto").fit(make_continuous(negative=False))
    state = pre.to_dict()
    for section in (state["params"], state["fitted"]["steps"]):
        del section["unlog"]
    old = Preprocessor.from_dict(state)
    assert old.steps_.unlog is None and old.steps_.is_resolved
    adata = make_continuous(negative=False)
    np.testing.assert_array_equal(dense(old.transform(adata).X), dense(pre.transform(adata).X))


def test_reconstructions_of_unlogged_values_are_put_back_on_the_log() -> None:
    from geneae.model_outputs import in_values_space, units_of_space

    adata, _ = xena_like()
    pre = Preprocessor("standardize", n_top_genes=0, clip=0.0)
    x = dense(pre.fit_transform(adata).X)
    assert pre.steps_.unlog == "log2(x+0.001)"
    # a perfect reconstruction of the input is the user's log2(TPM + 0.001) again
    back = in_values_space(pre, x, adata)
    # float32 z-scores back at 1e4 per sample, x100 to TPM: a few 1e-3 of log2 at the floor
    np.testing.assert_allclose(back, dense(adata.X), atol=5e-3)
    assert back.min() == pytest.approx(np.log2(0.001), abs=1e-4)
    units = units_of_space(pre, "values", counts_model=False, genes_as_samples=False)
    assert units == "input units (other: log2(x+0.001))"


def log2_estimated_counts(n_samples: int = 60) -> tuple[ad.AnnData, np.ndarray]:
    """UCSC Xena TOIL's log2(expected_count + 1): reads that carry each sample's depth."""
    rng = np.random.default_rng(4)
    share = rng.dirichlet(np.full(400, 0.3))
    depth = np.exp(rng.normal(np.log(3e7), 0.5, n_samples))
    counts = rng.poisson(depth[:, None] * share) * rng.uniform(0.9, 1.1, (n_samples, 400))
    counts = np.round(counts, 2)
    counts[0] += 1.0  # every gene seen
    var = pd.DataFrame(index=[f"g{j}" for j in range(400)])
    obs = pd.DataFrame(index=[f"s{i}" for i in range(n_samples)])
    return ad.AnnData(np.round(np.log2(counts + 1), 4).astype(np.float32), obs=obs, var=var), counts


def test_log2_of_counts_with_depth_is_undone_as_its_counts_would_be() -> None:
    from geneae.facts import FactsAccumulator, describe

    adata, counts = log2_estimated_counts()
    facts = describe(adata)
    assert facts.value_type == "log-normalised" and facts.depth_in_log
    assert str(facts.log_scale) == "log2(x+1)"
    streamed = FactsAccumulator(adata.n_vars, has_counts_layer=False)
    for start in range(0, adata.n_obs, 25):
        streamed.add(adata.X[start : start + 25], None)
    assert streamed.facts() == facts  # on disk as in memory
    pre = Preprocessor("auto", n_top_genes=0)
    out = pre.fit_transform(adata, facts=facts)
    assert pre.steps_.unlog == "log2(x+1)" and pre.steps_.target_sum == 1e6
    ref_pre = Preprocessor("auto", n_top_genes=0)
    ref = ref_pre.fit_transform(ad.AnnData(counts.astype(np.float32), var=adata.var))
    assert ref_pre.steps_.unlog == "no" and pre.genes_ == ref_pre.genes_
    np.testing.assert_allclose(dense(out.X), dense(ref.X), atol=2e-3)
    # the same values as TPM (each sample a million) carry no depth; every sample of one
    # composition, their totals are alike in every base too, so no log2 is told and they
    # are kept as log values (log2 of TPM is recognised: tests/test_log2_normalised.py)
    tpm = counts / counts.sum(axis=1, keepdims=True) * 1e6
    as_tpm = ad.AnnData(np.log2(tpm + 1).astype(np.float32), var=adata.var)
    assert not describe(as_tpm).depth_in_log
    assert Preprocessor("auto", n_top_genes=0).fit(as_tpm).steps_.unlog == "no"
    # stored sparse, its zeros implicit: the same facts
    assert describe(ad.AnnData(sp.csr_matrix(adata.X), var=adata.var)).depth_in_log
    # DESeq2's vst-like values never reach the floor 0: made to be clustered as they are
    vst = ad.AnnData(np.log2(counts + 16).astype(np.float32), var=adata.var)
    assert describe(vst).value_type == "log-normalised" and not describe(vst).depth_in_log


def _tpm(n: int = 60, g: int = 50, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    x = rng.gamma(0.5, rng.lognormal(2.0, 2.0, size=g), size=(n, g))
    x = x / x.sum(1, keepdims=True) * 1e6
    return ad.AnnData(x.astype(np.float32), var=pd.DataFrame(index=[f"g{i}" for i in range(g)]))


@pytest.mark.parametrize("preset", ["auto", "standardize", "none"])
def test_transform_refuses_values_on_the_other_side_of_a_log(preset):
    # Steps fitted on log values took unlogged ones for log values (latents in the
    # thousands), and the reverse logged log values again; both silently.
    tpm = _tpm()
    logged = tpm.copy()
    logged.X = np.log2(tpm.X + 1)
    for train, other, trained in ((logged, tpm, "log values"), (tpm, logged, "not on a log")):
        pre = Preprocessor(preset, n_top_genes=0).fit(train)
        pre.transform(train[:10].copy())  # the same kind of values: taken
        # log2(TPM + 1) is undone by the presets that log-transform (its TPM's path); TPM
        # are then beyond that log's range
        why = f"hold {_facts.describe(other).value_type}.*{trained}"
        if pre.steps_.unlog != "no":
            why = "not on the log that preprocess.unlog undoes"
        with pytest.raises(InputError, match=why):
            pre.transform(other)


def test_counts_are_taken_whatever_x_holds_when_the_steps_start_from_counts():
    counts = make_counts(sparse=False)
    lognorm = counts.copy()
    lognorm.layers["counts"] = counts.X.copy()
    sc.pp.normalize_total(lognorm, target_sum=1e4)
    sc.pp.log1p(lognorm)
    pre = Preprocessor("counts", n_top_genes=0).fit(lognorm)  # X log values, counts beside
    assert pre.steps_.source == "counts"
    out = pre.transform(counts)  # X raw counts, no layer: the same counts
    np.testing.assert_allclose(dense(out.X), dense(pre.transform(lognorm).X), rtol=1e-6)


def test_expression_with_a_negative_value_is_warned_of_and_z_scores_are_not():
    counts = make_counts(sparse=False)
    bad = counts.copy()
    bad.X[3, 5] = -1.0  # a count table's "missing"
    with pytest.warns(DataWarning, match=r"values up to [\d,]+, as expression .*min -1"):
        Preprocessor("auto").fit(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        Preprocessor("auto").fit(make_continuous())  # z-score-like values: no warning
        logs = make_continuous(negative=False)
        logs.X[0, 0] = -0.5  # log values below 30 with a stray negative: no such claim
        Preprocessor("auto").fit(logs)
