"""The decoding side every family shares: likelihood head, library head, decoder.

:class:`LikelihoodHead` is built from the likelihood table (:mod:`geneae.likelihoods`): the
table says which parameters a likelihood has, how its mean is linked to the decoder's
output and which element-wise loss scores it, so adding a likelihood never touches this
file.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geneae.config import ModelConfig
from geneae.likelihoods import LIKELIHOODS
from geneae.nn import MLP, CovariateLinear, decoder_sizes, full_precision, linear_decoder_weight

# Floors that keep variances / dispersions away from 0 and infinity in float32.
VAR_EPS = 1e-4
LOG_THETA_MAX = 12.0


class LikelihoodHead(nn.Module):
    """Maps the decoder's last hidden layer to the parameters of p(target | z).

    ``"mean"`` is always the expected target. By the table entry's link: ``identity``
    (``mse``, ``masked_mse``, ``gaussian``), ``sigmoid`` of ``"logits"`` (``bernoulli``), or
    ``softmax`` over genes giving ``"scale"`` (proportions) and ``mean = library * scale``
    (the count likelihoods, as scVI: the library size carries the sequencing depth; with
    no library given, ``library = 1`` and the mean is the proportions). Extra parameters:
    a gene-wise ``"var" = exp(log_var) + 1e-4`` (``gaussian``), a gene-wise inverse
    dispersion ``"theta" = exp(log_theta)`` with log_theta capped at 12 (``nb``, ``zinb``),
    and zero-inflation ``"pi_logits"`` from a second linear output (``zip``, ``zinb``).
    For the zero-inflated likelihoods ``"mean"`` is the mean without zero inflation (the
    denoised expression, as DCA).
    """

    def __init__(self, n_input: int, n_genes: int, likelihood: str, n_covariates: int = 0):
        super().__init__()
        self.likelihood = likelihood
        self.spec = LIKELIHOODS[likelihood]
        self.is_count = self.spec.models_counts
        wanted = set(self.spec.parameters)
        self.out = CovariateLinear(n_input, n_genes, n_covariates)
        self.log_var = nn.Parameter(torch.zeros(n_genes)) if "var" in wanted else None
        self.log_theta = nn.Parameter(torch.zeros(n_genes)) if "theta" in wanted else None
        self.pi = CovariateLinear(n_input, n_genes, n_covariates) if "pi_logits" in wanted else None
        self._loss = self.spec.loss_function()

    def forward(
        self, h: Tensor, library: Tensor | None = None, covariate: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Parameters for hidden ``h`` (..., hidden); ``library`` is (n,), rows of ``h``."""
        out = full_precision(self.out(h, covariate))
        link = self.spec.link
        if link == "identity":
            params = {"mean": out}
        elif link == "sigmoid":
            params = {"logits": out, "mean": torch.sigmoid(out)}
        else:
            scale = torch.softmax(out, dim=-1)
            if library is None:
                mean = scale
            else:
                mean = scale * library.reshape(library.shape[0], *([1] * (scale.dim() - 1)))
            params = {"scale": scale, "mean": mean}
        if self.log_var is not None:
            params["var"] = self.log_var.exp() + VAR_EPS
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
        return self._loss(target, *(params[p] for p in self.spec.parameters), nonzero=nonzero)


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
