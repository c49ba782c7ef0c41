"""The ``model`` section of a run configuration: architecture and objective.

Part of :mod:`geneae.config`, where :class:`~geneae.config.RunConfig` gathers the
sections. The likelihood choices come from :data:`geneae.likelihoods.LIKELIHOODS`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from geneae.config_base import Section
from geneae.data_defaults import MEMBERS, MEMBERS_SMALL, SMALL_DATA_BELOW, STANDARDIZED_WEIGHT
from geneae.likelihoods import COUNT_LIKELIHOODS, LIKELIHOODS

__all__ = ["Activation", "Family", "Likelihood", "ModelConfig", "Noise", "Norm"]

Family = Literal["ae", "dae", "vae", "gmvae"]
# The choices come from the likelihood table (one home); "auto" is resolved from the data.
Likelihood = Literal[("auto", *LIKELIHOODS)]  # type: ignore[valid-type]
Activation = Literal["relu", "elu", "leaky_relu", "sigmoid", "tanh", "linear"]
Norm = Literal["batch", "layer", "none"]
Noise = Literal["none", "gaussian", "mask", "dynamic_mask"]


class ModelConfig(Section):
    """Architecture and objective of the autoencoder.

    ``family``: ``ae`` (deterministic), ``dae`` (deterministic with corruption of the input
    during training), ``vae`` (Gaussian q(z|x)), ``gmvae`` (Gaussian-mixture prior).
    ``likelihood``: ``mse`` / ``masked_mse`` are plain losses; the others are negative
    log-likelihoods; ``poisson``, ``nb``, ``zip`` and ``zinb`` model raw counts; ``auto``
    resolves from the data when training starts: ``nb`` for raw counts, ``mse`` otherwise
    (each beside the standardised term, ``standardized_weight``).
    """

    family: Family = Field(default="vae", description="model family")
    likelihood: Likelihood = Field(
        default="auto",
        description="reconstruction likelihood (auto: nb for raw counts, mse otherwise)",
    )
    latent_dim: int = Field(default=10, ge=1, description="latent dimensions")
    hidden: list[int] = Field(
        default_factory=lambda: [128], description="encoder hidden layer sizes"
    )
    decoder_hidden: list[int] | None = Field(
        default=None, description="decoder layer sizes; None mirrors the encoder, [] is linear"
    )
    activation: Activation = "relu"
    norm: Norm = "batch"
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    noise: Noise = "none"
    noise_sigma: float = Field(default=0.1, ge=0.0)
    mask_rate: float = Field(default=0.1, ge=0.0, lt=1.0)
    mask_rate_min: float = Field(default=0.05, ge=0.0, lt=1.0)
    mask_rate_max: float = Field(default=0.25, ge=0.0, lt=1.0)
    library: Literal["observed", "learned"] = "observed"
    n_components: int = Field(default=10, ge=1, description="GMVAE mixture components")
    top_components: int | None = Field(
        default=None,
        ge=1,
        description="GMVAE: keep q(y|x) on its m most likely components (None: all K)",
    )
    contrastive_weight: float = Field(default=0.0, ge=0.0)
    contrastive_temperature: float = Field(default=0.5, gt=0.0)
    members: int | None = Field(
        default=None,
        ge=1,
        description="models of derived seeds, trained at once where the CPU threads allow "
        "(else one after the other); their latents, each centred and scaled, side by side "
        "(members x latent_dim dimensions) and their reconstructions averaged "
        "(geneae.module.ensemble): clusters that move less from seed to seed, at members "
        f"times the training work; None: {MEMBERS}, {MEMBERS_SMALL} for fewer than "
        f"{SMALL_DATA_BELOW} samples (1 for gmvae and for genes as samples, fewer where the "
        "samples or genes number under members x latent_dim; geneae.resolve)",
    )
    pca_block: bool | None = Field(
        default=None,
        description="an ensemble's embedding also holds latent_dim principal components "
        "of the model input, scaled as a member's block (geneae.module.ensemble); None: on "
        f"for fewer than {SMALL_DATA_BELOW} samples, where the members learn from few "
        "examples and PCA steadies them (geneae.resolve)",
    )
    wide_members: int | None = Field(
        default=None,
        ge=0,
        description="members of an ensemble (the last ones) that read every model gene, "
        "each z-scored, with squared error and no standardised term, so that every gene "
        "weighs alike; the other members read the narrow_genes most variable with the "
        "likelihood and the term. None: half the members (rounded down) of tables that are "
        "not single cells' (bulk samples' values or read counts) under preprocess preset "
        "auto with any likelihood but bernoulli, which then keeps n_wide_genes genes for "
        "them (beside a count likelihood the narrow members model the counts, and the wide "
        "members' reconstructions are taken back to counts; geneae.resolve); else 0",
    )
    narrow_genes: int | None = Field(
        default=None,
        ge=0,
        description="with wide members, the other members read and reconstruct only the "
        "first narrow_genes model genes: the preprocessing's n_top_genes most variable, "
        "which come first (0: every model gene); None: preprocess.n_top_genes where the "
        "model has wide members, else 0 (geneae.resolve)",
    )
    wide_target_sum: float | None = Field(
        default=None,
        ge=0.0,
        description="a wide member rescales each sample's log1p values so that its "
        "expression over every model gene totals this (the library of its own genes, as a "
        "run of them alone would have; the preprocessing scales the narrow members' genes "
        "to it); 0: as given; None, where the preprocessing normalises and takes log1p: "
        "its target_sum beside a count likelihood and on single cells' values, else a "
        "million (bulk values; the squared-error members read them at 1e4), and 0 where "
        "that is the preprocessing's own total over the same genes; else 0 "
        "(geneae.resolve_values.wide_target_sum)",
    )
    standardized_weight: float | None = Field(
        default=None,
        ge=0.0,
        description="weight of the standardised term beside a count or mse likelihood: a "
        "second decoder head fits a Gaussian with a learned variance per gene to the "
        "encoder input, so that every gene counts alike (geneae.module.heads); 1 puts it on "
        "the main term's scale (its null deviance per sample), 0 turns it off; None: "
        f"{STANDARDIZED_WEIGHT} for count and mse likelihoods (geneae.resolve)",
    )

    @field_validator("members")
    @classmethod
    def _one_gmvae(cls, members: int | None, info: ValidationInfo) -> int | None:
        # A field check (family is validated before it), so the error names the field.
        if (members or 1) > 1 and info.data.get("family") == "gmvae":
            raise ValueError(
                "members > 1 is not available for the gmvae family (the mixture components "
                "of different members do not correspond); set members: 1"
            )
        return members

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if any(h < 1 for h in self.hidden) or any(h < 1 for h in self.decoder_hidden or []):
            raise ValueError("hidden layer sizes must be positive integers")
        if self.mask_rate_min > self.mask_rate_max:
            raise ValueError(
                f"mask_rate_min ({self.mask_rate_min}) must not exceed "
                f"mask_rate_max ({self.mask_rate_max})"
            )
        if self.n_wide and self.likelihood == "bernoulli":
            raise ValueError(
                "wide_members needs a likelihood of the model input or of counts, not "
                "'bernoulli': a wide member reconstructs its z-scored input, which cannot be "
                "averaged with probabilities; set wide_members: 0"
            )
        if self.n_wide and self.family == "gmvae":
            raise ValueError("wide_members is not available for the gmvae family; set 0")
        if self.family == "dae" and self.noise == "none":
            self.noise = "mask"
        return self

    @property
    def n_wide(self) -> int:
        """The wide members (``wide_members``; 0 where left open)."""
        return self.wide_members or 0

    def rank_in_kind(self, i: int) -> int:
        """Member ``i``'s place among the members of its kind (narrow first, then wide).

        Each kind's members take the seeds of an ensemble of that kind alone
        (:func:`geneae.model_training.member_seed`), so the wide members of a mixed
        ensemble are those of an ensemble of wide members only.
        """
        narrow = (self.members or 1) - self.n_wide
        return i - narrow if i >= narrow else i

    def member(self, i: int) -> ModelConfig:
        """The configuration of member ``i`` of this ensemble, as one model.

        ``members: 1``; of the last ``wide_members``, ``wide_members: 1``, squared error
        and no standardised term (each such model z-scores its input itself, see
        :class:`geneae.module.views.GeneView`); of the others, ``wide_members: 0``.
        """
        wide = i >= (self.members or 1) - self.n_wide
        update: dict[str, object] = {"members": 1, "wide_members": int(wide)}
        if wide:
            update.update(likelihood="mse", standardized_weight=0.0)
        return self.model_copy(update=update)

    @property
    def is_variational(self) -> bool:
        return self.family in ("vae", "gmvae")

    @property
    def models_counts(self) -> bool:
        return self.likelihood in COUNT_LIKELIHOODS
