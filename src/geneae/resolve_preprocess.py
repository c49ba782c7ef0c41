"""What the data decide about preprocessing: ``resolve_preprocess(cfg, facts) -> cfg``.

Part of :mod:`geneae.resolve` (the one place where the data decide settings): the steps of
each preset, which genes ``preset: auto`` keeps, the value steps (counts, unlogged
expression, logs with a pseudo-count undone), and the defaults of genes as samples. Each
decision is logged on one line, on ``geneae.resolve``'s logger.
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
from geneae.logscale import LN_ONE, NO_UNLOG, LogScale, may_be_floor
from geneae.matrix_values import UNLOGGED_MAX

# One logger for every decision the data make (the command line prints it).
logger = logging.getLogger("geneae.resolve")

# The steps of each preprocessing preset (every field but source / unlog / normalize / log1p,
# which follow what the data hold, see _value_steps). 0 turns a numeric step off.
PRESET_STEPS: dict[str, dict[str, Any]] = {
    "counts": {
        "min_counts_per_cell": 1.0, "min_genes_per_cell": 0, "min_cells_per_gene": 1,
        "target_sum": 1e4, "n_top_genes": 2000, "hvg_flavor": "seurat_v3",
        "scale": False, "clip": 0.0, "minmax": False,
    },
    "lognorm": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": 1e4, "n_top_genes": 2000, "hvg_flavor": "seurat",
        "scale": False, "clip": 0.0, "minmax": False,
    },
    "standardize": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": 1e4, "n_top_genes": 0, "hvg_flavor": "variance",
        "scale": True, "clip": 10.0, "minmax": False,
    },
    "minmax": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": 1e4, "n_top_genes": 0, "hvg_flavor": "mad",
        "scale": False, "clip": 0.0, "minmax": True,
    },
    "none": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": 1e4, "n_top_genes": 0, "hvg_flavor": "variance",
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
    unlog = _unlog(cfg, preset, facts)
    logger.info(
        "genes as samples: %s per sample, then each gene standardised across the %d "
        "samples; genes detected in fewer than %d samples dropped",
        _describe_value_steps(_value_steps(preset, facts, unlog), unlog),
        facts.n_obs,
        values["min_cells_per_gene"],
    )
    try:
        return PreprocessConfig(**values)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "preprocess")) from None


def _describe_value_steps(steps: dict[str, Any], unlog: LogScale | None) -> str:
    undone = f"{unlog} undone, " if unlog else ""
    if steps["normalize"] and steps["log1p"]:
        return f"{undone}library-size normalisation and log1p"
    if steps["log1p"]:
        return f"{undone}log1p"
    return f"{unlog} undone" if unlog else "values kept as they are"


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
    unlog = _unlog(cfg, preset, facts)
    # Squared-error members beside wide ones: the wide members keep bulk's scale themselves.
    values.update(_value_steps(preset, facts, unlog, wide_members and not count_likelihood))
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
    if unlog is not None or (
        preset in ("standardize", "minmax") and facts.value_type == "unlogged expression"
    ):
        _say_unlogged(steps, facts, wide_members and not count_likelihood)
    return steps


#: The presets that log-transform expression, and so undo a log with a pseudo-count first.
UNLOGGING_PRESETS = ("standardize", "minmax", "lognorm")


def _unlog(cfg: PreprocessConfig, preset: str, facts: DataFacts) -> LogScale | None:
    """The log that the values are taken out of before the other steps, or None.

    The user's ``unlog`` when given; else, under the presets that log-transform, the log
    with a pseudo-count whose floor the data's minimum is (:attr:`DataFacts.log_scale`).
    Such a pseudo-count far below the values' scale (UCSC Xena's log2(TPM + 0.001)) spreads
    genes near zero over ten log units of noise; the values then take the unlogged path
    (per million, log1p). On the hardest of three sets of 150 synthetic tumours the default
    scored 0.919-0.925 ARI (three seeds) on the log values as they were and 0.957 on every
    seed with the log undone, as on the same TPM; the other two sets stayed at 1.000
    (docs/design/default-model.md, round 47). Log2 of normalised expression (log2(TPM + 1),
    limma's log-CPM) takes the same path, onto the natural log the default was made on
    (round 60).
    """
    if cfg.unlog is not None:
        return cfg.log_scale
    return facts.log_scale if preset in UNLOGGING_PRESETS else None


def _value_steps(
    preset: str, facts: DataFacts, unlog: LogScale | None = None, beside_wide: bool = False
) -> dict[str, Any]:
    """``source``, ``normalize`` and ``log1p`` of ``preset`` for data like ``facts``.

    Values that ``unlog`` takes out of a log are unlogged expression. ``beside_wide``: the
    model's squared-error members read them beside wide members (:func:`_unlogged_target`).
    """
    kind = "unlogged expression" if unlog is not None else facts.value_type
    if preset == "counts":
        return {"source": "counts", "normalize": True, "log1p": True}
    if preset == "lognorm":
        if facts.has_counts:
            return {"source": "counts", "normalize": True, "log1p": True}
        if kind == "log-normalised":
            logger.info(
                "X is log-normalised already (%s): preset lognorm keeps its values "
                "(no second normalisation or log1p)",
                facts.describe_values(),
            )
            return {"source": "X", "normalize": False, "log1p": False}
        if kind == "unlogged expression":
            return {"source": "X", "normalize": True, "log1p": True}
        raise InputError(
            f"preset 'lognorm' normalises and log-transforms non-negative expression, but X "
            f"holds {facts.describe_values()}; use preset 'standardize' or 'none' for data "
            "that are centred or scaled already."
        )
    if preset in ("standardize", "minmax"):
        if kind == "raw counts":
            target = _unlogged_target(facts, unlog, beside_wide)
            return {"source": "counts", "normalize": True, "target_sum": target, "log1p": True}
        if kind == "unlogged expression":
            target = _unlogged_target(facts, unlog, beside_wide)
            return {"source": "X", "normalize": True, "target_sum": target, "log1p": True}
        return {"source": "X", "normalize": False, "log1p": False}
    return {"source": "X", "normalize": False, "log1p": False}


#: Unlogged expression is scaled to this total per sample before log1p: per million, the
#: scale of TPM and CPM (docs/design/default-model.md, round 45).
UNLOGGED_TARGET = 1e6

#: ... and to this one where it is single cells' (:func:`_small_totals`), or where the
#: model's squared-error members read it beside wide members (:func:`wide_target_sum`).
SMALL_TARGET = float(PRESET_STEPS["counts"]["target_sum"])


def _unlogged_target(facts: DataFacts, unlog: LogScale | None, beside_wide: bool = False) -> float:
    """The total each sample of unlogged expression is scaled to: a million, or 1e4.

    So are raw counts that the standardize and minmax presets log. TPM is left as it is,
    FPKM becomes TPM, and values that still carry each sample's depth (read counts; RSEM
    expected counts, salmon and kallisto estimated counts: counts, but not integers) become
    CPM; log1p of them is bulk RNA-seq's usual log scale (log TPM, edgeR's log-CPM), on
    which a gene below about one per million stays near 0 instead of adding its noise.

    1e4 (:data:`SMALL_TARGET`) for single cells (:func:`_small_totals`) and, on bulk
    values, where the model's squared-error members read them beside wide members
    (``beside_wide``), which take each sample back to a million over their own genes
    (:func:`wide_target_sum`). Both kinds at a million: 0.743 ARI on a pseudo-bulk worm
    cohort in TPM (three seeds), 0.828 on a synthetic study of 120 tumours; the narrow
    members at 1e4 and the wide at a million: 0.777 and 0.828; both at 1e4: 0.800 and 1.000,
    but 0.902 on a tiny cohort that the others keep at 0.985-0.993 (docs/design/
    default-model.md, round 76).
    """
    return SMALL_TARGET if beside_wide or _small_totals(facts, unlog) else UNLOGGED_TARGET


def _small_totals(facts: DataFacts, unlog: LogScale | None) -> bool:
    """Whether unlogged expression like ``facts`` is scaled to 1e4 for every member.

    Single cells' values are, as the same cells' counts are: tables that are mostly zeros
    (:attr:`DataFacts.single_cells`: CPM or TPM of cells, counts after ambient-RNA removal,
    and logs of them undone), on which a million puts one count hundreds of units above
    zero (docs/design/default-model.md, round 70), and ln(x + 1) of expression normalised
    to a small total (:attr:`DataFacts.ln_small_totals`: cells at scanpy's median total):
    on mouse bladder at a million the default scored 0.582 ARI (three seeds) against 0.620
    and 0.634 at 1e4 (round 61).
    """
    return facts.single_cells or (unlog == LN_ONE and facts.ln_small_totals)


def wide_target_sum(steps: PreprocessConfig, facts: DataFacts, count_likelihood: bool) -> float:
    """The total that wide members take each sample's expression back to, over their genes.

    For a model whose input is each sample's log1p expression at ``steps.target_sum``
    (:attr:`PreprocessConfig.log_normalised`). Beside a count likelihood the preprocessing's
    own total, at which their reconstructions become counts again (geneae.module.ensemble);
    on single cells' values 1e4 as theirs; else bulk RNA-seq's scale, a million, whatever
    the squared-error members read (:func:`_unlogged_target`).
    """
    assert steps.target_sum is not None
    if count_likelihood or _small_totals(facts, steps.log_scale):
        return float(steps.target_sum)
    return UNLOGGED_TARGET


def _say_unlogged(steps: PreprocessConfig, facts: DataFacts, beside_wide: bool = False) -> None:
    """One line on what unlogged expression goes through (the user's values included).

    ``beside_wide``: squared-error members read it beside wide members (:func:`wide_target_sum`).
    """
    then = "standardising" if steps.scale else "min-max scaling" if steps.minmax else "training"
    assert steps.target_sum is not None
    total = steps.target_sum
    shown = f"{total:,.0f}" if total >= 1 and total == round(total) else f"{total:g}"
    cells = facts.single_cells and total == SMALL_TARGET
    why = f" (single cells: {facts.floor_fraction:.0%} zeros)" if cells else ""
    wide = wide_target_sum(steps, facts, False) if beside_wide and steps.log_normalised else 0
    if wide and wide != total:
        why = f" (the wide members' genes to {wide:,.0f})"
    scaled = f"each sample scaled to {shown}{why} and " if steps.normalize else ""
    scale = steps.log_scale
    if scale:
        look = f"are {scale}{facts.log_of} (min {facts.min_value:,.4g}, max {facts.max_value:,.4g})"
    else:
        look = f"look unlogged ({facts.describe_values()})"
    undone = f"the log undone (x = {scale.inverse}), " if scale else ""
    logger.info(
        "values %s: %s%s%s before %s",
        look,
        undone,
        scaled,
        "log1p applied" if steps.log1p else "no log1p (as set)",
        then,
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
