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
from geneae.distributions import POSITIVE_FLOOR
from geneae.fused_nll import fusable, gaussian_nll_rows, nb_nll_rows, zinb_nll_rows
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
        self,
        h: Tensor,
        library: Tensor | None = None,
        covariate: Tensor | None = None,
        *,
        expected: bool = True,
    ) -> dict[str, Tensor]:
        """Parameters for hidden ``h`` (..., hidden); ``library`` is (n,), rows of ``h``.

        ``expected=False`` leaves out a softmax head's ``"scale"`` and ``"mean"`` (a softmax
        and a product over the whole batch): the fused count losses score the logits, and
        :meth:`loss` forms the mean itself where another likelihood needs it.
        """
        out = full_precision(self.out(h, covariate))
        link = self.spec.link
        if link == "identity":
            params = {"mean": out}
        elif link == "sigmoid":
            params = {"logits": out, "mean": torch.sigmoid(out)}
        else:
            params = {"logits": out}
            if library is not None:
                params["library"] = library
            if expected:
                params.update(expected_counts(params))
        if self.log_var is not None:
            params["var"] = self.log_var.exp() + VAR_EPS
        if self.log_theta is not None:
            params["theta"] = self.log_theta.clamp(max=LOG_THETA_MAX).exp()
        if self.pi is not None:
            params["pi_logits"] = full_precision(self.pi(h, covariate))
        return params

    @torch.no_grad()
    def start_at(self, mean: Tensor) -> None:
        """Start an identity-link head at each gene's mean.

        The decoder's output starts near 0; on values far from 0 (log expression, not
        centred) it would spend its first steps learning the gene means. The variances
        start at 1 as before (the data's own would give near-constant genes an extreme
        precision from the first step). Count and Bernoulli heads are left as they are.
        """
        if self.spec.link == "identity":
            self.out.linear.bias.copy_(mean)

    def loss(
        self, target: Tensor, params: dict[str, Tensor], nonzero: Tensor | None = None
    ) -> Tensor:
        """Element-wise reconstruction loss: squared error or negative log-likelihood.

        ``target`` broadcasts against the parameters (the GMVAE passes (n, 1, g) against
        (n, K, g)). ``nonzero`` (the batch's ``"target_nonzero"``) lets the count
        likelihoods evaluate their log-Gamma terms at the stored entries only.
        """
        if "mean" in self.spec.parameters and "mean" not in params:
            params = {**params, **expected_counts(params)}  # left out by forward
        return self._loss(target, *(params[p] for p in self.spec.parameters), nonzero=nonzero)

    def row_loss(
        self, target: Tensor, params: dict[str, Tensor], nonzero: Tensor | None = None
    ) -> Tensor:
        """:meth:`loss` summed over genes: (n,), or (n, K) for (n, K, g) parameters.

        The negative binomial (zero-inflated or not) and the Gaussian of a 2-D batch with
        per-gene parameters take their fused form (:mod:`geneae.fused_nll`: the same values
        and gradients in a few passes over the batch); the NB is scored from the decoder's
        logits, its mean's logarithm ``log_softmax(logits) + log(library)`` never formed
        element by element.
        """
        if self.likelihood in ("nb", "zinb"):
            fused = self._fused_nb_rows(target, params, nonzero)
            if fused is not None:
                return fused
        if self.likelihood == "gaussian" and fusable(target, params["var"], params["mean"]):
            return gaussian_nll_rows(target, params["mean"], params["var"])
        return self.loss(target, params, nonzero).sum(-1)

    def _fused_nb_rows(
        self, target: Tensor, params: dict[str, Tensor], nonzero: Tensor | None
    ) -> Tensor | None:
        """The NB / ZINB rows of :meth:`row_loss` where they can be fused, else None."""
        theta = params["theta"]
        per_entry = [params[k] for k in ("logits", "pi_logits") if k in params]
        if not fusable(target, theta, *per_entry):
            return None
        zinb = self.likelihood == "zinb"
        if zinb and nonzero is None and target.is_cuda:
            return None  # finding the positions would synchronise a GPU every step
        log_ratio = torch.log_softmax(params["logits"], dim=-1)
        library = params.get("library")
        if library is not None:
            log_ratio = log_ratio + library.clamp_min(POSITIVE_FLOOR).log().unsqueeze(1)
        log_ratio = log_ratio - theta.clamp_min(POSITIVE_FLOOR).log()
        if zinb:
            return zinb_nll_rows(target, log_ratio, theta, params["pi_logits"], nonzero=nonzero)
        return nb_nll_rows(target, log_ratio, theta, nonzero=nonzero)


def expected_counts(params: dict[str, Tensor]) -> dict[str, Tensor]:
    """A softmax head's ``"scale"`` (proportions) and ``"mean"`` (times the library, if any)."""
    scale = torch.softmax(params["logits"], dim=-1)
    library = params.get("library")
    if library is None:
        return {"scale": scale, "mean": scale}
    return {"scale": scale, "mean": scale * library.reshape(-1, *([1] * (scale.dim() - 1)))}


class StandardizedTerm(nn.Module):
    """The standardised term: a Gaussian with a learned variance per gene on the encoder input.

    A count likelihood lets a gene weigh in proportion to its expression and squared error
    in proportion to its variance, so cell types marked by lowly expressed genes are
    hardly seen (where z-scored PCA, every gene alike, wins). This head fits
    ``N(x_g; mean_g(z), var_g)`` to the encoder input ``x`` (z-scored log expression for
    count data, log expression otherwise); with its variance learned per gene, each gene's
    term is on its own scale, so every gene counts alike. Its loss,
    ``weight * scale * sum_g -log N(x_g)``, is added to the likelihood's: ``scale`` (a
    buffer set from the training data before training, :func:`geneae.balance.balance_scale`)
    is the main term's null deviance per sample over the number of genes — the null
    deviance of a z-scored input — so that ``weight`` keeps one ratio between the two terms
    whatever the sequencing depth or the input's units (BENCHMARKS.md, issue 14).
    """

    def __init__(self, n_input: int, n_genes: int, weight: float, n_covariates: int = 0):
        super().__init__()
        self.weight = float(weight)
        self.head = LikelihoodHead(n_input, n_genes, "gaussian", n_covariates)
        self.register_buffer("scale", torch.tensor(1.0))

    def forward(self, h: Tensor, covariate: Tensor | None = None) -> dict[str, Tensor]:
        """``"standardized_mean"`` and ``"standardized_var"`` for hidden ``h``."""
        params = self.head(h, None, covariate)
        return {"standardized_mean": params["mean"], "standardized_var": params["var"]}

    def loss(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Weighted Gaussian NLL of ``x`` summed over genes: (n,) or (n, m)."""
        gaussian = {"mean": params["standardized_mean"], "var": params["standardized_var"]}
        return (self.weight * self.scale) * self.head.row_loss(x, gaussian)


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

    With ``cfg.standardized_weight > 0`` a second head (:class:`StandardizedTerm`) scores
    the encoder input beside the likelihood; see :meth:`reconstruction_loss`.
    """

    def __init__(self, cfg: ModelConfig, n_genes: int, n_covariates: int = 0) -> None:
        super().__init__()
        sizes = [cfg.latent_dim, *decoder_sizes(cfg.hidden, cfg.decoder_hidden)]
        self.mlp = MLP(sizes, cfg.activation, cfg.norm, cfg.dropout, n_covariates)
        self.head = LikelihoodHead(self.mlp.out_features, n_genes, cfg.likelihood, n_covariates)
        weight = cfg.standardized_weight or 0.0
        self.standardized = (
            StandardizedTerm(self.mlp.out_features, n_genes, weight, n_covariates)
            if weight > 0
            else None
        )

    def forward(
        self,
        z: Tensor,
        library: Tensor | None = None,
        covariate: Tensor | None = None,
        *,
        standardized: bool = True,
        expected: bool = True,
    ) -> dict[str, Tensor]:
        """Likelihood parameters for codes ``z`` (n, ..., d); ``covariate`` is (n, c) one-hot.

        With the standardised term (and ``standardized``), also its ``"standardized_mean"``
        / ``"standardized_var"``; outputs that only need the likelihood skip that head.
        ``expected=False``: see :meth:`LikelihoodHead.forward`.
        """
        covariate = align_covariate(covariate, z)
        h = self.mlp(z, covariate)
        params = self.head(h, library, covariate, expected=expected)
        if standardized and self.standardized is not None:
            params.update(self.standardized(h, covariate))
        return params

    def start_at(self, mean: Tensor) -> None:
        """Start the heads that model the encoder input at its gene means.

        For data-dependent initialisation before training (see LikelihoodHead.start_at):
        the likelihood head when its target is the input, and the standardised term.
        """
        if not self.head.is_count:
            self.head.start_at(mean)
        if self.standardized is not None:
            self.standardized.head.start_at(mean)

    def reconstruction_loss(
        self, target: Tensor, params: dict[str, Tensor], nonzero: Tensor | None, x: Tensor
    ) -> Tensor:
        """The likelihood's loss summed over genes, plus the standardised term of ``x``.

        ``target`` and ``x`` (the uncorrupted encoder input) broadcast against the
        parameters: (n, g) for (n, g), (n, 1, g) for the GMVAE's (n, m, g). Returns (n,)
        or (n, m).
        """
        loss = self.head.row_loss(target, params, nonzero)
        if self.standardized is not None:
            loss = loss + self.standardized.loss(x, params)
        return loss

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
