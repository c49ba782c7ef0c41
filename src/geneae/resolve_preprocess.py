"""What the data decide about preprocessing: ``resolve_preprocess(cfg, facts) -> cfg``.

Part of :mod:`geneae.resolve` (the one place where the data decide settings): the steps of
each preset, which genes ``preset: auto`` keeps, and the defaults of genes as samples; the
value steps (counts, unlogged expression, logs with a pseudo-count undone) are
:mod:`geneae.resolve_values`'. Each decision is logged on one line, on ``geneae.resolve``'s
logger.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

from pydantic import ValidationError

from geneae.config import PreprocessConfig, describe_validation_error
from geneae.data_defaults import WIDE_GENES
from geneae.errors import ConfigError, DataWarning, InputError
from geneae.facts import DataFacts
from geneae.logscale import NO_UNLOG, may_be_floor
from geneae.matrix_values import UNLOGGED_MAX
from geneae.resolve_values import (
    SMALL_TARGET,
    describe_value_steps,
    say_unlogged,
    unlog_of,
    value_steps,
)

# One logger for every decision the data make (the command line prints it).
logger = logging.getLogger("geneae.resolve")

# The steps of each preprocessing preset (every field but source / unlog / normalize / log1p,
# which follow what the data hold: geneae.resolve_values.value_steps). 0 turns a step off.
PRESET_STEPS: dict[str, dict[str, Any]] = {
    "counts": {
        "min_counts_per_cell": 1.0, "min_genes_per_cell": 0, "min_cells_per_gene": 1,
        "target_sum": SMALL_TARGET, "n_top_genes": 2000, "hvg_flavor": "seurat_v3",
        "scale": False, "clip": 0.0, "minmax": False,
    },
    "lognorm": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": SMALL_TARGET, "n_top_genes": 2000, "hvg_flavor": "seurat",
        "scale": False, "clip": 0.0, "minmax": False,
    },
    "standardize": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": SMALL_TARGET, "n_top_genes": 0, "hvg_flavor": "variance",
        "scale": True, "clip": 10.0, "minmax": False,
    },
    "minmax": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": SMALL_TARGET, "n_top_genes": 0, "hvg_flavor": "mad",
        "scale": False, "clip": 0.0, "minmax": True,
    },
    "none": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": SMALL_TARGET, "n_top_genes": 0, "hvg_flavor": "variance",
        "scale": False, "clip": 0.0, "minmax": False,
    },
}  # fmt: skip

# What ``preset: auto`` becomes on raw counts: the counts preset with a z-scored, clipped
# encoder input (the recommended count model, BENCHMARKS.md); the likelihood still models
# the raw counts.
AUTO_COUNTS = {"scale": True, "clip": 10.0}
# ... and on other values when the model has the standardised term: log values as they are
# (the squared error weighs genes by their variance, as PCA of unscaled log values; the
# standardised term weighs them alike).
AUTO_VALUES = {"scale": False, "clip": 0.0}
# Which genes ``preset: auto`` keeps, of raw counts and of log-normalised or unlogged (then
# logged) values alike, whatever the model: the 2,000 most variable by scanpy's seurat
# flavour (the dispersion of the log-normalised values, within bins of mean expression).
# On the whole-genome count sets the counts preset's seurat_v3 (scvi-tools' choice) left
# the default at 0.479 ARI on worm neurons against 0.626, bladder level (0.627 / 0.616);
# keeping every gene of log values cost 5-8x the time and up to 0.14 ARI
# (docs/design/default-model.md, round 38). Log values with a negative floor (``other``:
# log2(TPM + 0.001), as UCSC Xena's TCGA tables) are ranked with the floor at 0
# (geneae.pp.transforms.floored_at_zero): every gene of a 600 x 20,000 such table took the
# default 5.2x the time of 2,000 (round 46). Tables of no more genes are kept whole; scaled
# values (z-scores) carry no variance to rank and are kept whole too.
AUTO_GENES = {"n_top_genes": PRESET_STEPS["counts"]["n_top_genes"], "hvg_flavor": "seurat"}
# Values only centred (``standardised`` but not z-scores: UCSC Xena's pan-cancer tables, each
# gene's log2 expression minus its mean) have lost the means that the seurat flavour bins by:
# they keep their 2,000 genes of largest variance, the genes unscaled PCA weighs most. Every
# gene of a 600 x 20,000 such table took the default 6.6x the time of 2,000, at the same
# ARI (docs/design/default-model.md, round 68). So do ``other`` values whose minimum is no
# log of a pseudo-count (log ratios; some tumour types of such a table, whose means moved
# off 0): flooring them at 0 for the seurat flavour ranked noise genes (round 69).
VARIANCE_GENES = {"n_top_genes": AUTO_GENES["n_top_genes"], "hvg_flavor": "variance"}


def min_samples_per_gene(n_samples: int) -> int:
    """Genes as samples: a gene must be detected in this many samples to be embedded.

    A tenth of the samples, at least 3 (at most all of them): a gene seen in a handful of
    samples has no co-expression pattern to learn, only noise (GTEx users filter the same
    way, e.g. expressed in at least 10-20% of the samples).
    """
    return int(min(n_samples, max(3, math.ceil(0.1 * n_samples))))


def gene_preprocess(cfg: PreprocessConfig, facts: DataFacts) -> PreprocessConfig:
    """The preprocessing defaults of ``data.genes_as_samples``; given values always stay.

    The steps still run on the samples x genes matrix, then the result is transposed:
    library-size normalisation and log1p are per sample (raw counts normalised and logged,
    TPM / FPKM scaled to a million and logged, log or scaled values kept as they are), and
    standardisation is per gene across the samples, so that each gene enters as the z-score
    of its log expression and the geometry between genes is their correlation
    (co-expression) rather than their expression level. Every sample is kept (the samples
    are the model's features); genes detected in fewer than :func:`min_samples_per_gene`
    samples are dropped; no gene selection by variance unless ``n_top_genes`` is given (the
    gene of interest must be embedded).
    """
    values = cfg.model_dump()
    preset = cfg.preset if cfg.preset != "auto" else "standardize"
    defaults: dict[str, Any] = {
        "preset": preset,
        "min_counts_per_cell": 0.0,
        "min_genes_per_cell": 0,
        "min_cells_per_gene": min_samples_per_gene(facts.n_obs),
        "n_top_genes": 0,
        "hvg_flavor": "variance",
        "scale": preset != "minmax",
    }
    for key, value in defaults.items():
        if values[key] is None or values[key] == "auto":
            values[key] = value
    unlog = unlog_of(cfg, preset, facts)
    logger.info(
        "genes as samples: %s per sample, then each gene standardised across the %d "
        "samples; genes detected in fewer than %d samples dropped",
        describe_value_steps(value_steps(preset, facts, unlog), unlog),
        facts.n_obs,
        values["min_cells_per_gene"],
    )
    try:
        return PreprocessConfig(**values)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "preprocess")) from None


def auto_preset(facts: DataFacts, count_likelihood: bool = False) -> str:
    """The preset ``preset: auto`` becomes for data like ``facts``.

    ``counts`` on single cells' raw counts, or for a model of counts (``count_likelihood``);
    else ``standardize``: bulk samples' read counts (raw counts that are not single cells':
    :attr:`DataFacts.single_cells`) under squared error are read as their log CPM, as bulk
    TPM is (docs/design/default-model.md, round 74).
    """
    cells_or_model = facts.single_cells or count_likelihood
    return "counts" if facts.has_counts and cells_or_model else "standardize"


def _auto_genes(facts: DataFacts) -> dict[str, Any]:
    """Which genes ``preset: auto`` keeps of data like ``facts`` (no steps: every gene)."""
    if facts.has_counts:
        return AUTO_GENES
    if facts.value_type == "standardised":
        return {} if facts.unit_variance else VARIANCE_GENES
    if facts.value_type == "other" and facts.log_scale is None:
        return AUTO_GENES if may_be_floor(facts.min_value) else VARIANCE_GENES
    return AUTO_GENES


def _preset_steps(
    cfg: PreprocessConfig,
    facts: DataFacts | None,
    standardized_term: bool = False,
    count_likelihood: bool = False,
    wide_members: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The preset ``cfg`` becomes and its steps for data like ``facts``.

    The value steps and the user's own values aside; ``facts`` is read only under
    ``preset: auto``.
    """
    if cfg.preset != "auto":
        return cfg.preset, dict(PRESET_STEPS[cfg.preset])
    assert facts is not None, "preset auto: the data's facts decide"
    preset = auto_preset(facts, count_likelihood)
    values = dict(PRESET_STEPS[preset])
    if preset == "counts":
        # Beside wide members each kind z-scores the genes it reads itself
        # (geneae.module.views): the model input stays unscaled.
        values.update(AUTO_VALUES if wide_members else AUTO_COUNTS)
    elif standardized_term:
        values.update(AUTO_VALUES)
    values.update(_auto_genes(facts))
    return preset, values


def model_genes_for(
    cfg: PreprocessConfig, facts: DataFacts | None, wide_members: bool = True
) -> int:
    """The most model genes ``cfg`` keeps of data like ``facts`` (0: every gene).

    Its own ``n_top_genes`` when given, else what :func:`resolve_preprocess` gives, and the
    wide members' genes where the model may have them (``wide_members``: its own setting is
    not 0) and, under ``preset: auto``, the data are not single cells': an upper bound,
    for the memory estimate made before the preprocessing is fitted (geneae.ondisk).
    ``facts`` is read only under ``preset: auto``.
    """
    top = cfg.n_top_genes
    if top is None:
        top = int(_preset_steps(cfg, facts)[1]["n_top_genes"])
    bulk = facts is not None and not facts.single_cells
    return max(top, _wide_genes(cfg, top, wide_members and bulk)) if top else 0


def _wide_genes(cfg: PreprocessConfig, n_top_genes: int, wide_members: bool) -> int:
    """``n_wide_genes`` of ``cfg``: its own, else what ``preset: auto`` keeps.

    :data:`WIDE_GENES` for a model with wide members where fewer genes are the most
    variable, else 0.
    """
    if cfg.n_wide_genes is not None:
        return cfg.n_wide_genes
    wide = cfg.preset == "auto" and wide_members and 0 < n_top_genes < WIDE_GENES
    return WIDE_GENES if wide else 0


def resolve_preprocess(
    cfg: PreprocessConfig,
    facts: DataFacts,
    *,
    standardized_term: bool = False,
    wide_members: bool = False,
    count_likelihood: bool = False,
) -> PreprocessConfig:
    """``cfg`` with the preset and every step left at ``None`` decided from ``facts``.

    Values the user gave always stay. Already resolved configurations come back unchanged.
    ``standardized_term``: the model scores its input with the standardised term, so
    ``preset: auto`` on values other than counts keeps them unscaled. ``wide_members``: the
    model has wide members (:mod:`geneae.module.views`), so ``preset: auto`` keeps
    :data:`~geneae.data_defaults.WIDE_GENES` genes for them (``n_wide_genes``).
    ``count_likelihood``: the model's likelihood reconstructs raw counts, so ``preset:
    auto`` reads bulk samples' counts with the counts preset too (:func:`auto_preset`),
    unscaled where the model has wide members.
    """
    if cfg.is_resolved:
        return cfg.model_copy()
    preset, values = _preset_steps(cfg, facts, standardized_term, count_likelihood, wide_members)
    if cfg.preset == "auto":
        unscaled = preset == "standardize" and standardized_term
        how = " without scaling (the standardised term scales each gene)" if unscaled else ""
        if preset == "counts" and wide_members:
            how = " without scaling (each kind of member z-scores the genes it reads)"
        logger.info("preprocessing preset: %s%s (for %s)", preset, how, _what(facts))
        _warn_negative_expression(facts)
    unlog = unlog_of(cfg, preset, facts)
    # Squared-error members beside wide ones: the wide members keep bulk's scale themselves.
    beside_wide = wide_members and not count_likelihood
    values.update(value_steps(preset, facts, unlog, beside_wide))
    values["unlog"] = str(unlog or NO_UNLOG)
    given = {k: v for k, v in cfg.model_dump().items() if v is not None and v != "auto"}
    values.update(given)
    values["preset"] = preset
    values["n_wide_genes"] = _wide_genes(cfg, values["n_top_genes"], wide_members)
    if unlog is not None and values["source"] == "counts":
        raise ConfigError(
            f"preprocess.unlog ({unlog}) undoes a log of X, but preset {preset!r} starts from "
            "the raw counts; set preprocess.source: X, or drop unlog."
        )
    if values["source"] == "counts" and not facts.has_counts:
        raise InputError(
            f"preset {preset!r} needs raw counts (non-negative integers), but the data hold "
            f"{facts.describe_values()} and no counts layer. Put raw counts in X or "
            "layers['counts'], or use preset 'lognorm' (non-negative values such as TPM) or "
            "'standardize'."
        )
    try:
        steps = PreprocessConfig(**values)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "preprocess")) from None
    logs_them = facts.value_type in ("unlogged expression", "raw counts")
    if unlog is not None or (preset in ("standardize", "minmax") and logs_them):
        say_unlogged(steps, facts, beside_wide)
    elif cfg.preset == "auto" and cfg.unlog is None:
        _say_kept(steps, facts)
    return steps


def _say_kept(steps: PreprocessConfig, facts: DataFacts) -> None:
    """One line on other values modelled as they are, saying what they were taken for.

    DESeq2's vst and edgeR's log-CPM after TMM factors (whose samples total unevenly) read
    so, and scored best kept (docs/design/default-model.md, round 81); values up to the
    thousands with negative ones are warned of instead (:func:`_warn_negative_expression`).
    """
    if facts.value_type != "other" or steps.normalize or steps.log1p:
        return
    if facts.max_value >= UNLOGGED_MAX:
        return
    logger.info(
        "values kept as they are (%s): taken as log-scale expression, as DESeq2's vst or "
        "edgeR's log-CPM give it; values on another scale need their own transformation "
        "first (preprocess.unlog takes a log with a pseudo-count out, e.g. 'log2(x+0.5)')",
        facts.describe_values(),
    )


def _what(facts: DataFacts) -> str:
    if facts.has_counts:
        return f"raw counts in {facts.counts_in}"
    return facts.describe_values()


def _warn_negative_expression(facts: DataFacts) -> None:
    """Warn of expression-like values with negative ones among them.

    Values up to the thousands are not on a log and are no z-scores, so a negative value
    among them is rarely meant (a count table with -1 for missing, a bad subtraction):
    it stops the log the rest would get, and the values are modelled as they are.
    """
    if facts.value_type != "other" or facts.log_scale is not None:
        return
    if facts.min_value >= 0 or facts.max_value < UNLOGGED_MAX:
        return
    warnings.warn(
        f"the data hold values up to {facts.max_value:,.6g}, as expression not on a log, but "
        f"also negative ones (min {facts.min_value:,.6g}): no log is taken and they are "
        "modelled as they are. Expression is never negative: if they stand for missing or "
        "bad values, fix them and run again.",
        DataWarning,
        stacklevel=3,
    )
