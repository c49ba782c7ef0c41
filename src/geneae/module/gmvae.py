"""Gaussian-mixture VAE (scVAE-style) with the cluster variable y marginalised exactly."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geneae.config import ModelConfig
from geneae.module.base import ExpressionModule, LossOutput, squared_error
from geneae.module.priors import MixtureOfGaussians
from geneae.module.vae import reparameterise
from geneae.nn import MLP, Encoder, full_precision


def _mix(weights: Tensor, values: Tensor) -> Tensor:
    """``sum_k weights[n, k] * values[n, k, :]`` as one batched matmul (no (n, K, .) temporary).

    Kept in full precision under autocast: these are outputs (embeddings, expected counts).
    """
    with torch.autocast(values.device.type, enabled=False):
        return (weights.unsqueeze(-2) @ values).squeeze(-2)


class GMVAE(ExpressionModule):
    """Gaussian-mixture VAE.

    Generative model: ``y ~ Uniform(K)``, ``z | y=k ~ N(mu_k, diag(s_k))`` (learned),
    ``target | z ~ p(target | z)`` (any likelihood). Inference model:
    ``q(y|x) = Cat(softmax(g(x)))`` and ``q(z|x, y=k) = N(m_k(x), diag(v_k(x)))``, where the
    z-encoder sees x and the one-hot y (injected into every layer, all K at once).

    ELBO per sample, marginalising y exactly, with one reparameterised ``z_k`` per component::

        elbo = sum_k q(k|x) [log p(target | z_k) - KL(q(z|x,k) || p(z|k))]
               - KL(q(y|x) || p(y))

    ``reconstruction = -sum_k q(k|x) log p(target | z_k)``,
    ``kl = sum_k q(k|x) KL_z,k + KL_y``, ``loss = mean_n(reconstruction + kl_weight * kl)``
    (+ ``contrastive_weight * NT-Xent``). Both KL terms are scaled by ``kl_weight``.
    The K decodes are one batched pass over n*K rows. ``loss`` samples in eval mode too.

    ``encode`` returns the mean of the marginal posterior
    ``q(z|x) = sum_k q(k|x) q(z|x,k)``, that is ``sum_k q(k|x) m_k(x)``: the
    responsibility-weighted mean of the per-component posterior means.

    q(y|x) has its own MLP (the encoder's hidden sizes); q(z|x, y) is a second encoder whose
    first layer computes ``W x`` once and adds the per-component term, so the K posteriors
    cost one pass over the genes. The learned log-library head, if any, sits on the q(y|x)
    network.

    With ``cfg.top_components = m < K``, q(y|x) is the softmax of its network's logits
    restricted to the m largest (zero elsewhere). Any q(y|x) gives a lower bound on
    log p(x), so the objective stays an ELBO, and the sums above run over m components:
    encoding and decoding, which dominate the cost of a step, shrink by a factor K / m.
    Which m components form the support is chosen per sample and step, without gradient.

    Notes
    -----
    Like every mixture model, training can stop in a local optimum where one component
    explains two clusters and another stays empty (on our synthetic 4-cluster counts, 1 or 2
    seeds out of 5, whatever the initial spread of the prior means; layer norm did somewhat
    better than batch norm). A KL warm-up does not prevent it. Compare a few seeds by their
    ELBO when clusters matter.

    Parameters
    ----------
    cfg
        Model configuration (``n_components`` is K); every field is honoured.
    n_genes
        Number of genes.
    n_covariates
        Levels of the one-hot covariate fed to the decoder; 0 for none.
    prior_scale
        Standard deviation of the random initial component means (spread out so that the
        components do not start on top of each other).
    """

    def __init__(
        self, cfg: ModelConfig, n_genes: int, n_covariates: int = 0, prior_scale: float = 1.0
    ) -> None:
        super().__init__(cfg, n_genes, n_covariates)
        k = cfg.n_components
        self.y_encoder = MLP([self.n_genes, *cfg.hidden], cfg.activation, cfg.norm, cfg.dropout)
        self.qy = nn.Linear(self.y_encoder.out_features, k)
        self.z_encoder = Encoder.from_config(cfg, self.n_genes, variational=True, n_covariates=k)
        self.register_buffer("components", torch.eye(k).unsqueeze(0), persistent=False)
        self.add_library_head(self.y_encoder.out_features)
        self.prior = MixtureOfGaussians(k, cfg.latent_dim, init_scale=prior_scale)

    # -- contract -------------------------------------------------------------------------
    def inference(
        self, x: Tensor, covariate: Tensor | None = None, sample: bool | None = None
    ) -> dict[str, Tensor]:
        """Posterior parameters for every component in the support of q(y|x) at once.

        ``"qy_logits"`` (n, K) the q(y|x) network's logits; ``"qy"`` (n, m) q(y|x) on its
        support, m = K unless ``cfg.top_components`` is smaller; ``"support"`` (n, m) the
        component indices when truncated (absent for all K, in order); ``"qz_mean"``,
        ``"qz_var"``, ``"z"`` (n, m, d), one per supported component (``z`` sampled when
        ``sample``, default training mode); ``"log_library"`` (n,) when learned. The
        encoders do not use the covariate.
        """
        h = self.y_encoder(x)
        logits = full_precision(self.qy(h))
        qy, support = self._responsibilities(logits)
        out = {"qy_logits": logits, "qy": qy}
        if support is None:
            components = self.components
        else:
            out["support"] = support
            components = F.one_hot(support, self.prior.n_components).to(x.dtype)
        # (n, 1, g) input and (., m, K) one-hot y broadcast to (n, m, .) in the first layer.
        mean, var, _ = self.z_encoder(x.unsqueeze(-2), components)
        sample = self.training if sample is None else sample
        out.update(qz_mean=mean, qz_var=var, z=reparameterise(mean, var) if sample else mean)
        return self.with_library(out, h)

    def loss(
        self, batch: dict[str, Tensor], kl_weight: float = 1.0, mask_rate: float | None = None
    ) -> LossOutput:
        """Negative ELBO, y summed exactly over the support of q(y|x); KLs times kl_weight."""
        x, target, inference, params = self.encode_and_decode(batch, mask_rate)
        rec_k = self.reconstruction_loss(
            target.unsqueeze(-2), params, self.target_nonzero(batch), x.unsqueeze(-2)
        )  # (n, m)
        support = inference.get("support")
        kl_z_k = self.prior.kl(inference["qz_mean"], inference["qz_var"], support)  # (n, m)
        qy = inference["qy"]
        reconstruction = (qy * rec_k).sum(-1)
        kl_z = (qy * kl_z_k).sum(-1)
        logits = inference["qy_logits"]
        kl_y = self.prior.kl_y(logits if support is None else logits.gather(-1, support))
        kl = kl_z + kl_y
        total = (reconstruction + kl_weight * kl).mean()
        metrics = {
            "reconstruction": reconstruction.mean().detach(),
            "kl": kl.mean().detach(),
            "kl_z": kl_z.mean().detach(),
            "kl_y": kl_y.mean().detach(),
            "elbo": -(reconstruction + kl).mean().detach(),
        }
        if "mean" in params:  # formed in evaluation (see encode_and_decode)
            with torch.no_grad():
                metrics["mse"] = squared_error(target, _mix(qy, params["mean"]))
        total = self.with_contrastive(total, metrics, x, mask_rate)
        return LossOutput(total, reconstruction, kl, metrics, inference)

    def _responsibilities(self, logits: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(q(y|x) on its support, support)``; the support is None for all K in order.

        Truncated to the ``cfg.top_components`` largest logits when that is below K; the
        choice carries no gradient, the probabilities do (gathered from ``logits``).
        """
        top = self.cfg.top_components
        if top is None or top >= self.prior.n_components:
            return torch.softmax(logits, dim=-1), None
        support = logits.detach().topk(top, dim=-1).indices
        return torch.softmax(logits.gather(-1, support), dim=-1), support

    def cluster_probabilities(self, x: Tensor, covariate: Tensor | None = None) -> Tensor:
        """(n, K) q(y | x); zero outside the support when ``cfg.top_components`` < K."""
        logits = full_precision(self.qy(self.y_encoder(x)))
        qy, support = self._responsibilities(logits)
        return qy if support is None else torch.zeros_like(logits).scatter(-1, support, qy)

    def posterior(self, inference: dict[str, Tensor]) -> dict[str, Tensor]:
        """The mixture posterior's summary.

        ``"latent"``: the mean of q(z|x) = sum_k q(k|x) q(z|x,k), i.e. sum_k q(k|x) m_k(x);
        ``"latent_var"``: sum_k q(k|x) v_k(x), the within-component part of the mixture's
        variance; ``"cluster_probabilities"``: (n, K) q(y|x), zero off its support.
        """
        qy = inference["qy"]
        support = inference.get("support")
        logits = inference["qy_logits"]
        probs = qy if support is None else logits.new_zeros(logits.shape).scatter(-1, support, qy)
        return {
            "latent": _mix(qy, inference["qz_mean"]),
            "latent_var": _mix(qy, inference["qz_var"]),
            "cluster_probabilities": probs,
        }

    def expected_target(self, inference: dict[str, Tensor], params: dict[str, Tensor]) -> Tensor:
        """``sum_k q(k|x) E[target | z = m_k(x)]``."""
        return _mix(inference["qy"], params["mean"])
