"""Corruption of the encoder input (denoising, masking) and the contrastive views."""

from __future__ import annotations

import torch
from torch import Tensor

from geneae.config import ModelConfig


def corrupt(x: Tensor, noise: str, sigma: float, rate: float) -> Tensor:
    """Corrupt the encoder input: additive Gaussian noise, or masking noise (ADAGE).

    Masking sets a random fraction ``rate`` of the entries to zero, without rescaling
    the rest. ``noise="none"`` returns ``x`` itself.
    """
    if noise == "none":
        return x
    if noise == "gaussian":
        return x + sigma * torch.randn_like(x)
    if noise in ("mask", "dynamic_mask"):
        return x.masked_fill(torch.rand_like(x) < rate, 0.0)
    raise ValueError(f"unknown noise {noise!r}")


def mask_rate_for(cfg: ModelConfig, mask_rate: float | None) -> float:
    """Masking rate of this step.

    ``cfg.mask_rate`` for ``mask``; for ``dynamic_mask`` the rate given by the training plan,
    else the midpoint of [mask_rate_min, mask_rate_max].
    """
    if cfg.noise == "dynamic_mask":
        if mask_rate is None:
            return 0.5 * (cfg.mask_rate_min + cfg.mask_rate_max)
        return float(mask_rate)
    return cfg.mask_rate


def corrupt_input(x: Tensor, cfg: ModelConfig, mask_rate: float | None, training: bool) -> Tensor:
    """The configured corruption in training mode; the input unchanged otherwise."""
    if not training:
        return x
    return corrupt(x, cfg.noise, cfg.noise_sigma, mask_rate_for(cfg, mask_rate))


def contrastive_views(
    x: Tensor, cfg: ModelConfig, mask_rate: float | None
) -> tuple[Tensor, Tensor]:
    """Two independently corrupted views for the contrastive term.

    They use the configured corruption, or masking at rate 0.1 when ``cfg.noise`` is
    ``"none"``. The views define the contrastive objective, so they are drawn in
    evaluation mode too (the validation loss includes the same term as training).
    """
    if cfg.noise == "none":
        return corrupt(x, "mask", 0.0, 0.1), corrupt(x, "mask", 0.0, 0.1)
    rate = mask_rate_for(cfg, mask_rate)
    return (
        corrupt(x, cfg.noise, cfg.noise_sigma, rate),
        corrupt(x, cfg.noise, cfg.noise_sigma, rate),
    )
