"""Pure-torch model families sharing one contract, :class:`ExpressionModule`.

Every family implements ``inference`` and ``loss`` (returning :class:`LossOutput`); the base
class gives ``generative``, ``encode``, ``reconstruct``, ``predict`` (every output of one
forward pass) and ``loadings``; the GMVAE adds ``cluster_probabilities``. Build one from a
:class:`~geneae.config.ModelConfig` with :func:`build_module`. See docs/architecture.md for
how to add a family.
"""

from __future__ import annotations

from geneae.config import ModelConfig
from geneae.module.ae import AE
from geneae.module.base import ExpressionModule, LossOutput
from geneae.module.ensemble import Ensemble, member_codes_of, members_of
from geneae.module.gmvae import GMVAE
from geneae.module.vae import VAE

__all__ = [
    "AE",
    "GMVAE",
    "VAE",
    "Ensemble",
    "ExpressionModule",
    "LossOutput",
    "build_module",
    "member_codes_of",
    "members_of",
]


def build_module(
    cfg: ModelConfig, n_genes: int, n_covariates: int = 0
) -> ExpressionModule | Ensemble:
    """The module of ``cfg.family`` for ``n_genes`` genes (an :class:`Ensemble` of them).

    With ``cfg.members > 1``, that many modules built one after the other (each from its
    own initial weights and its member's configuration, :meth:`ModelConfig.member`) in an
    :class:`Ensemble`.

    ``ae`` and ``dae`` give an :class:`AE` (the denoising one corrupts its input as
    ``cfg.noise`` says), ``vae`` a :class:`VAE`, ``gmvae`` a :class:`GMVAE`. A covariate with
    ``n_covariates`` levels (``batch["covariate"]`` holds indices) is fed to the decoder.
    """
    if n_genes < 1:
        raise ValueError(f"n_genes must be positive, got {n_genes}")
    if n_covariates < 0:
        raise ValueError(f"n_covariates must be >= 0, got {n_covariates}")
    if cfg.likelihood == "auto":
        raise ValueError(
            "likelihood 'auto' must be resolved from the data before building a module "
            "(nb for raw counts, gaussian otherwise); set ModelConfig.likelihood explicitly."
        )
    members = cfg.members or 1  # None (left to the data) builds one model
    if members > 1:
        return Ensemble(
            [build_module(cfg.member(i), n_genes, n_covariates) for i in range(members)]
        )
    if cfg.family in ("ae", "dae"):
        return AE(cfg, n_genes, n_covariates)
    if cfg.family == "vae":
        return VAE(cfg, n_genes, n_covariates)
    if cfg.family == "gmvae":
        return GMVAE(cfg, n_genes, n_covariates)
    raise ValueError(f"unknown model family {cfg.family!r}")
