"""The one place where the data decide settings: ``resolve(config, facts) -> config``.

A :class:`~geneae.config.RunConfig` may leave choices to the data: ``auto`` likelihood and
preprocessing preset, preprocessing steps left at ``None``, epochs left at ``None``.
:func:`resolve` makes every one of these choices from :class:`~geneae.facts.DataFacts`
and returns a configuration with none left open. A run writes that resolved configuration
to config.yaml once, so ``geneae train --config RUN/config.yaml`` reproduces the run
without deciding anything again. Presets (:mod:`geneae.presets`) only override fields;
the model, the preprocessor and the command line never decide on their own.

Each decision the data made is logged on one line (logger ``geneae.resolve``). What the
data decide about preprocessing (presets' steps, genes, logs undone) is
:mod:`geneae.resolve_preprocess`'s.
"""

from __future__ import annotations

import logging
import math

from geneae.config import RunConfig
from geneae.data_defaults import (
    BATCH_SIZE,
    CLUSTER_EPOCHS,
    CLUSTER_SAMPLES_SEEN,
    COMPILE_MIN_ENTRIES,
    MAX_EPOCHS,
    MEMBERS,
    MEMBERS_SMALL,
    MIN_BATCH_SIZE,
    SMALL_DATA_BELOW,
    STANDARDIZED_WEIGHT,
    WIDE_GENES,
)
from geneae.errors import ConfigError, InputError
from geneae.facts import DataFacts
from geneae.likelihoods import LIKELIHOODS
from geneae.resolve_preprocess import gene_preprocess, resolve_preprocess
from geneae.resolve_values import wide_target_sum

logger = logging.getLogger(__name__)
# Samples each model (each member of an ensemble) sees in training by default; half of it
# loses 0.04 ARI on mouse bladder even with three members (design record, round 9).
SAMPLES_SEEN = 4e5


def default_epochs(n_obs: int, samples_seen: float = SAMPLES_SEEN) -> int:
    """Default number of epochs for ``n_obs`` training samples.

    A fixed budget of about 400k samples seen (~1,600 steps of the default batch of 256):
    more training keeps lowering the loss but makes the latent worse for clustering (on 10x
    PBMC, ARI 0.76 after 100 epochs, 0.59 after 250; scvi-tools shows the same between 100
    and 400).
    ``clip(round(samples_seen / n_obs), 20, MAX_EPOCHS)``: with the default ``SAMPLES_SEEN``,
    300 up to 1,333 samples, 190 epochs for 2,100 cells, 94 for 4,271, 40 for 10k, 20 from
    20k cells on.
    """
    return clip_epochs(round(samples_seen / max(n_obs, 1)), at_least=20)


def default_batch_size(n_train: int) -> int:
    """The default training batch for ``n_train`` training samples.

    256, or for ``n_train <= 256`` the power of two at or below ``n_train / 4`` (at least
    32), so that an epoch is several steps.
    """
    if n_train > BATCH_SIZE:
        return BATCH_SIZE
    quarter = max(n_train // 4, 1)
    return int(max(MIN_BATCH_SIZE, 2 ** (quarter.bit_length() - 1)))


def clip_epochs(epochs: float, at_least: int) -> int:
    """``epochs`` within [``at_least``, :data:`MAX_EPOCHS`], as every data-sized default is."""
    return int(min(MAX_EPOCHS, max(at_least, epochs)))


def default_cluster_epochs(n_obs: int) -> int:
    """Default epochs of the clustering phase over ``n_obs`` samples (all of them).

    ``clip(ceil(CLUSTER_SAMPLES_SEEN / n_obs), CLUSTER_EPOCHS, MAX_EPOCHS)``: 20 from 4,000
    samples on (10x PBMC, worm neurons, CBMC), 30 for 2,746 (mouse bladder), 39 for 2,100
    (bundled PBMC), 134 for 600 (a bulk table), 300 for 120.
    """
    return clip_epochs(math.ceil(CLUSTER_SAMPLES_SEEN / max(n_obs, 1)), at_least=CLUSTER_EPOCHS)


def embedding_width(config: RunConfig) -> int:
    """Dimensions of ``config``'s embedding: its members' latents and its PCA block."""
    model = config.model
    return (members(config) + bool(model.pca_block)) * model.latent_dim


def members(config: RunConfig, room: int | None = None, n_obs: int | None = None) -> int:
    """The members of an ensemble ``config`` trains.

    :data:`MEMBERS`, known before the data are read (the member processes start first),
    except that data of ``n_obs`` < :data:`SMALL_DATA_BELOW` samples get
    :data:`MEMBERS_SMALL`, and a data set of ``room`` = min(samples, genes) below members x
    latent_dim gets as many members as it holds latents side by side (at least one): the
    embedding, and the PCA baseline of as many components, must fit in it. A small bulk
    cohort (24 samples: two members) then trains instead of being refused.
    """
    if config.model.members is not None:
        return config.model.members
    # The ensemble steadies the clusters of samples; a GMVAE's mixture components do not
    # line up across members, and gene embeddings are not clustered.
    if config.data.genes_as_samples or config.model.family == "gmvae":
        return 1
    full = MEMBERS_SMALL if n_obs is not None and n_obs < SMALL_DATA_BELOW else MEMBERS
    if room is None:
        return full
    return max(1, min(full, room // config.model.latent_dim))


def resolve(config: RunConfig, facts: DataFacts) -> RunConfig:
    """A copy of ``config`` with every choice left to the data made from ``facts``.

    Raises
    ------
    InputError
        The configuration asks for something the data cannot give (a count likelihood or
        a counts preset without raw counts), before anything is trained or written.
    """
    config = config.model_copy(deep=True)
    model = config.model
    if config.data.genes_as_samples:
        _check_genes_as_samples(config)
        if model.likelihood == "auto":
            model.likelihood = "gaussian"
            logger.info(
                "likelihood: gaussian (genes as samples: each gene's standardised log "
                "expression across the samples)"
            )
        config.preprocess = gene_preprocess(config.preprocess, facts)
    if model.likelihood == "auto":
        model.likelihood = "nb" if facts.has_counts else "mse"
        logger.info("likelihood: %s (%s)", model.likelihood, _why_likelihood(facts))
    if LIKELIHOODS[model.likelihood].models_counts and not facts.has_counts:
        raise InputError(
            f"likelihood {model.likelihood!r} models raw counts, but the data have none (X "
            f"holds {facts.describe_values()} and there is no counts layer). Give raw counts "
            "(X or layers['counts']), or choose --likelihood gaussian / mse."
        )
    genes_as_samples = config.data.genes_as_samples
    if model.standardized_weight is None:
        # Genes as samples: each row is standardised already and gene similarity is the
        # point, so neither geneae addition applies there.
        weighs_by_scale = LIKELIHOODS[model.likelihood].weighs_by_scale
        model.standardized_weight = (
            STANDARDIZED_WEIGHT if weighs_by_scale and not genes_as_samples else 0.0
        )
    if config.train.cluster_epochs is None:
        phase = 0 if genes_as_samples else default_cluster_epochs(facts.n_obs)
        given = config.train.max_epochs
        if given is not None and phase > given:  # a run asked to be short stays short
            logger.info(
                "clustering phase: %d epochs, as many as train.max_epochs (%d by default on "
                "%s samples; train.cluster_epochs sets it)",
                given,
                phase,
                f"{facts.n_obs:,}",
            )
            phase = given
        config.train.cluster_epochs = phase
    n_obs, room, d = facts.n_obs, min(facts.n_obs, facts.n_vars), model.latent_dim
    full = members(config, n_obs=n_obs)
    asked = model.pca_block
    if asked is None:
        asked = full > 1 and not genes_as_samples and n_obs < SMALL_DATA_BELOW
    # The block takes a member's room, and stands beside two members at least.
    beside = members(config, room - d, n_obs) if asked else 0
    model.pca_block = beside > 1 and (beside + 1) * d <= room
    model.members = beside if model.pca_block else members(config, room, n_obs)
    if asked and not model.pca_block:
        logger.info(
            "PCA block: off (it stands beside two members or more, and %s samples x %s genes "
            "hold %d latents of %d side by side)",
            f"{facts.n_obs:,}",
            f"{facts.n_vars:,}",
            room // d,
            d,
        )
    elif model.pca_block:
        logger.info(
            "PCA block: %d principal components of the model input beside the %d members "
            "(on by default for fewer than %s samples; model.pca_block sets it)",
            d,
            model.members,
            f"{SMALL_DATA_BELOW:,}",
        )
    if full > MEMBERS and model.members == full:
        logger.info(
            "members: %d (the default for fewer than %s samples, where each model learns "
            "from few examples; model.members sets it)",
            model.members,
            f"{SMALL_DATA_BELOW:,}",
        )
    if model.members < full:
        logger.info(
            "members: %d (%s samples x %s genes hold %d latents of %d side by side%s; "
            "model.members sets it)",
            model.members,
            f"{facts.n_obs:,}",
            f"{facts.n_vars:,}",
            model.members + model.pca_block,
            model.latent_dim,
            ", the PCA block's among them" if model.pca_block else "",
        )
    model.wide_members = wide_members(config, facts)
    config.preprocess = resolve_preprocess(
        config.preprocess,
        facts,
        standardized_term=model.standardized_weight > 0,
        wide_members=model.wide_members > 0,
        count_likelihood=LIKELIHOODS[model.likelihood].models_counts,
    )
    pp = config.preprocess
    if model.narrow_genes is None:
        top = pp.n_top_genes or 0
        model.narrow_genes = top if model.wide_members and top else 0
    if model.wide_target_sum is None:
        # The wide genes follow the narrow ones' library (geneae.pp.steps.library_genes);
        # the wide members take their own back, at their own total, where the values allow
        # it (0: as given, where they read the same genes at the same total).
        total = 0.0
        if model.wide_members and pp.log_normalised:
            total = wide_target_sum(pp, facts, model.models_counts)
        wider = (pp.n_wide_genes or 0) > (pp.n_top_genes or 0) or model.models_counts
        model.wide_target_sum = total if wider or total != pp.target_sum else 0.0
    _check_kinds(config)
    # Genes as samples: the model's training rows are the genes.
    rows = facts.n_vars if genes_as_samples else facts.n_obs
    if config.train.max_epochs is None:
        config.train.max_epochs = default_epochs(rows)
    from geneae.batches import n_validation  # imports torch: not at this module's top

    train_rows = rows - n_validation(rows, config.train.validation)
    if config.train.batch_size is None:
        config.train.batch_size = default_batch_size(train_rows)
    if config.train.compile is None:
        genes = facts.n_obs if genes_as_samples else facts.n_vars
        top = max(config.preprocess.n_top_genes or 0, config.preprocess.n_wide_genes or 0)
        genes = min(genes, top) if top else genes
        config.train.compile = default_compile(
            config.train.max_epochs, train_rows, config.train.batch_size, genes
        )
    return config


def _why_likelihood(facts: DataFacts) -> str:
    """Why ``likelihood: auto`` became what it did, for the log line."""
    if not facts.has_counts:
        return f"the data hold {facts.describe_values()}"
    if facts.single_cells:
        return f"the data hold raw counts in {facts.counts_in}"
    return (
        f"the data hold raw counts in {facts.counts_in} of bulk samples, not single cells "
        f"({facts.floor_fraction:.0%} zeros): the narrow members model the counts of the "
        "most variable genes, the wide members every kept gene's log-normalised expression"
    )


def wide_members(config: RunConfig, facts: DataFacts) -> int:
    """How many of the (resolved) members are wide ones (:mod:`geneae.module.views`).

    The configuration's own number (at most the members); left open, half the members
    (rounded down) of a table that is not single cells (:attr:`DataFacts.single_cells`),
    under preprocess preset ``auto``, with any likelihood but Bernoulli: bulk samples'
    values (TPM, RSEM, FPKM, read counts, logs of them). Beside a count likelihood the
    narrow members model the counts and the wide members read the log expression
    (docs/design/default-model.md, round 75). Elsewhere 0: on single cells' counts the
    default leads its peers without them.
    """
    model = config.model
    members = model.members or 1
    if model.wide_members is not None:
        if model.wide_members > members:
            logger.info(
                "wide members: %d, as many as the members (model.wide_members asked %d)",
                members,
                model.wide_members,
            )
        return min(model.wide_members, members)
    if not (
        not facts.single_cells
        and members > 1
        and config.preprocess.preset == "auto"
        and not config.data.genes_as_samples
        and model.likelihood != "bernoulli"
        and model.family != "gmvae"
    ):
        return 0
    wide = members // 2
    logger.info(
        "members: %d of the %d read up to %s genes, each z-scored, with squared error (every "
        "gene weighs alike); the others the most variable as below, with the likelihood "
        "and the standardised term (a table that is not single cells; model.wide_members "
        "sets it)",
        wide,
        members,
        f"{WIDE_GENES:,}",
    )
    return wide


def _check_kinds(config: RunConfig) -> None:
    """Refuse members of two kinds that could not be trained or put together.

    Narrow members without wide ones (genes past them would be reconstructed by none). Wide
    members beside a count likelihood: their reconstructions are taken back to counts
    (:class:`geneae.module.ensemble.Ensemble`), so the model input must be each sample's
    log1p expression normalised over the narrow members' genes to ``wide_target_sum``, not
    scaled; and one narrow member at least must model the counts.
    """
    model, pp = config.model, config.preprocess
    if model.narrow_genes and not model.wide_members:
        raise ConfigError(
            f"model.narrow_genes ({model.narrow_genes}) leaves the genes past it to the wide "
            "members, but the model has none; set model.wide_members (at least 1), or "
            "narrow_genes: 0."
        )
    if not (model.wide_members and model.models_counts):
        return
    kind = f"model.wide_members ({model.wide_members}) beside likelihood {model.likelihood!r}"
    if model.wide_members >= (model.members or 1):
        raise ConfigError(
            f"{kind} leaves no member to model the counts; set model.wide_members below "
            f"model.members ({model.members}), or 0."
        )
    if not pp.log_normalised or model.wide_target_sum != pp.target_sum:
        raise ConfigError(
            f"{kind} reads each sample's log1p expression, normalised and not scaled, to take "
            "its counts back; set preprocess.scale: false (with normalize and log1p) and "
            "leave model.wide_target_sum unset, or set model.wide_members: 0."
        )
    if model.narrow_genes != (pp.n_top_genes or 0):
        raise ConfigError(
            f"{kind} needs the narrow members to read the genes each sample is normalised "
            f"over (preprocess.n_top_genes: {pp.n_top_genes}), not model.narrow_genes "
            f"({model.narrow_genes}); leave model.narrow_genes unset."
        )


def default_compile(epochs: int, train_rows: int, batch_size: int, n_genes: int) -> bool:
    """Whether a CPU run compiles its training step by default (``train.compile``).

    On when the planned training (``epochs`` of ``train_rows`` in batches of
    ``batch_size``, ``n_genes`` wide) reaches :data:`COMPILE_MIN_ENTRIES` batch entries,
    where the compiled step's saving is about twice its compile.
    """
    steps = epochs * math.ceil(max(train_rows, 1) / batch_size)
    on = steps * batch_size * n_genes >= COMPILE_MIN_ENTRIES
    if on:
        logger.info(
            "train.compile: on (%s steps of %d x %s genes per model: long enough to repay "
            "compiling the step, ~40 s, 7-8 s cached; train.compile sets it)",
            f"{steps:,}",
            batch_size,
            f"{n_genes:,}",
        )
    return on


def _check_genes_as_samples(config: RunConfig) -> None:
    likelihood = config.model.likelihood
    if likelihood != "auto" and LIKELIHOODS[likelihood].models_counts:
        raise ConfigError(
            f"likelihood {likelihood!r} models a sample's raw counts, but with "
            "genes_as_samples each row is a gene's standardised log expression across the "
            "samples; use --likelihood gaussian or mse (or leave it at auto)."
        )
    if config.data.covariate is not None:
        raise ConfigError(
            f"data.covariate {config.data.covariate!r} is a column of the samples, but with "
            "genes_as_samples the rows are genes; remove the covariate."
        )
