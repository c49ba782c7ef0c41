"""Bulk read counts: narrow members model the counts, wide members read their log CPM.

A table of raw counts that is not single cells' (few zeros: featureCounts / HTSeq reads of
bulk samples) resolves to the NB likelihood with wide and narrow members on log CPM, the
preprocessing of bulk TPM; single cells' counts keep the counts preset and one kind of
member. Checked: what the data decide, the preprocessed values against the closed form of
log CPM and against the same reads given as CPM, and a whole fit that finds the samples'
types and reconstructs their counts.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from geneae import GeneAE, RunConfig, datasets
from geneae.facts import CELLS_DEPTH, FactsAccumulator, describe
from geneae.pp import Preprocessor
from geneae.resolve import resolve


def bulk_reads(n_samples: int = 90, n_genes: int = 600, seed: int = 0) -> ad.AnnData:
    """Integer reads of three sample types (NB around a type profile, depth ~20 M)."""
    rng = np.random.default_rng(seed)
    types = np.arange(n_samples) % 3
    log_base = rng.normal(np.log(50.0), 1.5, n_genes)
    log_fc = np.zeros((3, n_genes))
    for t in range(3):
        genes = rng.choice(n_genes, n_genes // 10, replace=False)
        log_fc[t, genes] = rng.normal(0.0, 1.0, genes.size)
    rate = np.exp(log_base + log_fc[types] + rng.normal(0.0, 0.2, (n_samples, n_genes)))
    depth = rng.lognormal(np.log(2e7), 0.5, n_samples)
    mean = depth[:, None] * rate / rate.sum(1, keepdims=True)
    reads = rng.poisson(rng.gamma(20.0, mean / 20.0)).astype(np.float32)
    obs = pd.DataFrame(
        {"label": [f"t{t}" for t in types]}, index=[f"s{i}" for i in range(n_samples)]
    )
    return ad.AnnData(reads, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]))


def test_bulk_read_counts_resolve_to_counts_with_two_kinds_of_members(caplog):
    reads = bulk_reads()
    facts = describe(reads)
    assert facts.has_counts and not facts.single_cells
    with caplog.at_level("INFO", logger="geneae.resolve"):
        config = resolve(RunConfig(), facts)
    model, pp = config.model, config.preprocess
    assert model.likelihood == "nb" and model.standardized_weight > 0
    assert (model.members, model.wide_members, model.narrow_genes) == (6, 3, 2000)
    # The counts preset, unscaled: each kind of member z-scores the genes it reads.
    assert (pp.preset, pp.source, pp.normalize, pp.log1p) == ("counts", "counts", True, True)
    assert (pp.target_sum, pp.scale, pp.clip) == (1e4, False, 0.0)
    assert (pp.n_top_genes, pp.hvg_flavor, pp.n_wide_genes) == (2000, "seurat", 5000)
    assert model.wide_target_sum == 1e4
    assert "bulk samples, not single cells" in caplog.text
    assert "each kind of member z-scores the genes it reads" in caplog.text
    # --likelihood nb resolves alike; squared error reads the reads as their log CPM, as the
    # same reads given as CPM (no counts).
    assert resolve(RunConfig().updated({"model.likelihood": "nb"}), facts) == config
    caplog.clear()
    with caplog.at_level("INFO", logger="geneae.resolve"):
        mse = resolve(RunConfig().updated({"model.likelihood": "mse"}), facts)
    said = "values are raw counts (max {:,.4g}): each sample scaled to 10,000 (the wide members'"
    assert said.format(float(reads.X.max())) in caplog.text
    assert "genes to 1,000,000) and log1p applied before training" in caplog.text
    cpm = reads.copy()
    cpm.X = reads.X / reads.X.sum(1, keepdims=True) * 1e6
    as_cpm = resolve(RunConfig(), describe(cpm))
    assert as_cpm.model == mse.model and as_cpm.model.wide_members == 3
    # beside wide members at a million, the squared-error members read them at 1e4
    assert (mse.preprocess.preset, mse.preprocess.target_sum) == ("standardize", 1e4)
    assert mse.model.wide_target_sum == 1e6
    steps = {k: v for k, v in mse.preprocess.model_dump().items() if k not in ("source", "unlog")}
    assert steps == {
        k: v for k, v in as_cpm.preprocess.model_dump().items() if k not in ("source", "unlog")
    }


def test_bulk_read_counts_preprocess_to_log1p_of_their_share_of_the_narrow_genes():
    reads = bulk_reads(n_genes=2500)
    steps = resolve(RunConfig(), describe(reads)).preprocess
    pre = Preprocessor.from_config(steps).fit(reads)
    out = pre.transform(reads)
    genes = list(out.var_names)
    assert len(genes) == reads.n_vars  # 2,500 genes: every one kept (5,000 for wide members)
    # Closed form: ln(1 + reads / the sample's reads of the 2,000 narrow genes x 1e4)
    # (geneae.pp.steps.library_genes), for every kept gene.
    x = reads[:, genes].X.astype(np.float64)
    library = x[:, :2000].sum(1, keepdims=True)
    np.testing.assert_allclose(out.X, np.log1p(x / library * 1e4), rtol=1e-5)
    np.testing.assert_allclose(out.layers["counts"], x)
    # Squared error reads the same reads as the same CPM would be read: log CPM.
    mse = RunConfig().updated({"model.likelihood": "mse"})
    as_log_cpm = Preprocessor.from_config(resolve(mse, describe(reads)).preprocess).fit(reads)
    cpm = reads.copy()
    cpm.X = reads.X / reads.X.sum(1, keepdims=True) * 1e6
    again = Preprocessor.from_config(resolve(RunConfig(), describe(cpm)).preprocess).fit(cpm)
    assert list(again.genes_) == list(as_log_cpm.genes_)
    np.testing.assert_allclose(
        again.transform(cpm).X, as_log_cpm.transform(reads).X, rtol=1e-4, atol=1e-5
    )


def test_one_kind_of_member_and_single_cells_keep_the_counts_preset():
    reads = bulk_reads()
    one_kind = RunConfig().updated({"model.wide_members": 0})
    nb = resolve(one_kind, describe(reads))
    assert (nb.preprocess.preset, nb.preprocess.target_sum, nb.preprocess.scale) == (
        "counts",
        1e4,
        True,
    )
    assert (nb.model.likelihood, nb.model.wide_members) == ("nb", 0)
    cells = datasets.synthetic_counts(n_cells=300, n_genes=200, n_clusters=3, seed=0)
    facts = describe(cells)
    assert facts.single_cells
    config = resolve(RunConfig(), facts)
    assert (config.model.likelihood, config.model.wide_members) == ("nb", 0)
    assert (config.preprocess.preset, config.preprocess.hvg_flavor) == ("counts", "seurat")


def test_a_default_fit_on_bulk_read_counts_finds_the_types():
    reads = bulk_reads(n_samples=90, n_genes=2500)
    config = RunConfig().updated(
        {
            "train.max_epochs": 30,
            "train.cluster_epochs": 5,
            "train.quiet": True,
            "train.num_threads": 1,
            "model.members": 2,
            "preprocess.n_top_genes": 300,
            "preprocess.n_wide_genes": 1500,
        }
    )
    model = GeneAE(config).fit(reads)
    assert (model.config.model.likelihood, model.config.model.wide_members) == ("nb", 1)
    embedding = model.encode(reads)
    found = KMeans(3, n_init=10, random_state=0).fit_predict(embedding)
    assert adjusted_rand_score(reads.obs["label"], found) > 0.9
    # Expected counts of every kept gene: the narrow member's of the first 300, the wide
    # member's taken back from its log CPM on the others, both near the reads.
    recon = model.reconstruct(reads)
    assert recon.shape == (90, 1500) and np.isfinite(recon).all()
    observed = reads[:, model.preprocessor.genes_].X
    for genes in (slice(0, 300), slice(300, 1500)):
        got, want = recon[:, genes], observed[:, genes]
        assert np.allclose(got.sum(1), want.sum(1), rtol=0.15)
        assert np.corrcoef(np.log1p(got).ravel(), np.log1p(want).ravel())[0, 1] > 0.95
    loadings = model.gene_loadings(embedding)
    assert loadings.shape == (1500, embedding.shape[1]) and np.isfinite(loadings).all()


def test_counts_below_bulk_depth_are_single_cells_whatever_their_zeros():
    reads = bulk_reads(n_samples=60)
    facts = describe(reads)
    assert (facts.shallow_fraction, facts.single_cells) == (0.0, False)
    # The same profiles at droplet depth (~2,000 UMIs a cell), on well-expressed genes only:
    # few zeros, but single cells' depth.
    rng = np.random.default_rng(1)
    share = reads.X / reads.X.sum(1, keepdims=True)
    kept = share.mean(0) > np.quantile(share.mean(0), 0.8)
    share = share[:, kept] / share[:, kept].sum(1, keepdims=True)
    umis = rng.poisson(share * 2000.0).astype(np.float32)
    cells = ad.AnnData(umis)
    facts = describe(cells)
    assert facts.floor_fraction < 0.75 and facts.shallow_fraction == 1.0 and facts.single_cells
    config = resolve(RunConfig(), facts)
    assert (config.model.likelihood, config.preprocess.preset) == ("nb", "counts")
    # Counts in the layer decide, and a look in blocks of rows finds what one look finds.
    mixed = reads.copy()
    mixed.X[:20] = np.round(mixed.X[:20] / 1000.0)  # a third of the samples below the depth
    mixed.layers["counts"] = mixed.X.copy()
    mixed.X = np.log1p(mixed.X / mixed.X.sum(1, keepdims=True) * 1e6)
    whole = describe(mixed)
    assert whole.counts_in == "layers['counts']"
    below = (mixed.layers["counts"].sum(1) < CELLS_DEPTH).mean()
    assert whole.shallow_fraction == below == 1 / 3 and not whole.single_cells
    accumulator = FactsAccumulator(mixed.n_vars, has_counts_layer=True)
    for start in range(0, mixed.n_obs, 7):
        rows = slice(start, start + 7)
        accumulator.add(mixed.X[rows], mixed.layers["counts"][rows])
    assert accumulator.facts() == whole
