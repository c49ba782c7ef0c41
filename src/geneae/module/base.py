"""The contract every model family implements, and what they share.

:class:`ExpressionModule` is the one base class of the families (:class:`~geneae.module.AE`,
:class:`~geneae.module.VAE`, :class:`~geneae.module.GMVAE`): it holds the decoder and the
optional library head, and implements everything that follows from two family-specific
methods, :meth:`~ExpressionModule.inference` and :meth:`~ExpressionModule.loss`, plus
:meth:`~ExpressionModule.posterior` where the family's latent summary is not simply the
posterior mean. The model facade talks to a module only through this contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from geneae.config import ModelConfig
from geneae.module.contrastive import nt_xent
from geneae.module.corruption import contrastive_views, corrupt_input
from geneae.module.heads import Decoder, LibraryHead, library_size
from geneae.module.views import gene_view
from geneae.nn import one_hot


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
    inference
        The encoder's outputs for the batch this loss encoded (its possibly corrupted
        input), in the graph: a term on the latent (:meth:`ExpressionModule.posterior`)
        can join the loss without encoding the batch again.
    """

    loss: Tensor
    reconstruction: Tensor
    kl: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)
    inference: dict[str, Tensor] = field(default_factory=dict)


class ExpressionModule(nn.Module):
    """Base of every family: encoder(s) in the subclass, decoder and contract here.

    A family sets ``self.encoder``-side modules in its ``__init__`` after calling this one
    with the size of the hidden layer that feeds the library head, and implements:

    - ``inference(x, covariate=None, sample=None) -> dict``: at least ``"z"`` (the code the
      decoder uses: a sample in training for variational families, the mean otherwise)
      and ``"qz_mean"``; ``"log_library"`` when the library is learned.
    - ``loss(batch, kl_weight=1.0, mask_rate=None) -> LossOutput``.
    - ``posterior(inference) -> dict`` when its latent summary is not ``qz_mean`` (and
      ``qz_var``).

    Everything else — ``generative``, ``encode``, ``reconstruct``, ``predict`` (all outputs
    of one forward pass), ``loadings`` — is shared.

    Parameters
    ----------
    cfg
        Model configuration; every field is honoured by the families.
    n_genes
        Number of model genes. A member of an ensemble of two kinds reads and
        reconstructs its own view of them (:mod:`geneae.module.views`): ``n_genes`` is
        then its own width, ``n_model_genes`` the model's.
    n_covariates
        Levels of the one-hot covariate fed to the decoder; 0 for none.
    """

    def __init__(self, cfg: ModelConfig, n_genes: int, n_covariates: int = 0) -> None:
        super().__init__()
        self.cfg = cfg.model_copy(deep=True)
        self.n_model_genes = n_genes
        self.view = gene_view(cfg, n_genes)
        self.n_genes = n_genes if self.view is None else self.view.width
        self.n_covariates = n_covariates
        self.learned_library = cfg.models_counts and cfg.library == "learned"
        self.library_head: LibraryHead | None = None
        self.decoder = Decoder(cfg, self.n_genes, n_covariates)

    def add_library_head(self, n_hidden: int) -> None:
        """Predict the log-library from a hidden layer of ``n_hidden`` units (if learned)."""
        if self.learned_library:
            self.library_head = LibraryHead(n_hidden)

    def with_library(self, inference: dict[str, Tensor], hidden: Tensor) -> dict[str, Tensor]:
        """``inference`` plus ``"log_library"`` predicted from ``hidden`` when it is learned."""
        if self.library_head is not None:
            inference["log_library"] = self.library_head(hidden)
        return inference

    # -- family-specific ---------------------------------------------------------------
    def inference(
        self, x: Tensor, covariate: Tensor | None = None, sample: bool | None = None
    ) -> dict[str, Tensor]:
        raise NotImplementedError

    def loss(
        self, batch: dict[str, Tensor], kl_weight: float = 1.0, mask_rate: float | None = None
    ) -> LossOutput:
        raise NotImplementedError

    def posterior(self, inference: dict[str, Tensor]) -> dict[str, Tensor]:
        """The latent summary of an inference.

        ``"latent"`` (n, d) and, for variational families, ``"latent_var"`` (n, d).
        """
        out = {"latent": inference["qz_mean"]}
        if "qz_var" in inference:
            out["latent_var"] = inference["qz_var"]
        return out

    def expected_target(self, inference: dict[str, Tensor], params: dict[str, Tensor]) -> Tensor:
        """The expected target given an inference and its decoded parameters."""
        return params["mean"]

    # -- shared ----------------------------------------------------------------------------
    def generative(
        self,
        z: Tensor,
        library: Tensor | None = None,
        covariate: Tensor | None = None,
        *,
        standardized: bool = True,
    ) -> dict[str, Tensor]:
        """Likelihood parameters for codes ``z`` (see :class:`~geneae.module.heads.LikelihoodHead`).

        ``covariate`` holds integer levels; ``z`` is (n, d), or (n, m, d) for the GMVAE.
        ``standardized=False`` skips the standardised term's head (outputs need only the
        likelihood's parameters).
        """
        return self.decoder(
            z, library, one_hot(covariate, self.n_covariates), standardized=standardized
        )

    def predict(
        self,
        x: Tensor,
        library: Tensor | None = None,
        covariate: Tensor | None = None,
        *,
        decode: bool = True,
    ) -> dict[str, Tensor]:
        """Every output of uncorrupted ``x`` from one forward pass, without sampling.

        ``"latent"`` and, where the family has them, ``"latent_var"`` and
        ``"cluster_probabilities"`` (see :meth:`posterior`), and, unless ``decode`` is
        False, ``"reconstruction"``: the expected target — counts for count likelihoods
        (``library`` times the decoded proportions; with no library, the learned one if
        any, else 1), ``sigmoid(logits)`` for Bernoulli, the mean otherwise. Call
        ``.eval()`` first to switch dropout off.
        """
        inference = self.inference(self.own_input(x), covariate, sample=False)
        out = self.posterior(inference)
        if not decode:
            return out
        if library is None:
            library = library_size(inference, None, self.learned_library)
        params = self.generative(inference["z"], library, covariate, standardized=False)
        out["reconstruction"] = self.in_model_units(self.expected_target(inference, params), x)
        return out

    def encode(self, x: Tensor, covariate: Tensor | None = None) -> Tensor:
        """(n, d) latent means of uncorrupted model inputs ``x`` (no corruption, no sampling)."""
        return self._latent(self.own_input(x), covariate)

    def _latent(self, x: Tensor, covariate: Tensor | None = None) -> Tensor:
        """(n, d) latent means of this module's own input ``x``."""
        return self.posterior(self.inference(x, covariate, sample=False))["latent"]

    def own_input(self, x: Tensor) -> Tensor:
        """The input of this module from model inputs ``x``: its view of them, if any."""
        return x if self.view is None else self.view.inputs(x)

    def view_target(self, own_input: Tensor, target: Tensor) -> Tensor:
        """What a member with a view reconstructs of a batch: its ``own_input``, or counts.

        A count likelihood's member reads the leading genes (a narrow view) and reconstructs
        their counts (the batch's ``target`` sliced), whose total is the batch's library
        (:func:`geneae.prepared.to_tensors`).
        """
        assert self.view is not None
        return target[..., : self.view.width] if self.decoder.head.is_count else own_input

    def target_nonzero(self, batch: dict[str, Tensor]) -> Tensor | None:
        """The non-zeros' flat positions in the batch's target, where it is this module's.

        A member with a view reconstructs another shape: its loss finds its own.
        """
        return batch.get("target_nonzero") if self.view is None else None

    def in_model_units(self, values: Tensor, x: Tensor | None = None) -> Tensor:
        """A reconstruction of this module (..., its genes) in the model's units.

        Counts as they are; other values in the model input's units. ``x``: the model
        inputs they are of (a view that rescales samples needs their scale).
        """
        if self.view is None or self.decoder.head.is_count:  # counts: in no view's scale
            return values
        return self.view.outputs(values, x)

    def decoded_mean(
        self, z: Tensor, library: Tensor | None = None, covariate: Tensor | None = None
    ) -> Tensor:
        """The decoded mean of codes ``z`` over this module's genes, in model units.

        Of a member that rescales its samples, on its own scale (codes carry no sample's).
        """
        params = self.generative(z, library, covariate, standardized=False)
        return self.in_model_units(params["mean"])

    def reconstruct(
        self, x: Tensor, library: Tensor | None = None, covariate: Tensor | None = None
    ) -> Tensor:
        """Expected target given uncorrupted ``x`` (see :meth:`predict`)."""
        return self.predict(x, library, covariate)["reconstruction"]

    def loadings(self) -> Tensor:
        """(genes, latent) decoder weight; requires a linear decoder (``decoder_hidden=[]``)."""
        return self.decoder.loadings()

    # -- pieces of every loss ----------------------------------------------------------
    def encode_and_decode(
        self, batch: dict[str, Tensor], mask_rate: float | None
    ) -> tuple[Tensor, Tensor, dict[str, Tensor], dict[str, Tensor]]:
        """The start of every family's loss: ``(x, target, inference, likelihood params)``.

        The encoder sees the input corrupted as configured (training mode only), sampling
        its posterior; the decoder's parameters are for the uncorrupted target at the
        observed (or learned) library size.
        """
        x, target, observed, covariate = unpack(batch, self.n_covariates)
        if self.view is not None:
            x = self.view.inputs(x)
            target = self.view_target(x, target)
        if self.library_head is not None and self.training:
            self.library_head.initialise(observed)
        inference = self.inference(
            corrupt_input(x, self.cfg, mask_rate, self.training), sample=True
        )
        library = library_size(inference, observed, self.learned_library)
        # Training steps leave a count head's expected counts out (see the heads): only the
        # logged squared error would read them, and it is logged on validation only.
        params = self.decoder(inference["z"], library, covariate, expected=not self.training)
        return x, target, inference, params

    def reconstruction_loss(
        self, target: Tensor, params: dict[str, Tensor], nonzero: Tensor | None, x: Tensor
    ) -> Tensor:
        """Loss summed over genes: (n,), or (n, m) for per-component params.

        The likelihood's element-wise loss of ``target``, plus the standardised term of
        the uncorrupted encoder input ``x`` where the model has one (see
        :meth:`~geneae.module.heads.Decoder.reconstruction_loss`).
        """
        return self.decoder.reconstruction_loss(target, params, nonzero, x)

    def with_contrastive(
        self, total: Tensor, metrics: dict[str, Tensor], x: Tensor, mask_rate: float | None
    ) -> Tensor:
        """``total`` plus the weighted NT-Xent term of two corrupted views (when configured)."""
        cfg = self.cfg
        if cfg.contrastive_weight <= 0:
            return total
        view1, view2 = contrastive_views(x, cfg, mask_rate)
        # The views are of this module's own input already.
        contrastive = nt_xent(self._latent(view1), self._latent(view2), cfg.contrastive_temperature)
        metrics["contrastive"] = contrastive.detach()
        return total + cfg.contrastive_weight * contrastive


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


def logged_squared_error(target: Tensor, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """``{"mse": ...}`` where the decoder formed the mean, else ``{}``.

    A count head forms its mean only outside training steps (see
    :meth:`ExpressionModule.encode_and_decode`), so its mse is logged on validation.
    """
    return {"mse": squared_error(target, params["mean"])} if "mean" in params else {}
