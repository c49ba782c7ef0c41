"""model.members: several members trained side by side, latents concatenated.

Checked against the members themselves (the ensemble must be exactly K independent models
whose outputs are combined as documented) and on what it is for: the clusters of two
ensembles of different seeds agree better than those of two single models.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from geneae.config import ModelConfig
from geneae.model_training import member_seed
from geneae.module import VAE, Ensemble, build_module, members_of

N, G, D = 40, 12, 3


def _config(**overrides) -> ModelConfig:
    values = {"family": "vae", "likelihood": "nb", "hidden": [8], "latent_dim": D}
    return ModelConfig(**(values | overrides))


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.rand(N, G, generator=gen) * 6.0, generator=gen)
    return {"x": torch.log1p(counts), "target": counts, "library": counts.sum(1)}


def _calibrated(module: Ensemble, x: torch.Tensor) -> Ensemble:
    module.eval()
    with torch.no_grad():
        module.calibrate([m.encode(x) for m in module.members])
    return module


def test_build_gives_members_with_their_own_weights() -> None:
    torch.manual_seed(0)
    module = build_module(_config(members=3), G)
    assert isinstance(module, Ensemble) and len(module.members) == 3
    assert all(isinstance(m, VAE) and m.cfg.members == 1 for m in module.members)
    first = [p for p in module.members[0].parameters()]
    second = [p for p in module.members[1].parameters()]
    assert not torch.equal(first[0], second[0])
    assert members_of(module) == list(module.members)
    single = build_module(_config(), G)
    assert members_of(single) == [single]


def test_calibrated_latent_blocks_are_centred_with_unit_variance() -> None:
    torch.manual_seed(2)
    module = build_module(_config(members=2), G)
    x = _batch()["x"]
    _calibrated(module, x)
    z = module.encode(x).detach()
    assert z.shape == (N, 2 * D)
    for block in (z[:, :D], z[:, D:]):
        assert torch.allclose(block.mean(0), torch.zeros(D), atol=1e-5)
        assert torch.isclose(block.var(0, unbiased=False).mean(), torch.tensor(1.0), atol=1e-5)
    # The blocks are the members' own latents, moved and scaled.
    own = module.members[1].encode(x).detach()
    expected = (own - own.mean(0)) / ((own - own.mean(0)).square().sum(1).mean() / D).sqrt()
    assert torch.allclose(z[:, D:], expected, atol=1e-5)


def test_predict_averages_reconstructions_and_scales_variances() -> None:
    torch.manual_seed(3)
    module = build_module(_config(members=3), G)
    batch = _batch()
    _calibrated(module, batch["x"])
    out = module.predict(batch["x"], batch["library"])
    alone = [m.predict(batch["x"], batch["library"]) for m in module.members]
    assert torch.allclose(out["reconstruction"], sum(a["reconstruction"] for a in alone) / 3)
    assert torch.allclose(out["latent"], module.encode(batch["x"]))
    for i, a in enumerate(alone):
        block = out["latent_var"][:, i * D : (i + 1) * D]
        assert torch.allclose(block, a["latent_var"] / module.scales[i] ** 2)


def test_generative_decodes_the_concatenated_code_as_the_members_mean() -> None:
    torch.manual_seed(4)
    module = build_module(_config(members=2), G)
    batch = _batch()
    _calibrated(module, batch["x"])
    z = module.encode(batch["x"])
    params = module.generative(z, batch["library"], standardized=False)
    own = [
        m.generative(m.encode(batch["x"]), batch["library"], standardized=False)
        for m in module.members
    ]
    assert torch.allclose(params["mean"], (own[0]["mean"] + own[1]["mean"]) / 2, rtol=1e-5)


def test_linear_loadings_are_each_members_weights_per_calibrated_unit() -> None:
    torch.manual_seed(5)
    module = build_module(_config(members=2, decoder_hidden=[], likelihood="mse"), G)
    _calibrated(module, _batch()["x"])
    loadings = module.loadings()
    assert loadings.shape == (G, 2 * D)
    assert torch.allclose(loadings[:, D:], module.members[1].loadings() * module.scales[1])


def test_state_dict_round_trip_keeps_the_calibration() -> None:
    torch.manual_seed(6)
    module = _calibrated(build_module(_config(members=2), G), _batch()["x"])
    rebuilt = build_module(_config(members=2), G)
    rebuilt.load_state_dict(module.state_dict(), strict=True)
    rebuilt.eval()
    x = _batch(seed=9)["x"]
    assert torch.equal(rebuilt.encode(x), module.encode(x))


def test_gmvae_members_are_refused() -> None:
    with pytest.raises(ValidationError, match="gmvae"):
        ModelConfig(family="gmvae", members=2)


def _fit(module: torch.nn.Module, x: torch.Tensor, seed: int, epochs: int = 25) -> None:
    """Adam on the module's loss with a seeded batch order."""
    opt = torch.optim.Adam(module.parameters(), lr=5e-3)
    order = torch.Generator().manual_seed(seed)
    module.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=order).split(64):
            opt.zero_grad()
            module.loss({"x": x[idx]}, kl_weight=0.3).loss.backward()
            opt.step()
    module.eval()


def test_ensembles_of_different_seeds_agree_more_than_single_models() -> None:
    """What members are for: the clusters move less from seed to seed.

    Six overlapping Gaussian groups in 30 dimensions, a 2-D latent: each single model
    splits them its own way (its clusters agree with another seed's at ARI ~0.28), three
    members side by side agree at ~0.56 (on another draw of the groups: 0.38 and 0.49).
    KMeans keeps the best of 50 restarts so that the clustering itself does not move.
    """
    rng = np.random.default_rng(0)
    n, genes, k = 600, 30, 6
    centres = 0.5 * rng.standard_normal((k, genes))
    labels = rng.integers(0, k, n)
    x = torch.tensor(centres[labels] + rng.standard_normal((n, genes)), dtype=torch.float32)

    def clusters(members: int, seed: int) -> np.ndarray:
        # As geneae trains them: each member alone, under its own seed.
        cfg = ModelConfig(family="vae", likelihood="mse", hidden=[16], latent_dim=2)
        models = []
        for i in range(members):
            torch.manual_seed(member_seed(seed, i))
            models.append(build_module(cfg, genes))
            _fit(models[-1], x, member_seed(seed, i))
        module = models[0] if members == 1 else _calibrated(Ensemble(models), x)
        z = module.encode(x).detach().numpy()
        return KMeans(k, n_init=50, random_state=0).fit_predict(z)

    pairs = [(0, 1), (0, 2), (1, 2)]

    def agreement(members: int) -> float:
        found = [clusters(members, seed) for seed in range(3)]
        return float(np.mean([adjusted_rand_score(found[i], found[j]) for i, j in pairs]))

    single, ensemble = agreement(1), agreement(3)
    assert ensemble > single + 0.05, (single, ensemble)


def test_the_pca_block_is_the_inputs_principal_components_scaled_as_a_member() -> None:
    from sklearn.decomposition import PCA

    torch.manual_seed(3)
    module = build_module(_config(members=2, pca_block=True), G)
    assert isinstance(module, Ensemble) and module.pca_genes == G
    x = _batch(seed=4)["x"]
    module.eval()
    with torch.no_grad():
        module.calibrate([m.encode(x) for m in module.members], x)
        z = module.encode(x).numpy().astype(np.float64)
    assert z.shape == (N, 3 * D)  # two members and the block
    block = z[:, 2 * D :]
    reference = PCA(D, svd_solver="full").fit_transform(x.numpy().astype(np.float64))
    for j in range(D):  # each axis up to its sign, on one common scale
        ratio = block[:, j] / reference[:, j]
        assert np.allclose(np.abs(ratio), np.abs(ratio[0]), rtol=1e-4)
        assert np.all(np.sign(ratio) == np.sign(ratio[0]))
    # scaled as a member's block: centred, unit mean variance per dimension
    np.testing.assert_allclose(block.mean(0), 0.0, atol=1e-5)
    assert np.mean(block.var(0)) == pytest.approx(1.0, rel=1e-4)
    # new samples are projected on the same axes
    new = _batch(seed=5)["x"]
    with torch.no_grad():
        projected = module.encode(new)[:, 2 * D :].numpy()
    axes = module.pca_components.numpy().astype(np.float64)
    expected = (new.numpy() - module.pca_mean.numpy()) @ axes.T / float(module.pca_scale)
    np.testing.assert_allclose(projected, expected, rtol=1e-4, atol=1e-5)
    # no posterior variance for a block that has none
    with torch.no_grad():
        assert "latent_var" not in module.predict(x, _batch(seed=4)["library"])


def test_a_linear_ensembles_loadings_end_with_the_pca_axes() -> None:
    torch.manual_seed(7)
    module = build_module(_config(members=2, pca_block=True, decoder_hidden=[]), G)
    x = _batch()["x"]
    module.eval()
    with torch.no_grad():
        module.calibrate([m.encode(x) for m in module.members], x)
        loadings = module.loadings()
    assert loadings.shape == (G, 3 * D)
    expected = module.pca_components.T * module.pca_scale
    torch.testing.assert_close(loadings[:, 2 * D :], expected)


def test_the_pca_block_needs_the_inputs_and_is_saved_with_the_weights() -> None:
    torch.manual_seed(6)
    module = build_module(_config(members=2, pca_block=True), G)
    x = _batch()["x"]
    with pytest.raises(ValueError, match="model inputs"):
        module.calibrate([m.encode(x) for m in module.members])
    module.eval()
    with torch.no_grad():
        module.calibrate([m.encode(x) for m in module.members], x)
    again = build_module(_config(members=2, pca_block=True), G)
    again.load_state_dict(module.state_dict())
    again.eval()
    with torch.no_grad():
        torch.testing.assert_close(again.encode(x), module.encode(x))
    without = build_module(_config(members=2), G)  # a model saved before the block
    assert isinstance(without, Ensemble) and not without.pca_genes
    assert "pca_components" not in without.state_dict()
