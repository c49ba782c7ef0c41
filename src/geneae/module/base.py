"""Pieces every family shares.

The loss record, the likelihood head and decoder, the library head, the corruption of the
encoder input and the unpacking of a batch.

The families (:class:`~geneae.module.AE`, :class:`~geneae.module.VAE`,
:class:`~geneae.module.GMVAE`) are composed of these; none inherits from another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geneae.config import ModelConfig
from geneae.distributions import (
    bernoulli_log_prob,
    gaussian_log_prob,
    masked_mse,
    nb_log_prob,
    poisson_log_prob,
    zinb_log_prob,
    zip_log_prob,
)
from geneae.likelihoods import COUNT_LIKELIHOODS
from geneae.module.contrastive import nt_xent
from geneae.nn import (
    MLP,
    CovariateLinear,
    decoder_sizes,
    full_precision,
    linear_decoder_weight,
    one_hot,
)

# Floors that keep variances / dispersions away from 0 and infinity in float32.
VAR_EPS = 1e-4
LOG_THETA_MAX = 12.0


@dataclass
class LossOutput:
    """What ``loss`` returns.

    Attributes
    ----------
    loss
        Scalar to minimise: mean over the batch of ``reconstruction + kl_weight * kl``,
        plus ``contrastive_weight * contrastive`` when that term is on.
    reconstruction
        (n,) per-sample reconstruction loss: negative log-likelihood summed over genes, or
        the squared error summed over genes for ``mse`` / ``masked_mse``.
    kl
        (n,) per-sample KL divergence (zeros for deterministic autoencoders).
    metrics
        Extra detached scalars for logging (``"mse"``, ``"elbo"``, ``"kl_y"``, ...).
    """

    loss: Tensor
    reconstruction: Tensor
    kl: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


class LikelihoodHead(nn.Module):
    """Maps the decoder's last hidden layer to the parameters of p(target | z).

    Parameters and links per likelihood (``"mean"`` is always the expected target):

    - ``mse``, ``masked_mse``: ``mean`` (identity link).
    - ``gaussian``: ``mean`` (identity) and a gene-wise ``var = exp(log_var) + 1e-4``
      (a free parameter per gene).
    - ``bernoulli``: ``logits``; ``mean = sigmoid(logits)``.
    - ``poisson``, ``nb``, ``zip``, ``zinb``: ``scale = softmax(.)`` over genes and
      ``mean = library * scale`` (the rate); ``nb`` / ``zinb`` add a gene-wise inverse
      dispersion ``theta = exp(log_theta)`` (log_theta capped at 12); ``zip`` / ``zinb``
      add zero-inflation ``pi_logits`` from a second linear output.

    For count likelihoods the decoder models proportions and the library size carries the
    sequencing depth (as scVI). ``"mean"`` is the mean of the count distribution without
    zero inflation (the denoised expression, as DCA). With no library given,
    ``library = 1``: ``"mean"`` is then the proportions.
    """

    def __init__(self, n_input: int, n_genes: int, likelihood: str, n_covariates: int = 0):
        super().__init__()
        self.likelihood = likelihood
        self.is_count = likelihood in COUNT_LIKELIHOODS
        self.out = CovariateLinear(n_input, n_genes, n_covariates)
        self.log_var = nn.Parameter(torch.zeros(n_genes)) if likelihood == "gaussian" else None
        self.log_theta = (
            nn.Parameter(torch.zeros(n_genes)) if likelihood in ("nb", "zinb") else None
        )
        self.pi = (
            CovariateLinear(n_input, n_genes, n_covariates)
            if likelihood in ("zip", "zinb")
            else None
        )

    def forward(
        self, h: Tensor, library: Tensor | None = None, covariate: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Parameters for hidden ``h`` (..., hidden); ``library`` is (n,), rows of ``h``."""
        out = full_precision(self.out(h, covariate))
        lik = self.likelihood
        if lik in ("mse", "masked_mse"):
            return {"mean": out}
        if lik == "gaussian":
            return {"mean": out, "var": self.log_var.exp() + VAR_EPS}
        if lik == "bernoulli":
            return {"logits": out, "mean": torch.sigmoid(out)}
        scale = torch.softmax(out, dim=-1)
        if library is None:
            mean = scale
        else:
            mean = scale * library.reshape(library.shape[0], *([1] * (scale.dim() - 1)))
        params = {"scale": scale, "mean": mean}
        if self.log_theta is not None:
            params["theta"] = self.log_theta.clamp(max=LOG_THETA_MAX).exp()
        if self.pi is not None:
            params["pi_logits"] = full_precision(self.pi(h, covariate))
        return params

    def loss(
        self, target: Tensor, params: dict[str, Tensor], nonzero: Tensor | None = None
    ) -> Tensor:
        """Element-wise reconstruction loss: squared error or negative log-likelihood.

        ``target`` broadcasts against the parameters (the GMVAE passes (n, 1, g) against
        (n, K, g)). ``nonzero`` (the batch's ``"target_nonzero"``) lets the count
        likelihoods evaluate their log-Gamma terms at the stored entries only.
        """
        lik, mean = self.likelihood, params["mean"]
        if lik == "mse":
            return (target - mean).square()
        if lik == "masked_mse":
            return masked_mse(target, mean, reduction="none")
        if lik == "gaussian":
            return -gaussian_log_prob(target, mean, params["var"])
        if lik == "bernoulli":
            return -bernoulli_log_prob(target, params["logits"])
        if lik == "poisson":
            return -poisson_log_prob(target, mean, nonzero=nonzero)
        if lik == "nb":
            return -nb_log_prob(target, mean, params["theta"], nonzero=nonzero)
        if lik == "zip":
            return -zip_log_prob(target, mean, params["pi_logits"], nonzero=nonzero)
        return -zinb_log_prob(target, mean, params["theta"], params["pi_logits"], nonzero=nonzero)


class LibraryHead(nn.Module):
    """Deterministic log-library predictor for ``library="learned"``.

    ``log l = w . h + b`` from the encoder's last hidden layer, trained only through the
    likelihood (no prior on l, unlike scVI's latent library). Because sequencing depths are
    in the thousands, starting from ``l = 1`` would take thousands of steps; so the bias is
    set once, from the first training batch, to the mean observed log-library and ``w`` to
    0 (a data-dependent initialisation, recorded in the ``initialised`` buffer so that a
    loaded model is not re-initialised). Under ``torch.distributed`` the ranks average
    their batch means (one all-reduce, on the first step only).
    """

    def __init__(self, n_input: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_input, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.register_buffer("initialised", torch.tensor(False))
        self._ready = False  # Python copy of the buffer: avoids a device sync per step

    def forward(self, h: Tensor) -> Tensor:
        """(n,) predicted log-library."""
        return full_precision(self.linear(h)).squeeze(-1)

    @torch.no_grad()
    def initialise(self, observed_library: Tensor) -> None:
        """Set the bias to the mean observed log-library, once."""
        if self._ready:
            return
        if not bool(self.initialised):
            value = observed_library.clamp(min=1.0).log().mean()
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                # Every rank must start from the same bias (DDP only syncs gradients).
                torch.distributed.all_reduce(value)
                value = value / torch.distributed.get_world_size()
            self.linear.bias.copy_(value.reshape(1))
            self.initialised.fill_(True)
        self._ready = True


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


def unpack(
    batch: dict[str, Tensor], n_covariates: int
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """``(x, target, observed_library, covariate_one_hot)`` from a batch dict.

    ``target`` defaults to ``x`` and the observed library to the target's row sums.
    """
    x = batch["x"]
    target = batch.get("target", x)
    library = batch.get("library")
    if library is None:
        library = target.sum(-1)
    covariate = batch.get("covariate")
    if n_covariates and covariate is None:
        raise ValueError(
            f"this model was built with {n_covariates} covariate levels; "
            "the batch must hold a 'covariate' index tensor."
        )
    return x, target, library, one_hot(covariate, n_covariates)


def squared_error(target: Tensor, mean: Tensor) -> Tensor:
    """Mean squared error over all entries, detached, for logging."""
    return F.mse_loss(mean.detach(), target)


def align_covariate(covariate: Tensor | None, z: Tensor) -> Tensor | None:
    """Reshape an (n, c) one-hot covariate to broadcast against ``z`` of shape (n, ..., d)."""
    if covariate is None or z.dim() == 2:
        return covariate
    return covariate.reshape(covariate.shape[0], *([1] * (z.dim() - 2)), covariate.shape[-1])


class Decoder(nn.Module):
    """p(target | z): hidden MLP (covariate injected into every layer) + likelihood head.

    ``cfg.decoder_hidden=None`` mirrors the encoder; ``[]`` is a linear decoder, whose
    output weight (:meth:`loadings`) holds one latent-to-gene loading per gene.
    """

    def __init__(self, cfg: ModelConfig, n_genes: int, n_covariates: int = 0) -> None:
        super().__init__()
        sizes = [cfg.latent_dim, *decoder_sizes(cfg.hidden, cfg.decoder_hidden)]
        self.mlp = MLP(sizes, cfg.activation, cfg.norm, cfg.dropout, n_covariates)
        self.head = LikelihoodHead(self.mlp.out_features, n_genes, cfg.likelihood, n_covariates)

    def forward(
        self, z: Tensor, library: Tensor | None = None, covariate: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Likelihood parameters for codes ``z`` (n, ..., d); ``covariate`` is (n, c) one-hot."""
        covariate = align_covariate(covariate, z)
        return self.head(self.mlp(z, covariate), library, covariate)

    def loadings(self) -> Tensor:
        """(genes, latent) weight of a linear decoder (raises for a deep decoder)."""
        return linear_decoder_weight(self.mlp, self.head.out)


def library_size(
    inference: dict[str, Tensor], observed: Tensor | None, learned: bool
) -> Tensor | None:
    """The library used by the likelihood: predicted (``learned``) or the observed one."""
    if learned and "log_library" in inference:
        return inference["log_library"].exp()
    return observed


def decode_batch(
    module: nn.Module, batch: dict[str, Tensor], mask_rate: float | None
) -> tuple[Tensor, Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """The start of every family's loss: ``(x, target, inference, likelihood params)``.

    The encoder sees the input corrupted as configured (training mode only), sampling its
    posterior; the decoder's parameters are for the uncorrupted target at the observed
    (or learned) library size.
    """
    x, target, observed, covariate = unpack(batch, module.n_covariates)
    if module.library_head is not None and module.training:
        module.library_head.initialise(observed)
    inference = module.inference(
        corrupt_input(x, module.cfg, mask_rate, module.training), sample=True
    )
    library = library_size(inference, observed, module.learned_library)
    params = module.decoder(inference["z"], library, covariate)
    return x, target, inference, params


def add_contrastive(
    module: nn.Module,
    total: Tensor,
    metrics: dict[str, Tensor],
    x: Tensor,
    mask_rate: float | None,
) -> Tensor:
    """``total`` plus the weighted NT-Xent term of two corrupted views (when configured)."""
    cfg = module.cfg
    if cfg.contrastive_weight <= 0:
        return total
    view1, view2 = contrastive_views(x, cfg, mask_rate)
    contrastive = nt_xent(module.embed(view1), module.embed(view2), cfg.contrastive_temperature)
    metrics["contrastive"] = contrastive.detach()
    return total + cfg.contrastive_weight * contrastive
