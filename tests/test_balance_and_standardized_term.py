"""The standardised term beside the likelihood: its loss, its balance scale, its defaults."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.stats as st
import torch

from geneae import RunConfig
from geneae.balance import (
    balance_scale,
    column_moments,
    nb_null_deviance,
    nb_null_model,
    nb_unit_deviance,
)
from geneae.facts import describe
from geneae.module import build_module
from geneae.presets import preset_config
from geneae.resolve import (
    MAX_EPOCHS,
    MEMBERS,
    STANDARDIZED_WEIGHT,
    default_batch_size,
    default_cluster_epochs,
    resolve,
)
from tests.module.conftest import nb_clusters


def nb_counts(n=400, g=30, theta=3.0, seed=0):
    rng = np.random.default_rng(seed)
    library = rng.lognormal(np.log(500), 0.4, n)
    p = rng.dirichlet(np.ones(g))
    mu = library[:, None] * p
    return rng.negative_binomial(theta, theta / (theta + mu)).astype(np.float64)


def test_unit_deviance_matches_scipy_log_pmfs():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 40, (50, 7)).astype(float)
    mu = rng.uniform(0.05, 30, (50, 7))
    theta = rng.uniform(0.1, 50, 7)

    def logpmf(k, m):
        return st.nbinom.logpmf(k, theta, theta / (theta + m))

    expected = 2 * (np.where(x > 0, logpmf(x, np.maximum(x, 1e-300)), 0.0) - logpmf(x, mu))
    np.testing.assert_allclose(nb_unit_deviance(x, mu, theta), expected, rtol=1e-8, atol=1e-8)


def test_null_model_recovers_the_simulated_dispersion_and_proportions():
    counts = nb_counts(n=4000, theta=3.0)
    library, proportions, theta = nb_null_model(counts)
    np.testing.assert_allclose(library, counts.sum(1))
    np.testing.assert_allclose(proportions, counts.sum(0) / counts.sum())
    assert np.median(theta) == pytest.approx(3.0, rel=0.1)


def test_null_deviance_is_the_same_for_sparse_and_dense_and_in_blocks():
    counts = nb_counts()
    dense = nb_null_deviance(counts, block=64)
    np.testing.assert_allclose(nb_null_deviance(sp.csr_matrix(counts)), dense, rtol=1e-10)
    library, proportions, theta = nb_null_model(counts)
    direct = nb_unit_deviance(counts, library[:, None] * proportions, theta).mean(0)
    np.testing.assert_allclose(dense, direct, rtol=1e-10)


def test_balance_scale_follows_depth_for_counts_and_variance_for_squared_error():
    def two_types(depth):
        rng = np.random.default_rng(0)
        profiles = rng.dirichlet(np.ones(200), size=2)
        types = rng.integers(0, 2, 500)
        return rng.poisson(depth * profiles[types]).astype(float)

    # Shallow counts (0.1 per gene and cell, as droplet data) leave little to explain:
    # the null deviance per gene grows with the depth (about 0.4 at 20 counts per cell,
    # 1.3 at 2,000), which is what the balance scale corrects for.
    shallow, deep = (balance_scale("nb", c, c) for c in (two_types(20), two_types(2000)))
    assert deep > 2.5 * shallow
    counts = nb_counts()
    scale = balance_scale("nb", counts, counts)
    assert scale == pytest.approx(nb_null_deviance(counts).sum() / counts.shape[1])
    x = np.random.default_rng(2).normal(0, 3, (200, 10))
    assert balance_scale("mse", x) == pytest.approx(2 * x.var(0).mean())
    mean, var = column_moments(sp.csr_matrix(x))
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-10)
    np.testing.assert_allclose(var, x.var(0), rtol=1e-10)
    # dense float32, several row blocks, an offset that a one-pass formula would lose to
    big = (np.random.default_rng(3).normal(1e3, 2, (9000, 7))).astype(np.float32)
    mean, var = column_moments(big)
    np.testing.assert_allclose(mean, big.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(var, big.astype(np.float64).var(0), rtol=1e-9)


def test_loss_is_the_likelihood_plus_the_weighted_gaussian_of_the_input():
    batch = nb_clusters(n=64, n_genes=20)
    cfg = RunConfig().updated({"model.likelihood": "nb", "model.family": "ae"}).model
    cfg.standardized_weight = 1.5
    module = build_module(cfg, 20).eval()
    module.decoder.standardized.scale.fill_(7.0)
    with torch.no_grad():
        out = module.loss(batch)
        z = module.encode(batch["x"])
        params = module.generative(z, batch["library"])
    nb = torch.distributions.NegativeBinomial(
        total_count=params["theta"], logits=(params["mean"] / params["theta"]).log()
    )
    gaussian = torch.distributions.Normal(
        params["standardized_mean"], params["standardized_var"].sqrt()
    )
    expected = -nb.log_prob(batch["target"]).sum(-1) - 1.5 * 7.0 * gaussian.log_prob(
        batch["x"]
    ).sum(-1)
    torch.testing.assert_close(out.reconstruction, expected, rtol=1e-4, atol=1e-3)


def test_gmvae_scores_the_input_per_component():
    batch = nb_clusters(n=32, n_genes=12)
    cfg = RunConfig().updated({"model.likelihood": "nb", "model.family": "gmvae"}).model
    cfg.standardized_weight = 1.0
    module = build_module(cfg, 12)
    out = module.loss(batch)
    assert out.reconstruction.shape == (32,) and torch.isfinite(out.loss)


def facts_of(adata):
    return describe(adata)


@pytest.mark.parametrize(
    ("n_obs", "epochs"),
    [(100_000, 20), (4_271, 20), (4_000, 20), (3_999, 21), (2_746, 30), (2_100, 39), (600, 134),
     (200, 300), (1, 300)],
)  # fmt: skip
def test_the_clustering_phase_sees_20_epochs_and_80k_samples_at_least(n_obs, epochs):
    assert default_cluster_epochs(n_obs) == epochs
    if epochs < MAX_EPOCHS:  # below the cap: the fewest epochs that reach 20 and 80,000 samples
        assert epochs >= 20 and epochs * n_obs >= 80_000
        assert epochs == 20 or (epochs - 1) * n_obs < 80_000


@pytest.mark.parametrize(
    ("n_train", "batch"),
    [(100_000, 256), (257, 256), (256, 64), (252, 32), (108, 32), (2, 32)],
)  # fmt: skip
def test_the_batch_is_256_unless_it_would_hold_every_training_sample(n_train, batch):
    assert default_batch_size(n_train) == batch
    if n_train <= 256 and batch > 32:  # several steps an epoch: at most a quarter each
        assert batch <= n_train / 4 < 2 * batch


def test_small_data_resolve_to_a_smaller_batch():
    from geneae import datasets

    bulk = datasets.bulk_conditions(n_samples=120, n_genes=40, n_informative=10)
    assert resolve(RunConfig(), describe(bulk)).train.batch_size == 32  # 108 to train on
    given = RunConfig().updated({"train.batch_size": 256})
    assert resolve(given, describe(bulk)).train.batch_size == 256
    cells = datasets.synthetic_counts(n_cells=400, n_genes=40, n_clusters=2, seed=0)
    assert resolve(RunConfig(), describe(cells)).train.batch_size == 256


@pytest.mark.parametrize(
    ("n_obs", "given", "block", "members"),
    [
        (80, {}, True, 6),  # small data: 6 members and the block, 70 dimensions
        (60, {}, True, 5),  # room for 6 blocks of 10: five members beside the PCA block
        (35, {}, True, 2),  # room for 3 blocks: two members beside the block
        (24, {}, False, 2),  # two blocks of 10: no room for the block
        (799, {}, True, 6),
        (800, {}, False, 3),
        (80, {"model.pca_block": False}, False, 6),
        (80, {"model.members": 1}, False, 1),
        (80, {"model.members": 3}, True, 3),
        (1500, {"model.pca_block": True}, True, 3),
    ],
)  # fmt: skip
def test_the_pca_block_and_the_members_are_resolved_from_the_samples(
    n_obs, given, block, members, caplog
):
    from geneae import datasets
    from geneae.resolve import embedding_width

    bulk = datasets.bulk_conditions(n_samples=n_obs, n_genes=100, n_informative=10)
    with caplog.at_level("INFO", logger="geneae.resolve"):
        resolved = resolve(RunConfig().updated(given), describe(bulk))
    assert (resolved.model.pca_block, resolved.model.members) == (block, members)
    assert embedding_width(resolved) == (members + block) * 10 <= min(n_obs, 100)
    said = "members: 6 (the default for fewer than 800 samples" in caplog.text
    assert said == (members == 6 and "model.members" not in given)


def test_defaults_resolve_from_the_likelihood(tmp_path):
    from geneae import datasets

    counts = datasets.synthetic_counts(n_cells=100, n_genes=40, n_clusters=2, seed=0)
    config = resolve(RunConfig(), describe(counts))
    assert config.model.likelihood == "nb"
    assert config.model.standardized_weight == STANDARDIZED_WEIGHT
    assert config.train.cluster_epochs == default_cluster_epochs(100) == MAX_EPOCHS == 300
    assert config.model.members == MEMBERS
    # A run asked to be short stays short: the phase is no longer than the training asked.
    short = resolve(RunConfig().updated({"train.max_epochs": 3}), describe(counts))
    assert short.train.max_epochs == 3 and short.train.cluster_epochs == 3
    longer = resolve(RunConfig().updated({"train.max_epochs": 500}), describe(counts))
    assert longer.train.cluster_epochs == MAX_EPOCHS
    assert config.preprocess.scale  # counts: z-scored log input, modelled by the term

    bulk = datasets.bulk_conditions(n_samples=60, n_genes=40, n_informative=10)
    config = resolve(RunConfig(), describe(bulk))
    assert config.model.likelihood == "mse"
    assert config.model.standardized_weight == STANDARDIZED_WEIGHT
    assert not config.preprocess.scale  # the term scales each gene itself

    gaussian = resolve(RunConfig().updated({"model.likelihood": "gaussian"}), describe(bulk))
    assert gaussian.model.standardized_weight == 0.0 and gaussian.preprocess.scale
    off = resolve(RunConfig().updated({"model.standardized_weight": 0.0}), describe(bulk))
    assert off.model.likelihood == "mse" and off.preprocess.scale
    given = RunConfig().updated(
        {"model.standardized_weight": 0.4, "train.cluster_epochs": 3, "model.members": 2}
    )
    given = resolve(given, describe(counts))
    assert (given.model.standardized_weight, given.train.cluster_epochs) == (0.4, 3)
    assert given.model.members == 2
    # One model where members cannot be combined (mixture components) or do not apply.
    gmvae = resolve(RunConfig().updated({"model.family": "gmvae"}), describe(counts))
    assert gmvae.model.members == 1
    genes = resolve(RunConfig().updated({"data.genes_as_samples": True}), describe(bulk))
    assert genes.model.members == 1


@pytest.mark.parametrize("name", ["scvi-like", "dca-zinb", "masked-ae", "beta-vae"])
def test_published_presets_are_the_papers_models(name):
    from geneae import datasets

    counts = datasets.synthetic_counts(n_cells=100, n_genes=40, n_clusters=2, seed=0)
    config = resolve(preset_config(name), describe(counts))
    assert config.model.standardized_weight == 0.0
    assert config.train.cluster_epochs == 0
    assert config.model.members == 1


def test_models_saved_before_the_term_existed_load_without_it():
    cfg = RunConfig().updated({"model.likelihood": "nb"}).model
    assert cfg.standardized_weight is None  # an old resolved config has no such key
    module = build_module(cfg, 10)
    assert module.decoder.standardized is None
    assert not any("standardized" in k for k in module.state_dict())


def test_heads_of_the_input_start_at_the_null_model():
    mean = torch.tensor([3.0, -1.0, 0.5])
    for likelihood in ("gaussian", "mse", "nb"):
        cfg = RunConfig().updated({"model.likelihood": likelihood}).model
        cfg.standardized_weight = 1.0
        decoder = build_module(cfg, 3).decoder
        before = decoder.head.out.linear.bias.clone()
        decoder.start_at(mean)
        term = decoder.standardized.head
        torch.testing.assert_close(term.out.linear.bias, mean)
        if likelihood == "nb":  # a count head's output is a proportion: left as it was
            torch.testing.assert_close(decoder.head.out.linear.bias, before)
        else:
            torch.testing.assert_close(decoder.head.out.linear.bias, mean)


def test_outputs_skip_the_standardised_head_and_do_not_depend_on_it():
    batch = nb_clusters(n=16, n_genes=12)
    cfg = RunConfig().updated({"model.likelihood": "nb"}).model
    cfg.standardized_weight = 1.0
    module = build_module(cfg, 12).eval()
    calls = []
    module.decoder.standardized.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        before = module.predict(batch["x"], batch["library"])["reconstruction"]
        assert calls == []  # predict never runs the term's head
        module.decoder.standardized.head.out.linear.weight.add_(1.0)
        after = module.predict(batch["x"], batch["library"])["reconstruction"]
        module.loss(batch)
    torch.testing.assert_close(before, after)
    assert calls == [1]  # the loss does
