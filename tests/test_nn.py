from __future__ import annotations

import pytest
import torch
from torch import nn

from geneae.nn import (
    ACTIVATIONS,
    MLP,
    CovariateLinear,
    Encoder,
    decoder_sizes,
    linear_decoder_weight,
    one_hot,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)


def test_mlp_layer_order_and_sizes() -> None:
    mlp = MLP([7, 5, 3], activation="elu", norm="layer", dropout=0.2)
    assert mlp.out_features == 3
    assert len(mlp.layers) == 2
    block = mlp.layers[0]
    # Linear -> norm -> activation -> dropout, in that order.
    assert [name for name, _ in block.named_children()] == [
        "linear",
        "norm",
        "activation",
        "dropout",
    ]
    assert isinstance(block.norm, nn.LayerNorm)
    assert isinstance(block.activation, nn.ELU)
    assert isinstance(block.dropout, nn.Dropout) and block.dropout.p == 0.2
    assert mlp(torch.randn(4, 7)).shape == (4, 3)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_mlp_every_activation_and_norm(activation: str, norm: str) -> None:
    mlp = MLP([6, 4], activation=activation, norm=norm, dropout=0.0)
    out = mlp(torch.randn(8, 6))
    assert out.shape == (8, 4) and torch.isfinite(out).all()


def test_linear_mlp_without_norm_is_affine() -> None:
    mlp = MLP([6, 4, 2], activation="linear", norm="none")
    x, y = torch.randn(3, 6), torch.randn(3, 6)
    # Affine maps preserve affine combinations.
    assert torch.allclose(mlp(0.3 * x + 0.7 * y), 0.3 * mlp(x) + 0.7 * mlp(y), atol=1e-5)


def test_mlp_of_one_size_is_identity() -> None:
    mlp = MLP([5])
    x = torch.randn(2, 5)
    assert len(mlp.layers) == 0 and mlp.out_features == 5
    assert torch.equal(mlp(x), x)


def test_dropout_only_in_training() -> None:
    mlp = MLP([10, 50], norm="none", dropout=0.5)
    x = torch.randn(4, 10)
    mlp.eval()
    assert torch.equal(mlp(x), mlp(x))
    mlp.train()
    assert not torch.equal(mlp(x), mlp(x))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="activation"):
        MLP([3, 2], activation="gelu")
    with pytest.raises(ValueError, match="norm"):
        MLP([3, 2], norm="group")
    with pytest.raises(ValueError, match="sizes"):
        MLP([])


def test_covariate_injected_into_every_layer_or_first_only() -> None:
    every = MLP([4, 3, 3], n_covariates=2, norm="none")
    first = MLP([4, 3, 3], n_covariates=2, norm="none", inject_covariates=False)
    assert all(layer.linear.covariate is not None for layer in every.layers)
    assert first.layers[0].linear.covariate is not None
    assert first.layers[1].linear.covariate is None
    x = torch.randn(5, 4)
    c0 = one_hot(torch.zeros(5, dtype=torch.long), 2)
    c1 = one_hot(torch.ones(5, dtype=torch.long), 2)
    assert not torch.allclose(every(x, c0), every(x, c1))


def test_covariate_linear_equals_concatenation() -> None:
    layer = CovariateLinear(4, 3, n_covariates=2)
    x = torch.randn(6, 4)
    c = one_hot(torch.tensor([0, 1, 1, 0, 1, 0]), 2)
    weight = torch.cat([layer.linear.weight, layer.covariate.weight], dim=1)
    expected = torch.cat([x, c], dim=1) @ weight.T + layer.linear.bias
    assert torch.allclose(layer(x, c), expected, atol=1e-6)
    assert layer.weight is layer.linear.weight


def test_covariate_broadcasts_over_components() -> None:
    # (n, 1, p) inputs with a (1, K, K) one-hot give (n, K, h): the GMVAE's q(z|x, y).
    mlp = MLP([6, 5, 4], n_covariates=3, norm="batch")
    x = torch.randn(7, 6)
    out = mlp(x.unsqueeze(1), torch.eye(3).unsqueeze(0))
    assert out.shape == (7, 3, 4)
    mlp.eval()
    out = mlp(x.unsqueeze(1), torch.eye(3).unsqueeze(0))
    for k in range(3):
        ck = one_hot(torch.full((7,), k), 3)
        assert torch.allclose(out[:, k], mlp(x, ck), atol=1e-5)


def test_encoder_outputs() -> None:
    enc = Encoder(8, [6], 3, norm="none")
    mean, var, h = enc(torch.randn(5, 8))
    assert mean.shape == var.shape == (5, 3) and h.shape == (5, 6)
    assert (var >= 1e-4).all()
    det = Encoder(8, [], 3, variational=False)
    mean, var, h = det(torch.randn(5, 8))
    assert var is None and mean.shape == (5, 3) and h.shape == (5, 8)


def test_decoder_sizes_mirror_the_encoder() -> None:
    assert decoder_sizes([64, 32], None) == [32, 64]
    assert decoder_sizes([64, 32], []) == []
    assert decoder_sizes([64, 32], [16]) == [16]


def test_linear_decoder_weight() -> None:
    out = CovariateLinear(3, 10, n_covariates=2)
    weight = linear_decoder_weight(MLP([3]), out)
    assert weight.shape == (10, 3)
    with pytest.raises(ValueError, match="linear decoders"):
        linear_decoder_weight(MLP([3, 4]), CovariateLinear(4, 10))


def test_one_hot() -> None:
    assert one_hot(None, 3) is None
    assert one_hot(torch.tensor([1]), 0) is None
    c = one_hot(torch.tensor([2, 0]), 3)
    assert c.dtype == torch.float32
    assert torch.equal(c, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
