"""Wide and narrow members on tables that are not single cells: resolved, preprocessed, trained.

The default on bulk values trains half its members on every kept gene z-scored (wide) and
half on the most variable, which the preprocessing puts first (narrow). Checked: what the
data decide, the gene order the preprocessing gives against scanpy's own selections, and
a whole fit, save and load on bulk values.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from geneae import GeneAE, RunConfig, datasets
from geneae.errors import ConfigError
from geneae.facts import describe
from geneae.pp import Preprocessor
from geneae.pp.transforms import scanpy_hvg
from geneae.resolve import WIDE_GENES, resolve


def _bulk(n_samples: int = 90, n_genes: int = 300):
    return datasets.bulk_conditions(n_samples=n_samples, n_genes=n_genes, n_informative=60)


def test_bulk_values_get_half_wide_members_and_the_wide_genes(caplog):
    bulk = _bulk()
    with caplog.at_level("INFO", logger="geneae.resolve"):
        config = resolve(RunConfig(), describe(bulk))
    model = config.model
    assert (model.members, model.wide_members) == (6, 3)
    assert model.narrow_genes == config.preprocess.n_top_genes == 2000
    assert config.preprocess.n_wide_genes == WIDE_GENES == 5000
    assert "members: 3 of the 6 read up to 5,000 genes, each z-scored" in caplog.text
    # Three members (800 samples or more): one wide.
    big = resolve(RunConfig().updated({"model.members": 3}), describe(bulk))
    assert big.model.wide_members == 1


def test_counts_single_cells_and_given_settings_keep_one_kind():
    counts = datasets.synthetic_counts(n_cells=120, n_genes=40, n_clusters=2, seed=0)
    config = resolve(RunConfig(), describe(counts))
    assert (config.model.wide_members, config.model.narrow_genes) == (0, 0)
    assert config.preprocess.n_wide_genes == 0
    rng = np.random.default_rng(0)
    sparse = rng.poisson(0.08, (200, 60)).astype(np.float32)
    cells = ad.AnnData(np.log1p(sparse * 1e4 / np.maximum(sparse.sum(1, keepdims=True), 1)))
    assert describe(cells).single_cells  # log values of single cells: mostly zeros
    assert resolve(RunConfig(), describe(cells)).model.wide_members == 0
    bulk = _bulk()
    for given in (
        {"preprocess.preset": "standardize"},
        {"model.members": 1},
        {"data.genes_as_samples": True},
    ):
        assert resolve(RunConfig().updated(given), describe(bulk)).model.wide_members == 0
    # Given values stay, and the wide genes follow them.
    given = RunConfig().updated({"model.wide_members": 2, "preprocess.n_wide_genes": 0})
    config = resolve(given, describe(bulk))
    assert (config.model.wide_members, config.preprocess.n_wide_genes) == (2, 0)
    # More wide members than the data give members: as many as there are, said in the log.
    many = RunConfig().updated({"model.wide_members": 6})
    big = _bulk(n_samples=900)
    assert resolve(many, describe(big)).model.wide_members == 3  # 3 members from 800 samples
    off = resolve(RunConfig().updated({"model.wide_members": 0}), describe(bulk))
    assert (off.preprocess.n_wide_genes, off.model.narrow_genes) == (0, 0)


def test_narrow_members_without_wide_ones_or_wide_ones_on_scaled_counts_are_refused():
    bulk = _bulk()
    given = RunConfig().updated({"model.wide_members": 0, "model.narrow_genes": 100})
    with pytest.raises(ConfigError, match="narrow_genes"):
        resolve(given, describe(bulk))
    # Wide members asked for on single cells' counts: the counts preset leaves the scaling
    # to each kind of member; scaled by the preprocessing, a wide member beside the count
    # likelihood could not take its counts back from z-scores.
    counts = datasets.synthetic_counts(n_cells=120, n_genes=40, n_clusters=2, seed=0)
    wide = RunConfig().updated({"model.wide_members": 2})
    config = resolve(wide, describe(counts))
    assert (config.model.likelihood, config.model.wide_members) == ("nb", 2)
    assert (config.preprocess.preset, config.preprocess.scale) == ("counts", False)
    with pytest.raises(ConfigError, match="wide_members.*scale: false"):
        resolve(wide.updated({"preprocess.scale": True}), describe(counts))


@pytest.mark.parametrize("n_wide", [150, 1000])
def test_the_most_variable_genes_come_first_then_the_wide_ones(n_wide):
    bulk = _bulk(n_genes=400)
    top = 60
    pre = Preprocessor(preset="lognorm", n_top_genes=top, n_wide_genes=n_wide).fit(bulk)
    genes = np.asarray(pre.genes_)
    values = bulk.X  # log1p(CPM): the lognorm preset keeps them (scanpy's seurat ranks them)
    names = np.asarray(bulk.var_names)
    core = names[scanpy_hvg(values, "seurat", top)]
    assert list(genes[:top]) == list(core)  # the table's order within each part
    wide = names if n_wide >= bulk.n_vars else names[scanpy_hvg(values, "seurat", n_wide)]
    assert len(genes) == min(n_wide, bulk.n_vars) and set(genes) == set(wide)
    rest = [g for g in names if g in set(wide) - set(core)]
    assert list(genes[top:]) == rest
    # The columns of the transform follow that order.
    out = pre.transform(bulk)
    np.testing.assert_array_equal(out.var_names, genes)
    np.testing.assert_allclose(out.X, bulk[:, genes].X, rtol=1e-6)


def test_a_bulk_fit_trains_both_kinds_and_its_saved_model_encodes_alike(tmp_path):
    bulk = _bulk(n_samples=90, n_genes=2500)
    config = RunConfig().updated(
        {
            "train.max_epochs": 3,
            "train.cluster_epochs": 2,
            "train.quiet": True,
            "train.num_threads": 1,
            "model.members": 2,
            "preprocess.n_top_genes": 100,
            "preprocess.n_wide_genes": 400,
        }
    )
    model = GeneAE(config).fit(bulk)
    resolved = model.config.model
    assert (resolved.wide_members, resolved.narrow_genes) == (1, 100)
    narrow, wide = model.module.members
    assert (narrow.n_genes, wide.n_genes, model.module.n_genes) == (100, 400, 400)
    # The wide member z-scores with the training data's moments of its genes.
    x = model.preprocessor.transform(bulk).X
    np.testing.assert_allclose(wide.view.mean.numpy(), x.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(wide.view.std.numpy(), x.std(0), rtol=1e-3, atol=1e-5)
    assert model.metrics["model"]["wide_members"] == 1
    assert model.metrics["model"]["narrow_genes"] == 100
    embedding = model.encode(bulk)
    assert embedding.shape == (90, 2 * 10 + 10)  # two members and the PCA block
    recon = model.reconstruct(bulk)
    assert recon.shape == (90, 400) and np.isfinite(recon).all()
    saved = model.save(tmp_path / "run")
    again = GeneAE.load(saved)
    np.testing.assert_allclose(again.encode(bulk), embedding, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(again.reconstruct(bulk), recon, rtol=1e-5, atol=1e-6)


def test_the_wide_genes_leave_the_most_variable_genes_values_as_they_were():
    bulk = _bulk(n_genes=400)
    tpm = ad.AnnData(np.expm1(np.asarray(bulk.X, dtype=np.float64)), var=bulk.var)
    alone = Preprocessor(preset="lognorm", n_top_genes=60).fit(tpm)
    wide = Preprocessor(preset="lognorm", n_top_genes=60, n_wide_genes=150).fit(tpm)
    assert wide.genes_[:60] == alone.genes_
    x_alone, x_wide = alone.transform(tpm).X, wide.transform(tpm).X
    # Each sample's library is that of the 60 most variable genes in both.
    np.testing.assert_allclose(x_wide[:, :60], x_alone, rtol=1e-6)
    np.testing.assert_allclose(wide.library_sizes(tpm), alone.library_sizes(tpm), rtol=1e-12)
    totals = np.expm1(np.asarray(x_wide, dtype=np.float64))
    target = wide.steps_.target_sum  # the preset's
    np.testing.assert_allclose(totals[:, :60].sum(1), target, rtol=1e-4)
    assert np.all(totals.sum(1) > target * 1.01)  # the wide genes on the same scale, beyond it


def test_wide_members_of_tpm_take_the_library_of_their_own_genes():
    bulk = _bulk(n_samples=90, n_genes=600)
    tpm = ad.AnnData(np.expm1(np.asarray(bulk.X, dtype=np.float64)), obs=bulk.obs, var=bulk.var)
    config = RunConfig().updated(
        {
            "train.max_epochs": 2,
            "train.cluster_epochs": 0,
            "train.quiet": True,
            "train.num_threads": 1,
            "model.members": 2,
            "preprocess.n_top_genes": 100,
            "preprocess.n_wide_genes": 300,
        }
    )
    model = GeneAE(config).fit(tpm)
    # The squared-error member reads each sample at 1e4 over its genes; the wide member
    # takes it back to a million over its own, as TPM (geneae.resolve_preprocess).
    assert model.preprocessor.steps_.target_sum == 1e4
    assert model.config.model.wide_target_sum == 1e6
    wide = model.module.members[1]
    x = np.asarray(model.preprocessor.transform(tpm).X, dtype=np.float64)
    expression = np.expm1(x)
    np.testing.assert_allclose(expression[:, :100].sum(1), 1e4, rtol=1e-4)
    own = np.log1p(expression * 1e6 / expression.sum(1, keepdims=True))
    np.testing.assert_allclose(wide.view.mean.numpy(), own.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(wide.view.std.numpy(), own.std(0), rtol=1e-3, atol=1e-4)
    recon = model.reconstruct(tpm)
    assert recon.shape == (90, 300) and np.isfinite(recon).all()
    # Without a wide member's rescaling where the values are not normalised here.
    logged = resolve(RunConfig(), describe(bulk))
    assert logged.model.wide_target_sum == 0.0


def test_bulk_values_beside_wide_members_take_two_totals(caplog):
    """Squared-error members read bulk values at 1e4, the wide members at a million; single
    cells' values and a count likelihood keep one total; a total the user gives stays."""
    bulk = _bulk()
    tpm = describe(ad.AnnData(np.expm1(np.asarray(bulk.X, dtype=np.float64))))
    assert tpm.value_type == "unlogged expression" and not tpm.single_cells
    with caplog.at_level("INFO", logger="geneae.resolve"):
        config = resolve(RunConfig(), tpm)
    assert (config.preprocess.target_sum, config.model.wide_target_sum) == (1e4, 1e6)
    assert "each sample scaled to 10,000 (the wide members' genes to 1,000,000)" in caplog.text
    # One kind of member: a million, bulk RNA-seq's scale, as the PCA peers read it.
    alone = resolve(RunConfig().updated({"model.wide_members": 0}), tpm)
    assert (alone.preprocess.target_sum, alone.model.wide_target_sum) == (1e6, 0.0)
    # Every member wide: the wide members read their own genes at a million all the same.
    every = resolve(RunConfig().updated({"model.wide_members": 6}), tpm)
    assert (every.preprocess.target_sum, every.model.wide_target_sum) == (1e4, 1e6)
    # The user's total for the narrow members; the wide members keep bulk's scale.
    given = resolve(RunConfig().updated({"preprocess.target_sum": 1e5}), tpm)
    assert (given.preprocess.target_sum, given.model.wide_target_sum) == (1e5, 1e6)
    same = resolve(RunConfig().updated({"preprocess.target_sum": 1e6}), tpm)
    assert (same.preprocess.target_sum, same.model.wide_target_sum) == (1e6, 1e6)
    # Wide members reading the narrow members' genes at their total: nothing to rescale.
    narrow = resolve(RunConfig().updated({"preprocess.n_wide_genes": 0}), tpm)
    assert narrow.model.wide_target_sum == 1e6 and narrow.preprocess.target_sum == 1e4
    kept = {"preprocess.n_wide_genes": 0, "preprocess.target_sum": 1e6}
    assert resolve(RunConfig().updated(kept), tpm).model.wide_target_sum == 0.0
