from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from geneae.config import ModelConfig
from geneae.module import AE, build_module

LINEAR = {"activation": "linear", "norm": "none", "dropout": 0.0}


def _mse(module: AE, data: torch.Tensor) -> float:
    module.eval()
    with torch.no_grad():
        return float((module.reconstruct(data) - data).square().mean())


@pytest.mark.slow
def test_linear_ae_spans_the_pca_subspace(toy, fit) -> None:
    data, _ = toy
    k = 2
    torch.manual_seed(0)
    cfg = ModelConfig(
        family="ae", likelihood="mse", latent_dim=k, hidden=[], decoder_hidden=[], **LINEAR
    )
    module = build_module(cfg, data.shape[1])
    fit(module, {"x": data}, steps=400, lr=2e-2)
    pca = PCA(k).fit(data.numpy())
    basis = pca.components_.T  # (genes, k)
    decoder = module.loadings().detach().numpy()  # (genes, k)
    encoder = module.encoder.mean.weight.detach().numpy().T  # (genes, k)
    assert np.degrees(subspace_angles(decoder, basis)).max() < 5.0
    assert np.degrees(subspace_angles(encoder, basis)).max() < 5.0
    # At the optimum the linear AE's error is PCA's.
    pca_mse = float(
        np.square(pca.inverse_transform(pca.transform(data.numpy())) - data.numpy()).mean()
    )
    assert _mse(module, data) == pytest.approx(pca_mse, rel=0.02)


@pytest.mark.slow
def test_deep_ae_beats_linear_ae_on_curved_data(toy, fit) -> None:
    data, _ = toy
    torch.manual_seed(0)
    linear = build_module(
        ModelConfig(family="ae", likelihood="mse", latent_dim=2, hidden=[], **LINEAR), 9
    )
    fit(linear, {"x": data}, steps=400, lr=2e-2)
    torch.manual_seed(0)
    deep = build_module(
        ModelConfig(
            family="ae",
            likelihood="mse",
            latent_dim=2,
            hidden=[64, 32],
            activation="elu",
            norm="none",
            dropout=0.0,
        ),
        9,
    )
    fit(deep, {"x": data}, steps=300, lr=5e-3)
    assert _mse(deep, data) < 0.8 * _mse(linear, data)


def test_mse_is_summed_over_genes_and_mean_is_reported() -> None:
    torch.manual_seed(0)
    module = build_module(ModelConfig(family="ae", likelihood="mse", hidden=[8]), 6).eval()
    x = torch.randn(5, 6)
    out = module.loss({"x": x})
    with torch.no_grad():
        err = (module.reconstruct(x) - x).square()
    assert torch.allclose(out.reconstruction, err.sum(1), atol=1e-5)
    assert torch.allclose(out.loss, err.sum(1).mean(), atol=1e-5)
    assert torch.allclose(out.metrics["mse"], err.mean(), atol=1e-6)
    assert torch.equal(out.kl, torch.zeros(5))


def test_masked_mse_ignores_zero_targets() -> None:
    torch.manual_seed(0)
    module = build_module(
        ModelConfig(family="ae", likelihood="masked_mse", hidden=[8], norm="none", dropout=0.0), 6
    )
    x = torch.rand(5, 6)
    x[x < 0.4] = 0.0
    zeros = x == 0
    assert zeros.any() and (~zeros).any()

    # The loss is unchanged when the reconstruction changes at zero targets...
    mean = torch.rand(5, 6)
    moved = torch.where(zeros, mean + 10.0, mean)
    head = module.decoder.head
    assert torch.equal(head.loss(x, {"mean": mean}), head.loss(x, {"mean": moved}))
    assert torch.equal(head.loss(x, {"mean": mean})[zeros], torch.zeros(int(zeros.sum())))

    # ...so, through the whole module, its gradient w.r.t. the decoder output is 0 there.
    captured = {}

    def keep(_module, _inputs, output):
        output.retain_grad()
        captured["out"] = output

    module.decoder.head.out.register_forward_hook(keep)
    module.loss({"x": x}).loss.backward()
    grad = captured["out"].grad
    assert torch.equal(grad[zeros], torch.zeros(int(zeros.sum())))
    assert (grad[~zeros] != 0).all()


def test_dae_is_an_ae_with_masking() -> None:
    cfg = ModelConfig(family="dae", likelihood="mse")
    module = build_module(cfg, 5)
    assert isinstance(module, AE)
    assert module.cfg.noise == "mask"
