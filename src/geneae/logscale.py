"""Log values with a pseudo-count, ``log_b(x + c)``: recognised by their floor, undone, redone.

UCSC Xena serves TCGA / GTEx (TOIL) expression as log2(TPM + 0.001): a gene not measured
sits at the floor log2(0.001) = -9.966, and genes near that floor spread over ten log
units of noise. :func:`from_floor` names such a scale from the smallest value of a table;
the preprocessing step ``preprocess.unlog`` (:mod:`geneae.resolve_preprocess`) undoes it
(:meth:`LogScale.undo`) so the values take the unlogged path (per million, log1p), and
reconstructions are put back on it (:meth:`LogScale.redo`). Two logs are told by samples'
totals instead of a floor: log2(x + 1) of counts that carry each sample's depth
(:func:`carries_depth`), log2 of normalised expression (:func:`log2_of_normalised`) and
natural logs of expression normalised to a small total (:func:`ln_of_small_totals`).
No torch, no AnnData here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = [
    "FLOOR_TOLERANCE",
    "LN_ONE",
    "LOG2_COUNTS",
    "MAX_EXPRESSION",
    "NO_UNLOG",
    "SMALL_TOTAL",
    "LogScale",
    "carries_depth",
    "from_floor",
    "may_be_floor",
    "ln_of_small_totals",
    "log2_of_normalised",
    "may_be_ln_of_small_totals",
    "may_be_log2",
    "may_carry_depth",
    "normalised_scale",
    "parse",
    "row_power_sums",
    "totals_above_floor",
]

#: The resolved ``preprocess.unlog`` of values that are not undone.
NO_UNLOG = "no"
#: Tables write log values to about 4 decimals: a value this close to the floor is the floor.
FLOOR_TOLERANCE = 1e-4
#: More than any expression measure of one gene in one sample reaches (a whole sequencing
#: run holds ~1e8 reads; TPM and CPM stop at 1e6): a log value above its log is not one.
MAX_EXPRESSION = 1e9
_BASES = {"log2": 2.0, "ln": float(np.e), "log10": 10.0}
#: Bases whose floors are recognised: log10's floors are whole numbers, too common a
#: minimum (e.g. -1, -2 of scaled data) to read as a pseudo-count.
_RECOGNISED = ("log2", "ln")
_PSEUDO_COUNTS = tuple(10.0**-k for k in range(1, 7))  # 0.1 ... 1e-6
#: Log values above this may be log2 of counts (4,096 and more reads of a gene); below it
#: they are log1p of normalised single-cell values, whose depth was taken out.
DEPTH_MIN_MAX = 12.0
#: Samples whose 2^v - 1 totals have a median above this are not TPM / CPM (which total a
#: million), and whose totals vary by more than this coefficient of variation still carry
#: each sample's sequencing depth (quantile-normalised arrays total alike).
DEPTH_TOTAL = 2e6
DEPTH_CV = 0.1
_PATTERN = re.compile(r"^\s*(log2|ln|log10)\(\s*x\s*\+\s*([0-9.]+(?:e-?[0-9]+)?)\s*\)\s*$")


@dataclass(frozen=True)
class LogScale:
    """``log_base(x + pseudo)`` of non-negative expression ``x``.

    Parameters
    ----------
    base
        ``log2``, ``ln`` or ``log10``.
    pseudo
        The pseudo-count added before the log (> 0).
    """

    base: str
    pseudo: float

    def __str__(self) -> str:
        return f"{self.base}(x+{self.pseudo:g})"

    @property
    def floor(self) -> float:
        """The log of zero expression, ``log_base(pseudo)``."""
        return float(np.log(self.pseudo) / np.log(_BASES[self.base]))

    @property
    def inverse(self) -> str:
        """The expression of a log value ``v`` in words, e.g. ``2^v - 0.001``."""
        power = {"log2": "2^v", "ln": "e^v", "log10": "10^v"}[self.base]
        return f"{power} - {self.pseudo:g}"

    @property
    def ceiling(self) -> float:
        """The log of :data:`MAX_EXPRESSION`: no log value of expression is above it."""
        return float(np.log(MAX_EXPRESSION + self.pseudo) / np.log(_BASES[self.base]))

    def undo(self, values: np.ndarray) -> np.ndarray:
        """``base ** values - pseudo`` in float64; values at the floor become exactly 0.

        Values outside the log's range come out where the caller's value check names them:
        below the floor (not the log of any expression) negative, above :attr:`ceiling`
        (values that are not on this log, such as TPM given to a model of its log) +inf.
        """
        v = np.asarray(values, dtype=np.float64)
        with np.errstate(over="ignore"):
            out = np.power(_BASES[self.base], v) - self.pseudo
        out[np.abs(v - self.floor) <= FLOOR_TOLERANCE] = 0.0
        out[v > self.ceiling] = np.inf
        return out

    def redo(self, values: np.ndarray) -> np.ndarray:
        """``log_base(max(values, 0) + pseudo)``: expression back on this scale."""
        v = np.maximum(np.asarray(values, dtype=np.float64), 0.0)
        return np.log(v + self.pseudo) / np.log(_BASES[self.base])


#: log2(x + 1) of counts that carry each sample's depth (UCSC Xena's TOIL expected counts).
LOG2_COUNTS = LogScale("log2", 1.0)


#: Values a block of rows of :func:`row_power_sums` holds at most: its float64 temporaries
#: stay a few MB at any size.
POWER_BLOCK = 1 << 20


def row_power_sums(x: np.ndarray | sp.spmatrix, base: float) -> np.ndarray:
    """Each row's total of ``base^v - 1`` over its values ``v`` (absent sparse entries: 0).

    Overflowing values give ``inf``. Read in blocks of rows (:data:`POWER_BLOCK` values).
    """
    log_base = float(np.log(base))
    if sp.issparse(x):
        x = sp.csr_matrix(x)
    n_rows, n_cols = x.shape
    step = max(1, POWER_BLOCK // max(n_cols, 1))
    sums = np.empty(n_rows)
    for start in range(0, n_rows, step):
        block = x[start : start + step]
        values = block.data if sp.issparse(block) else np.asarray(block)
        with np.errstate(over="ignore"):
            powers = np.expm1(np.asarray(values, dtype=np.float64) * log_base)
        if sp.issparse(block):
            powers = sp.csr_matrix((powers, block.indices, block.indptr), shape=block.shape)
        sums[start : start + step] = np.asarray(powers.sum(axis=1)).ravel()
    return sums


def totals_above_floor(
    power_sums: np.ndarray, base: float, floor: float, n_genes: int
) -> np.ndarray:
    """Each row's total of ``base^v - base^floor`` from its :func:`row_power_sums`.

    The expression each sample holds if the values are ``log_base(x + base^floor)``; the
    floor is the whole table's smallest value, so rows of blocks read one after the other
    (data on disk) are put on it once every block is seen.
    """
    return power_sums + n_genes * (1.0 - base**floor)


#: Log values are in this range (log2 of a billion is 30; log2(TPM + 0.001) floors at -10):
#: beyond it, totals of their powers are not looked at.
LOG_RANGE = 30.0
#: ... and log2 of normalised expression reaches above this (log2 of 1,024 per million);
#: scanpy's log1p of 1e4 per cell stays below 9.3 and is not looked at (no cost on it).
LOG2_MIN_MAX = 10.0


def may_be_log2(min_value: float, max_value: float) -> bool:
    """Whether values of this range may be log2 of normalised expression (see below)."""
    return -LOG_RANGE < min_value and LOG2_MIN_MAX < max_value < LOG_RANGE


#: TPM and CPM total a million in every sample: log values whose samples' totals of
#: ``2^v - 2^floor`` vary by less than this coefficient of variation (the rounding of a
#: table's decimals) are log2 of such values, where the totals of ``e^v - e^floor`` vary by
#: at least :data:`NOT_LN_CV` (so the values are no natural log of them; quantile-normalised
#: arrays total alike in every base and are left as they are). Looser, highly variable
#: subsets of natural logs of TPM passed (0.028-0.048 on three synthetic cohorts), and so
#: would DESeq2's vst, whose size factors leave its totals a few per cent apart.
NORMALISED_CV = 0.01
NOT_LN_CV = 0.1


def _cv(totals: np.ndarray) -> float:
    mean = float(totals.mean())
    if not np.isfinite(mean) or mean <= 0:
        return float("inf")
    return float(totals.std()) / mean


def log2_of_normalised(log2_totals: np.ndarray, ln_totals: np.ndarray) -> bool:
    """Whether log values are log2 of expression normalised per sample.

    Parameters
    ----------
    log2_totals, ln_totals
        Each sample's total of ``2^v - 2^floor`` and of ``e^v - e^floor``
        (:func:`totals_above_floor`).

    Their log2 totals are alike (TPM, CPM: a million each) and their natural-log totals
    are not. Log2 is the scale of bulk tables (log2(TPM + 1), limma's log-CPM) and of many
    plate-based single-cell tables; the default was made on natural logs (scanpy's log1p),
    and the same values in log2 units trained a weaker model (docs/design/default-model.md,
    round 60). Tables of a subset of the genes total unevenly and are left as they are.
    """
    if log2_totals.size < 3:
        return False
    return _cv(log2_totals) < NORMALISED_CV and _cv(ln_totals) >= NOT_LN_CV


#: A smallest value this close above 0 is log2(x + 1)'s floor: a table with no zero (every
#: gene seen in every sample) has its minimum a little above it.
ONE_FLOOR = 0.05


def normalised_scale(floor: float) -> LogScale:
    """log2(x + 2^floor): log2 of normalised expression whose smallest value is ``floor``.

    The smallest value is taken as no expression (the pseudo-count's log); near 0 it is
    log2(x + 1)'s (:data:`ONE_FLOOR`).
    """
    if 0 <= floor < ONE_FLOOR:
        return LogScale("log2", 1.0)
    return LogScale("log2", float(f"{2.0**floor:.6g}"))


#: Natural logs of expression normalised to fewer than this per sample are undone: scanpy's
#: ``normalize_total`` at its default total (the median of the cells' totals: 35 UMIs of
#: 2,000 genes in worm neurons, 315 in mouse bladder) then log1p squashes every gene toward
#: 0, and the default, made on log1p of 1e4 per cell, scored 0.11 and 0.09 ARI below the
#: same cells at 1e4 (docs/design/default-model.md, round 61). Half of scanpy's 1e4:
#: tables at 1e4 and at a million (log1p of CPM: within the seeds' spread of 1e4) are kept.
SMALL_TOTAL = 5e3
#: ln(x + 1): the natural log of those tables.
LN_ONE = LogScale("ln", 1.0)


def may_be_ln_of_small_totals(min_value: float, max_value: float) -> bool:
    """Whether log values of this range may be ln(x + 1) of a total below :data:`SMALL_TOTAL`.

    log1p's floor, 0, is there (a gene not seen in a cell), and no value is above the log
    of the total (no gene holds more than its sample's total).
    """
    return min_value == 0 and 0 < max_value < float(np.log1p(SMALL_TOTAL))


def ln_of_small_totals(ln_totals: np.ndarray, log2_totals: np.ndarray) -> bool:
    """Whether log values are ln(x + 1) of expression normalised to a small total per sample.

    Parameters
    ----------
    ln_totals, log2_totals
        Each sample's total of ``e^v - 1`` and of ``2^v - 1`` (:func:`row_power_sums`).

    Their natural-log totals are alike (:data:`NORMALISED_CV`) and more alike than their
    log2 totals (scran's log2 counts per size factor total alike in log2), and below
    :data:`SMALL_TOTAL`. Highly variable subsets of such tables total unevenly and are
    left as they are.
    """
    if ln_totals.size < 3:
        return False
    spread = _cv(ln_totals)
    return (
        spread < NORMALISED_CV
        and spread < _cv(log2_totals)
        and float(np.median(ln_totals)) < SMALL_TOTAL
    )


def may_carry_depth(min_value: float, max_value: float) -> bool:
    """Whether log values of this range may be log2(x + 1) of counts (see :func:`carries_depth`).

    The floor of log2(x + 1), 0, must be there (a gene not seen in a sample): DESeq2's vst
    and rlog, log2-like values made for clustering as they are, never reach it; and the
    maximum above :data:`DEPTH_MIN_MAX`.
    """
    return min_value == 0 and max_value > DEPTH_MIN_MAX


def carries_depth(totals: np.ndarray) -> bool:
    """Whether log values that :func:`may_carry_depth` carry each sample's depth.

    ``totals``: each sample's total of ``2^v - 1`` (:func:`row_power_sums`). Totals of
    tens of millions that vary from sample to sample are reads (RSEM's expected counts,
    featureCounts'), not TPM or CPM.
    """
    if totals.size < 3:
        return False
    mean = float(totals.mean())
    return float(np.median(totals)) > DEPTH_TOTAL and float(totals.std()) > DEPTH_CV * mean


def parse(text: str) -> LogScale | None:
    """``"log2(x+0.001)"`` as a :class:`LogScale`; ``"no"`` as None.

    Raises
    ------
    ValueError
        For anything else, naming the accepted forms.
    """
    if text.strip().lower() == NO_UNLOG:
        return None
    match = _PATTERN.match(text)
    pseudo = float(match.group(2)) if match else 0.0
    if match is None or not pseudo > 0:
        raise ValueError(
            f"unlog {text!r} is not a log with a pseudo-count: write it as 'log2(x+0.001)', "
            "'ln(x+1e-05)' or 'log10(x+0.01)' (the pseudo-count > 0), or 'no'"
        )
    return LogScale(match.group(1), pseudo)


def may_be_floor(value: float) -> bool:
    """Whether ``value`` can be the log of a pseudo-count: log2, ln or log10 of 0.1 to 1e-6.

    Log values of expression with such a floor rank their genes floored at 0; values whose
    minimum is none of them (log ratios, centred log values) have no floor to take.
    """
    return _scale_of_floor(value, tuple(_BASES)) is not None


def from_floor(value: float) -> LogScale | None:
    """The scale whose floor ``value`` is (``-9.966`` -> log2(x+0.001)), else None.

    Log2 and natural logs of the pseudo-counts 0.1 to 1e-6, within
    :data:`FLOOR_TOLERANCE`.
    """
    return _scale_of_floor(value, _RECOGNISED)


def _scale_of_floor(value: float, bases: tuple[str, ...]) -> LogScale | None:
    """The first scale of ``bases`` and :data:`_PSEUDO_COUNTS` whose floor ``value`` is."""
    for base in bases:
        for pseudo in _PSEUDO_COUNTS:
            scale = LogScale(base, pseudo)
            if abs(value - scale.floor) <= FLOOR_TOLERANCE:
                return scale
    return None
