"""Variational autoencoder with a Gaussian posterior and any likelihood."""

from __future__ import annotations

from torch import Tensor

from geneae.config import ModelConfig
from geneae.module.base import ExpressionModule, LossOutput, logged_squared_error
from geneae.module.priors import StandardNormal
from geneae.nn import Encoder


def reparameterise(mean: Tensor, var: Tensor) -> Tensor:
    """One sample ``mean + sqrt(var) * eps``, differentiable in mean and var."""
    return mean + var.sqrt() * mean.new_empty(mean.shape).normal_()


class VAE(ExpressionModule):
    """VAE: q(z|x) = N(mu(x), diag(sigma^2(x))), p(z) = N(0, I), p(target|z) any likelihood.

    Per sample, with one reparameterised draw ``z ~ q(z|x)``:

    ``reconstruction = -log p(target | z)`` (summed over genes; for ``mse`` /
    ``masked_mse`` the summed squared error), ``kl = KL(q(z|x) || p(z))`` (closed form),
    ``elbo = -(reconstruction + kl)`` and
    ``loss = mean_n(reconstruction + kl_weight * kl)`` (+ ``contrastive_weight * NT-Xent``).

    ``loss`` always samples z, in evaluation mode too, so that the validation ``elbo`` is
    a proper single-sample estimate of the bound; ``inference`` samples only in training
    mode unless told (``sample=``). The variance is ``softplus(.) + 1e-4``.

    With ``library="learned"`` the log-library is a deterministic encoder head trained
    through the likelihood (see :class:`~geneae.module.heads.LibraryHead`), not a latent
    variable.

    Parameters
    ----------
    cfg
        Model configuration; every field is honoured.
    n_genes
        Number of genes.
    n_covariates
        Levels of the one-hot covariate fed to the decoder; 0 for none.
    """

    def __init__(self, cfg: ModelConfig, n_genes: int, n_covariates: int = 0) -> None:
        super().__init__(cfg, n_genes, n_covariates)
        self.encoder = Encoder.from_config(cfg, self.n_genes, variational=True)
        self.add_library_head(self.encoder.mlp.out_features)
        self.prior = StandardNormal()

    # -- contract -------------------------------------------------------------------------
    def inference(
        self, x: Tensor, covariate: Tensor | None = None, sample: bool | None = None
    ) -> dict[str, Tensor]:
        """``{"z", "qz_mean", "qz_var"}`` (n, d), plus ``"log_library"`` (n,) if learned.

        ``z`` is a reparameterised sample when ``sample`` (default: training mode), the
        posterior mean otherwise. The encoder does not use the covariate.
        """
        mean, var, h = self.encoder(x)
        sample = self.training if sample is None else sample
        out = {"z": reparameterise(mean, var) if sample else mean, "qz_mean": mean, "qz_var": var}
        return self.with_library(out, h)

    def loss(
        self, batch: dict[str, Tensor], kl_weight: float = 1.0, mask_rate: float | None = None
    ) -> LossOutput:
        """Negative ELBO with a weighted KL (beta-VAE / KL warm-up via ``kl_weight``)."""
        x, target, inference, params = self.encode_and_decode(batch, mask_rate)
        reconstruction = self.reconstruction_loss(target, params, self.target_nonzero(batch), x)
        kl_per_dim = self.prior.kl_per_dim(inference["qz_mean"], inference["qz_var"])
        kl = kl_per_dim.sum(-1)
        total = (reconstruction + kl_weight * kl).mean()
        metrics = {
            "reconstruction": reconstruction.mean().detach(),
            "kl": kl.mean().detach(),
            # Latent dimensions in use (mean KL > 0.01 nats): a posterior-collapse gauge.
            "active_dims": (kl_per_dim.detach().mean(0) > 0.01).sum().to(kl.dtype),
            "elbo": -(reconstruction + kl).mean().detach(),
            **logged_squared_error(target, params),
        }
        total = self.with_contrastive(total, metrics, x, mask_rate)
        return LossOutput(total, reconstruction, kl, metrics, inference)
