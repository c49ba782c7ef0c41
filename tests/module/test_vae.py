from __future__ import annotations

import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from torch.distributions import Normal, kl_divergence

from geneae.config import ModelConfig
from geneae.module import VAE, build_module
from geneae.module.priors import StandardNormal

COUNT_KEYS = ("x", "target", "library")


def _rows(batch: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    return {k: batch[k][rows] for k in COUNT_KEYS}


@pytest.mark.slow
@pytest.mark.parametrize(("likelihood", "zero_inflation"), [("nb", 0.0), ("zinb", 0.15)])
def test_count_vae_learns_clusters(make_counts, fit, likelihood, zero_inflation) -> None:
    data = make_counts(n=500, seed=1, zero_inflation=zero_inflation)
    train, held_out = _rows(data, slice(0, 400)), _rows(data, slice(400, None))
    torch.manual_seed(0)
    module = build_module(
        ModelConfig(family="vae", likelihood=likelihood, hidden=[64], latent_dim=5, dropout=0.0),
        data["x"].shape[1],
    ).eval()
    with torch.no_grad():
        before = float(module.loss(held_out).metrics["elbo"])
    fit(module, train, steps=250, lr=1e-2, batch_size=128)
    with torch.no_grad():
        after = float(module.loss(held_out).metrics["elbo"])
        latent = module.encode(data["x"]).numpy()
    # About -180 -> -147 nats per cell (60 genes): a large margin.
    assert after > before + 20.0
    labels = KMeans(4, n_init=10, random_state=0).fit_predict(latent)
    assert adjusted_rand_score(data["labels"].numpy(), labels) > 0.9


def test_standard_normal_kl_matches_torch() -> None:
    mean, var = torch.randn(6, 3), torch.rand(6, 3) + 0.1
    expected = kl_divergence(Normal(mean, var.sqrt()), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(StandardNormal().kl(mean, var), expected, atol=1e-5)


def test_loss_is_reconstruction_plus_weighted_kl(make_counts) -> None:
    data = _rows(make_counts(n=32, n_genes=20), slice(None))
    torch.manual_seed(0)
    module = build_module(ModelConfig(family="vae", likelihood="nb", hidden=[16]), 20).eval()
    torch.manual_seed(1)
    full = module.loss(data, kl_weight=1.0)
    torch.manual_seed(1)
    half = module.loss(data, kl_weight=0.5)
    assert torch.equal(full.reconstruction, half.reconstruction)
    assert torch.allclose(half.loss, (full.reconstruction + 0.5 * full.kl).mean())
    assert torch.allclose(full.metrics["elbo"], -(full.reconstruction + full.kl).mean())
    assert torch.allclose(half.metrics["elbo"], full.metrics["elbo"])
    assert torch.allclose(full.metrics["kl"], full.kl.mean())
    assert (full.kl > 0).all()
    assert 0 <= float(full.metrics["active_dims"]) <= module.cfg.latent_dim


def test_sampling_only_when_asked_or_training() -> None:
    torch.manual_seed(0)
    module = build_module(ModelConfig(family="vae", likelihood="gaussian", hidden=[8]), 7)
    x = torch.randn(10, 7)
    module.eval()
    out = module.inference(x)
    assert torch.equal(out["z"], out["qz_mean"])
    assert out["qz_var"].shape == (10, module.cfg.latent_dim) and (out["qz_var"] > 0).all()
    assert not torch.equal(module.inference(x, sample=True)["z"], out["qz_mean"])
    module.train()
    out = module.inference(x)
    assert not torch.equal(out["z"], out["qz_mean"])


def test_reparameterisation_passes_gradients_to_the_variance() -> None:
    torch.manual_seed(0)
    module = build_module(
        ModelConfig(family="vae", likelihood="mse", hidden=[8], latent_dim=2, norm="none"), 5
    )
    module.loss({"x": torch.randn(6, 5)}, kl_weight=0.0).loss.backward()
    assert module.encoder.var.linear.weight.grad.abs().sum() > 0


def test_learned_library_starts_at_the_observed_mean(make_counts) -> None:
    data = _rows(make_counts(n=40, n_genes=20), slice(None))
    torch.manual_seed(0)
    cfg = ModelConfig(family="vae", likelihood="nb", hidden=[16], library="learned")
    module = build_module(cfg, 20)
    assert isinstance(module, VAE) and module.library_head is not None
    module.loss(data)  # training mode: data-dependent initialisation
    expected = float(data["target"].sum(1).log().mean())
    assert float(module.library_head.linear.bias.detach()) == pytest.approx(expected, rel=1e-5)
    assert bool(module.library_head.initialised)
    module.eval()
    with torch.no_grad():
        log_library = module.inference(data["x"])["log_library"]
        counts = module.reconstruct(data["x"])
    # Without a given library, reconstruct uses the predicted one.
    assert torch.allclose(counts.sum(1), log_library.exp(), rtol=1e-4)
    # A loaded model is not re-initialised.
    clone = build_module(cfg, 20)
    clone.load_state_dict(module.state_dict())
    clone.loss(data)
    assert torch.equal(clone.library_head.linear.bias, module.library_head.linear.bias)


def test_observed_library_scales_the_mean(make_counts) -> None:
    data = _rows(make_counts(n=8, n_genes=20), slice(None))
    torch.manual_seed(0)
    module = build_module(ModelConfig(family="vae", likelihood="poisson", hidden=[16]), 20)
    module.eval()
    with torch.no_grad():
        proportions = module.reconstruct(data["x"])
        counts = module.reconstruct(data["x"], library=data["library"])
    assert torch.allclose(proportions.sum(1), torch.ones(8), atol=1e-5)
    assert torch.allclose(counts, proportions * data["library"][:, None], rtol=1e-5)
