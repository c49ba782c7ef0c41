"""What the values go through before the model: a log undone, normalised to which total, log1p.

Part of :mod:`geneae.resolve_preprocess`: the value steps of each preset for data like the
given facts (counts, unlogged expression, logs with a pseudo-count undone), the total each
sample is scaled to, the wide members' own total (``model.wide_target_sum``), and the one
line that says so, on ``geneae.resolve``'s logger.
"""

from __future__ import annotations

import logging
from typing import Any

from geneae.config import PreprocessConfig
from geneae.errors import InputError
from geneae.facts import DataFacts
from geneae.logscale import LN_ONE, LogScale

logger = logging.getLogger("geneae.resolve")


def describe_value_steps(steps: dict[str, Any], unlog: LogScale | None) -> str:
    undone = f"{unlog} undone, " if unlog else ""
    if steps["normalize"] and steps["log1p"]:
        return f"{undone}library-size normalisation and log1p"
    if steps["log1p"]:
        return f"{undone}log1p"
    return f"{unlog} undone" if unlog else "values kept as they are"


#: The presets that log-transform expression, and so undo a log with a pseudo-count first.
UNLOGGING_PRESETS = ("standardize", "minmax", "lognorm")


def unlog_of(cfg: PreprocessConfig, preset: str, facts: DataFacts) -> LogScale | None:
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


def value_steps(
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

#: ... and to the presets' own total (scanpy's) where it is single cells'
#: (:func:`_small_totals`), or where the model's squared-error members read it beside wide
#: members (:func:`wide_target_sum`).
SMALL_TARGET = 1e4


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


def say_unlogged(steps: PreprocessConfig, facts: DataFacts, beside_wide: bool = False) -> None:
    """One line on what unlogged expression goes through (the user's values included).

    Raw counts that a preset of squared error logs (``--likelihood mse``) are said alike.

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
    elif facts.value_type == "raw counts":
        look = f"are {facts.describe_values()}"
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
