"""Building blocks shared by every model family: covariate-aware linear layers and MLPs.

A hidden layer is ``Linear -> norm -> activation -> dropout``. Input, latent and output
layers carry no activation; the likelihood head (``geneae.module.heads``) applies the link a
likelihood needs. A one-hot covariate can be injected into every layer (as scVI does for
batch correction); it is added as a separate bias-free linear map, which is the same as
concatenating the one-hot vector to the layer input but broadcasts: an input of shape
``(n, 1, p)`` and a covariate of shape ``(1, K, c)`` give ``(n, K, h)`` without ever
materialising ``n * K`` copies of the input (the GMVAE uses this for q(z|x, y)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "linear": nn.Identity,
}
NORMS = ("batch", "layer", "none")


class CovariateLinear(nn.Module):
    """Affine map of ``x`` plus a bias-free map of a (one-hot) covariate.

    ``y = W x + b + C c``. ``weight`` is ``W`` alone, so for a linear decoder it is the
    gene-loading matrix, with the covariate effects kept apart in ``C``.

    Parameters
    ----------
    n_input, n_output
        Sizes of ``x`` and ``y``.
    n_covariates
        Width of the one-hot covariate ``c``; 0 for none.
    """

    def __init__(self, n_input: int, n_output: int, n_covariates: int = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(n_input, n_output)
        self.covariate = nn.Linear(n_covariates, n_output, bias=False) if n_covariates else None

    @property
    def weight(self) -> Tensor:
        return self.linear.weight

    def forward(self, x: Tensor, covariate: Tensor | None = None) -> Tensor:
        out = self.linear(x)
        if self.covariate is not None and covariate is not None:
            out = out + self.covariate(covariate)
        return out


class _BatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the last axis for inputs of any rank (statistics over all rows)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return super().forward(x)
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def _norm(kind: str, size: int) -> nn.Module:
    if kind == "batch":
        return _BatchNorm(size)
    if kind == "layer":
        return nn.LayerNorm(size)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class _Block(nn.Module):
    """One hidden layer: Linear (+ covariate) -> norm -> activation -> dropout."""

    def __init__(
        self,
        n_input: int,
        n_output: int,
        activation: str,
        norm: str,
        dropout: float,
        n_covariates: int,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
        self.linear = CovariateLinear(n_input, n_output, n_covariates)
        self.norm = _norm(norm, n_output)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor, covariate: Tensor | None) -> Tensor:
        return self.dropout(self.activation(self.norm(self.linear(x, covariate))))


class MLP(nn.Module):
    """A stack of hidden layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Every layer is ``Linear -> norm -> activation -> dropout``; ``sizes=[p]`` is the
    identity (no layers), which is how linear encoders and decoders are built.

    Parameters
    ----------
    sizes
        Input size followed by the hidden layer sizes.
    activation
        One of ``relu``, ``elu``, ``leaky_relu``, ``sigmoid``, ``tanh``, ``linear``.
    norm
        ``batch``, ``layer`` or ``none``.
    dropout
        Dropout probability after each activation (active in training mode only).
    n_covariates
        Width of a one-hot covariate injected into the layers; 0 for none.
    inject_covariates
        Inject the covariate into every layer (True, scVI's default for decoders) or only
        into the first.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        norm: str = "batch",
        dropout: float = 0.0,
        n_covariates: int = 0,
        inject_covariates: bool = True,
    ) -> None:
        super().__init__()
        if len(sizes) < 1 or any(s < 1 for s in sizes):
            raise ValueError(f"sizes must be a non-empty list of positive integers, got {sizes}")
        self.sizes = list(sizes)
        self.layers = nn.ModuleList(
            _Block(
                n_in,
                n_out,
                activation,
                norm,
                dropout,
                n_covariates if (inject_covariates or i == 0) else 0,
            )
            for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        )

    @property
    def out_features(self) -> int:
        return self.sizes[-1]

    def forward(self, x: Tensor, covariate: Tensor | None = None) -> Tensor:
        """Apply the layers; ``covariate`` is a float one-hot tensor broadcastable to ``x``."""
        for layer in self.layers:
            x = layer(x, covariate)
        return x


class Encoder(nn.Module):
    """MLP followed by a latent head: a code, or the mean and variance of a Gaussian.

    The variance is ``softplus(.) + var_eps``: positive, with a floor that keeps the KL and
    the reparameterisation finite when the encoder becomes very confident.

    Returns ``(mean, var, hidden)`` from :meth:`forward`; ``var`` is None when
    ``variational`` is False; ``hidden`` is the last hidden layer (for auxiliary heads).
    """

    def __init__(
        self,
        n_input: int,
        hidden: Sequence[int],
        n_latent: int,
        activation: str = "relu",
        norm: str = "batch",
        dropout: float = 0.0,
        n_covariates: int = 0,
        variational: bool = True,
        var_eps: float = 1e-4,
    ) -> None:
        super().__init__()
        self.mlp = MLP([n_input, *hidden], activation, norm, dropout, n_covariates)
        self.mean = CovariateLinear(self.mlp.out_features, n_latent, n_covariates)
        self.var = (
            CovariateLinear(self.mlp.out_features, n_latent, n_covariates) if variational else None
        )
        self.var_eps = var_eps

    @classmethod
    def from_config(
        cls, cfg: Any, n_input: int, *, variational: bool, n_covariates: int = 0
    ) -> Encoder:
        """The encoder a :class:`~geneae.config.ModelConfig` describes."""
        return cls(
            n_input,
            cfg.hidden,
            cfg.latent_dim,
            cfg.activation,
            cfg.norm,
            cfg.dropout,
            n_covariates=n_covariates,
            variational=variational,
        )

    def forward(
        self, x: Tensor, covariate: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        h = self.mlp(x, covariate)
        mean = full_precision(self.mean(h, covariate))
        if self.var is None:
            return mean, None, h
        var = F.softplus(full_precision(self.var(h, covariate))) + self.var_eps
        return mean, var, h


def decoder_sizes(hidden: Sequence[int], decoder_hidden: Sequence[int] | None) -> list[int]:
    """Decoder hidden sizes: ``decoder_hidden``, or the encoder's reversed when None.

    ``[]`` gives a linear decoder (one linear map from the latent space to the genes).
    """
    return list(reversed(hidden)) if decoder_hidden is None else list(decoder_hidden)


def linear_decoder_weight(decoder: MLP, output: CovariateLinear) -> Tensor:
    """The (genes x latent) weight of a linear decoder: directly interpretable gene loadings.

    Raises
    ------
    ValueError
        If the decoder has hidden layers (its output weight then maps hidden units, not
        latent dimensions, to genes).
    """
    if len(decoder.layers) > 0:
        raise ValueError(
            "loadings are defined for linear decoders only; build the model with "
            "decoder_hidden=[] to get interpretable gene loadings."
        )
    return output.weight


def full_precision(t: Tensor) -> Tensor:
    """Upcast half-precision outputs (under autocast) to float32; other dtypes unchanged.

    Likelihoods, KL terms and softmaxes need float32 (a float16 cannot even hold a count of
    1e5), so every head returns its parameters in at least single precision.
    """
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def one_hot(covariate: Tensor | None, n_covariates: int) -> Tensor | None:
    """Float one-hot encoding of an integer covariate (None when there is none)."""
    if covariate is None or n_covariates == 0:
        return None
    return F.one_hot(covariate.long(), n_covariates).to(torch.get_default_dtype())
