"""Deterministic autoencoder: plain, zero-masked, denoising (ADAGE) and count (DCA) variants."""

from __future__ import annotations

import torch
from torch import Tensor

from geneae.config import ModelConfig
from geneae.module.base import ExpressionModule, LossOutput, logged_squared_error
from geneae.nn import Encoder


class AE(ExpressionModule):
    """Autoencoder with a deterministic code ``z = f(x)``.

    Objective per sample: ``reconstruction = sum_g loss_g(target, g(f(corrupt(x))))`` where
    ``loss_g`` is the squared error (``mse``; the *sum* over genes, i.e. the Gaussian
    negative log-likelihood with variance 1/2 up to a constant, so that it is on the same
    per-sample scale as the count likelihoods; ``metrics["mse"]`` reports the mean over
    entries), the squared error on non-zero targets only (``masked_mse``), or the negative
    log-likelihood of any likelihood (``gaussian``, ``bernoulli``; ``poisson`` / ``nb`` /
    ``zip`` / ``zinb`` on raw counts, as DCA). ``loss = mean_n reconstruction``
    (+ ``contrastive_weight * NT-Xent``). The family ``dae`` is this class with a
    corruption of the encoder input during training (``cfg.noise``).

    Parameters
    ----------
    cfg
        Model configuration; every field is honoured.
    n_genes
        Number of input (and output) genes.
    n_covariates
        Levels of the one-hot covariate fed to the decoder; 0 for none.
    """

    def __init__(self, cfg: ModelConfig, n_genes: int, n_covariates: int = 0) -> None:
        super().__init__(cfg, n_genes, n_covariates)
        self.encoder = Encoder.from_config(cfg, self.n_genes, variational=False)
        self.add_library_head(self.encoder.mlp.out_features)

    # -- contract -------------------------------------------------------------------------
    def inference(
        self, x: Tensor, covariate: Tensor | None = None, sample: bool | None = None
    ) -> dict[str, Tensor]:
        """``{"z", "qz_mean"}``: both the code, (n, d); ``"log_library"`` (n,) if learned.

        The encoder does not use the covariate; ``sample`` is accepted for a uniform
        signature with the variational families and has no effect (the code is
        deterministic).
        """
        z, _, h = self.encoder(x)
        return self.with_library({"z": z, "qz_mean": z}, h)

    def loss(
        self, batch: dict[str, Tensor], kl_weight: float = 1.0, mask_rate: float | None = None
    ) -> LossOutput:
        """Reconstruction loss of the uncorrupted target from the (corrupted) input.

        ``kl_weight`` is accepted for a uniform interface and has no effect.
        """
        x, target, inference, params = self.encode_and_decode(batch, mask_rate)
        reconstruction = self.reconstruction_loss(target, params, self.target_nonzero(batch), x)
        total = reconstruction.mean()
        metrics = {
            "reconstruction": total.detach(),
            **logged_squared_error(target, params),
        }
        total = self.with_contrastive(total, metrics, x, mask_rate)
        zeros = torch.zeros_like(reconstruction)
        return LossOutput(total, reconstruction, zeros, metrics, inference)
