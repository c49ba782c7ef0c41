"""The module contract of docs/architecture.md, for every family x likelihood."""

from __future__ import annotations

import math

import pytest
import torch

from geneae.config import COUNT_LIKELIHOODS, ModelConfig
from geneae.module import AE, GMVAE, VAE, LossOutput, build_module
from geneae.module.contrastive import nt_xent
from geneae.module.corruption import contrastive_views, mask_rate_for

FAMILIES = ["ae", "dae", "vae", "gmvae"]
LIKELIHOODS = ["mse", "masked_mse", "gaussian", "bernoulli", "poisson", "nb", "zip", "zinb"]
N, G, D, K = 12, 10, 3, 3


def _batch(likelihood: str, n_covariates: int = 0, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.rand(N, G, generator=gen) * 6.0, generator=gen)
    x = torch.log1p(counts)
    if likelihood in COUNT_LIKELIHOODS:
        batch = {"x": x, "target": counts, "library": counts.sum(1)}
    elif likelihood == "bernoulli":
        batch = {"x": x, "target": x / x.max()}
    else:
        batch = {"x": x}
    if n_covariates:
        batch["covariate"] = torch.arange(N) % n_covariates
    return batch


def _config(family: str, likelihood: str, **overrides) -> ModelConfig:
    values = {
        "family": family,
        "likelihood": likelihood,
        "hidden": [8],
        "latent_dim": D,
        "n_components": K,
    }
    return ModelConfig(**(values | overrides))


def _check_trains(module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> None:
    out = module.loss(batch, kl_weight=0.5, mask_rate=0.2)
    assert isinstance(out, LossOutput)
    assert out.loss.shape == () and torch.isfinite(out.loss)
    assert out.reconstruction.shape == out.kl.shape == (N,)
    assert all(v.shape == () and torch.isfinite(v) for v in out.metrics.values())
    out.loss.backward()
    for name, param in module.named_parameters():
        assert param.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        loss = module.loss(batch, kl_weight=1.0).loss
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_and_likelihood_trains(family: str, likelihood: str) -> None:
    # Covariates and the contrastive term on, to reach every parameter.
    torch.manual_seed(0)
    module = build_module(_config(family, likelihood, contrastive_weight=0.5), G, n_covariates=2)
    batch = _batch(likelihood, n_covariates=2)
    _check_trains(module, batch)
    assert "contrastive" in module.loss(batch).metrics


@pytest.mark.parametrize("likelihood", sorted(COUNT_LIKELIHOODS))
@pytest.mark.parametrize(
    ("family", "noise", "norm"),
    [
        ("ae", "gaussian", "layer"),
        ("dae", "dynamic_mask", "batch"),
        ("vae", "mask", "none"),
        ("gmvae", "dynamic_mask", "layer"),
    ],
)
def test_learned_library_trains(family: str, noise: str, norm: str, likelihood: str) -> None:
    torch.manual_seed(0)
    cfg = _config(family, likelihood, library="learned", noise=noise, norm=norm)
    module = build_module(cfg, G)
    assert module.library_head is not None
    _check_trains(module, _batch(likelihood))


@pytest.mark.parametrize("likelihood", ["mse", "bernoulli", "nb", "zinb"])
@pytest.mark.parametrize("family", FAMILIES)
def test_contract_shapes(family: str, likelihood: str) -> None:
    torch.manual_seed(0)
    module = build_module(_config(family, likelihood), G, n_covariates=2).eval()
    batch = _batch(likelihood, n_covariates=2)
    x, cov = batch["x"], batch["covariate"]
    with torch.no_grad():
        inference = module.inference(x, covariate=cov)
        params = module.generative(inference["z"], library=batch.get("library"), covariate=cov)
        embedding = module.encode(x, covariate=cov)
        recon = module.reconstruct(x, library=batch.get("library"), covariate=cov)
    lead = (N, K) if family == "gmvae" else (N,)
    assert inference["z"].shape == inference["qz_mean"].shape == (*lead, D)
    if family in ("vae", "gmvae"):
        assert inference["qz_var"].shape == (*lead, D)
    if family == "gmvae":
        assert inference["qy_logits"].shape == (N, K)
        assert module.cluster_probabilities(x, covariate=cov).shape == (N, K)
    assert params["mean"].shape == (*lead, G)
    assert embedding.shape == (N, D) and embedding.dtype == torch.float32
    assert recon.shape == (N, G) and recon.dtype == torch.float32
    if likelihood in COUNT_LIKELIHOODS:
        assert torch.allclose(recon.sum(1), batch["library"], rtol=1e-4)
        if "theta" in params:
            assert params["theta"].shape == (G,)
    if likelihood == "bernoulli":
        assert ((recon > 0) & (recon < 1)).all()


def test_build_module_families() -> None:
    assert type(build_module(ModelConfig(family="ae", likelihood="mse"), 4)) is AE
    assert type(build_module(ModelConfig(family="dae", likelihood="mse"), 4)) is AE
    assert type(build_module(ModelConfig(family="vae", likelihood="nb"), 4)) is VAE
    assert type(build_module(ModelConfig(family="gmvae", likelihood="nb"), 4)) is GMVAE
    with pytest.raises(ValueError, match="auto"):
        build_module(ModelConfig(likelihood="auto"), 4)
    with pytest.raises(ValueError, match="n_genes"):
        build_module(ModelConfig(likelihood="nb"), 0)


def _encoder_inputs(module: torch.nn.Module, batch: dict[str, torch.Tensor], **kwargs):
    seen = []
    encoder = module.z_encoder if isinstance(module, GMVAE) else module.encoder
    handle = encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    module.loss(batch, **kwargs)
    handle.remove()
    return seen[0].reshape(batch["x"].shape)


@pytest.mark.parametrize("family", FAMILIES)
def test_corruption_only_in_training(family: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(400, G) + 5.0  # no zeros
    module = build_module(_config(family, "mse", noise="mask", mask_rate=0.3), G)
    module.train()
    seen = _encoder_inputs(module, {"x": x})
    assert abs(float((seen == 0).float().mean()) - 0.3) < 0.03
    module.eval()
    assert torch.equal(_encoder_inputs(module, {"x": x}), x)


def test_gaussian_noise_and_dynamic_masking_rates() -> None:
    torch.manual_seed(0)
    x = torch.randn(400, G) + 5.0
    module = build_module(_config("dae", "mse", noise="gaussian", noise_sigma=0.5), G)
    noise = _encoder_inputs(module, {"x": x}) - x
    assert abs(float(noise.std()) - 0.5) < 0.03
    cfg = _config("dae", "mse", noise="dynamic_mask", mask_rate_min=0.1, mask_rate_max=0.3)
    module = build_module(cfg, G)
    zeros = (_encoder_inputs(module, {"x": x}, mask_rate=0.6) == 0).float().mean()
    assert abs(float(zeros) - 0.6) < 0.03
    zeros = (_encoder_inputs(module, {"x": x}) == 0).float().mean()
    assert abs(float(zeros) - 0.2) < 0.03  # midpoint of [0.1, 0.3] by default
    assert mask_rate_for(_config("dae", "mse", noise="mask", mask_rate=0.4), 0.9) == 0.4


def test_target_is_never_corrupted() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, G) + 5.0
    module = build_module(_config("dae", "mse", noise="mask", mask_rate=0.5, norm="none"), G)
    module.train()
    seen = []
    module.decoder.head.out.register_forward_hook(lambda _m, _a, o: seen.append(o))
    out = module.loss({"x": x})
    # The input was masked, the loss compares the reconstruction with the clean x.
    assert torch.allclose(out.reconstruction, (seen[0] - x).square().sum(1), atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_embed_is_deterministic_in_eval_mode(family: str) -> None:
    torch.manual_seed(0)
    cfg = _config(family, "nb", dropout=0.5, noise="gaussian")
    module = build_module(cfg, G).eval()
    x = _batch("nb")["x"]
    with torch.no_grad():
        first, second = module.encode(x), module.encode(x)
        recon1, recon2 = module.reconstruct(x), module.reconstruct(x)
    assert torch.equal(first, second) and torch.equal(recon1, recon2)


@pytest.mark.parametrize("family", FAMILIES)
def test_covariate_feeds_the_decoder_only(family: str) -> None:
    torch.manual_seed(0)
    module = build_module(_config(family, "nb"), G, n_covariates=3).eval()
    x = _batch("nb")["x"]
    zero, two = torch.zeros(N, dtype=torch.long), torch.full((N,), 2)
    with torch.no_grad():
        assert torch.equal(module.encode(x, covariate=zero), module.encode(x, covariate=two))
        assert not torch.allclose(
            module.reconstruct(x, covariate=zero), module.reconstruct(x, covariate=two)
        )
    with pytest.raises(ValueError, match="covariate"):
        module.loss({"x": x, "target": torch.ones(N, G)})


def test_contrastive_term_is_added() -> None:
    torch.manual_seed(0)
    batch = _batch("mse")
    module = build_module(_config("vae", "mse", contrastive_weight=2.0), G)
    module.eval()
    torch.manual_seed(3)
    out = module.loss(batch)
    base = (out.reconstruction + out.kl).mean()
    assert torch.allclose(out.loss, base + 2.0 * out.metrics["contrastive"], atol=1e-5)
    assert "contrastive" not in build_module(_config("vae", "mse"), G).loss(batch).metrics


def test_contrastive_views_mask_at_rate_ten_percent_without_noise() -> None:
    torch.manual_seed(0)
    x = torch.randn(500, 20) + 5.0
    view1, view2 = contrastive_views(x, _config("ae", "mse"), None)
    assert not torch.equal(view1, view2)
    for view in (view1, view2):
        assert abs(float((view == 0).float().mean()) - 0.1) < 0.02


def test_nt_xent() -> None:
    torch.manual_seed(0)
    z = torch.randn(16, 4)
    aligned = nt_xent(z, z + 1e-3 * torch.randn(16, 4), temperature=0.1)
    random = nt_xent(torch.randn(16, 4), torch.randn(16, 4), temperature=0.5)
    constant = nt_xent(torch.ones(8, 4), torch.ones(8, 4), temperature=0.5)
    assert aligned < 0.5 < random
    assert constant.item() == pytest.approx(math.log(2 * 8 - 1), rel=1e-5)
    assert torch.allclose(nt_xent(z, z.flip(0)), nt_xent(z.flip(0), z))


@pytest.mark.parametrize("family", FAMILIES)
def test_linear_decoder_loadings(family: str) -> None:
    module = build_module(_config(family, "nb", decoder_hidden=[]), G, n_covariates=2)
    assert module.loadings().shape == (G, D)
    with pytest.raises(ValueError, match="linear decoders"):
        build_module(_config(family, "nb"), G).loadings()


def test_gaussian_head_learns_gene_wise_variance() -> None:
    module = build_module(_config("ae", "gaussian"), G)
    params = module.generative(torch.zeros(N, D))
    assert params["var"].shape == (G,) and (params["var"] > 0).all()
    assert module.decoder.head.log_var.shape == (G,)


@pytest.mark.parametrize("family", FAMILIES)
def test_mixed_precision_keeps_likelihoods_in_float32(family: str) -> None:
    torch.manual_seed(0)
    module = build_module(_config(family, "zinb", library="learned"), G, n_covariates=2)
    batch = _batch("zinb", n_covariates=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module.loss(batch)
        module.eval()
        with torch.no_grad():
            inference = module.inference(batch["x"])
            params = module.generative(inference["z"], batch["library"], batch["covariate"])
            embedding = module.encode(batch["x"])
            recon = module.reconstruct(batch["x"], library=batch["library"])
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert inference["qz_mean"].dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in params.values())
    assert embedding.dtype == recon.dtype == torch.float32
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("likelihood", ["poisson", "nb", "zip", "zinb"])
def test_training_loss_is_the_same_without_the_expected_counts(
    family: str, likelihood: str
) -> None:
    """Training steps skip a count head's mean; the loss is unchanged, mse is logged in eval."""
    module = build_module(_config(family, likelihood, dropout=0.0), G)
    batch = _batch(likelihood)
    module.train()
    torch.manual_seed(3)
    trained = module.loss(batch, kl_weight=0.5)
    assert "mse" not in trained.metrics
    # The same step with the mean formed (as evaluation forms it), same draws.
    decoder = module.decoder
    forward = decoder.forward
    decoder.forward = lambda *a, **k: forward(*a, **{**k, "expected": True})
    torch.manual_seed(3)
    formed = module.loss(batch, kl_weight=0.5)
    decoder.forward = forward
    torch.testing.assert_close(trained.loss, formed.loss)
    torch.testing.assert_close(trained.reconstruction, formed.reconstruction)
    assert "mse" in formed.metrics
    module.eval()
    evaluated = module.loss(batch, kl_weight=0.5)
    if family in ("ae", "dae"):  # deterministic in evaluation: the mse of reconstruct's output
        expected = module.reconstruct(batch["x"], batch["library"])
        reference = torch.mean((expected - batch["target"]) ** 2)
        torch.testing.assert_close(evaluated.metrics["mse"], reference)
    else:  # the loss samples z: the logged mse is of one draw
        assert "mse" in evaluated.metrics
