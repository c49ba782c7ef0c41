"""Latent priors with closed-form KL divergences from diagonal Gaussian posteriors.

KL(N(m, v) || N(mu, s)) = 1/2 sum_d [log(s / v) + (v + (m - mu)^2) / s - 1].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def gaussian_kl(mean: Tensor, var: Tensor, prior_mean: Tensor, prior_var: Tensor) -> Tensor:
    """Element-wise KL(N(mean, var) || N(prior_mean, prior_var)).

    Sum the last axis for diagonal Gaussians.
    """
    return 0.5 * (
        prior_var.log() - var.log() + (var + (mean - prior_mean).square()) / prior_var - 1
    )


class StandardNormal(nn.Module):
    """p(z) = N(0, I)."""

    def kl_per_dim(self, mean: Tensor, var: Tensor) -> Tensor:
        """KL(q || p) per latent dimension, same shape as ``mean``."""
        return 0.5 * (var + mean.square() - 1 - var.log())

    def kl(self, mean: Tensor, var: Tensor) -> Tensor:
        """KL(N(mean, var) || N(0, I)), summed over the last (latent) axis."""
        return self.kl_per_dim(mean, var).sum(-1)


class MixtureOfGaussians(nn.Module):
    """p(z | y = k) = N(mu_k, diag(s_k)), p(y) uniform over K components.

    The means start as ``init_scale * N(0, I)`` draws so that the components begin apart
    and the posterior cannot collapse them onto one; the variances start at 1.

    Parameters
    ----------
    n_components
        K.
    latent_dim
        d.
    init_scale
        Standard deviation of the initial component means.
    """

    def __init__(self, n_components: int, latent_dim: int, init_scale: float = 1.0) -> None:
        super().__init__()
        self.n_components = n_components
        self.means = nn.Parameter(init_scale * torch.randn(n_components, latent_dim))
        self.log_vars = nn.Parameter(torch.zeros(n_components, latent_dim))

    @property
    def variances(self) -> Tensor:
        return self.log_vars.exp()

    def kl(self, mean: Tensor, var: Tensor, components: Tensor | None = None) -> Tensor:
        """KL(q(z | x, y=k) || p(z | y=k)) for each k.

        Parameters
        ----------
        mean, var
            (n, m, d) per-component posterior means and variances.
        components
            (n, m) the component index of each posterior; None when m = K, in order.

        Returns
        -------
        Tensor
            (n, m).
        """
        prior_mean, prior_var = self.means, self.variances
        if components is not None:
            prior_mean, prior_var = prior_mean[components], prior_var[components]
        return gaussian_kl(mean, var, prior_mean, prior_var).sum(-1)

    def kl_y(self, logits: Tensor) -> Tensor:
        """KL(q(y | x) || Uniform(K)) = sum_k q_k log q_k + log K, (n,).

        ``logits`` (n, m) are q(y|x)'s over its support (m <= K; the omitted components
        have q = 0 and add nothing).
        """
        log_q = torch.log_softmax(logits, dim=-1)
        return (log_q.exp() * log_q).sum(-1) + math.log(self.n_components)
