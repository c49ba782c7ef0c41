"""Facts about a dataset, computed once and passed down (no torch here).

:func:`describe` looks at an AnnData once — what kind of values ``X`` holds, where raw counts
are, how it is stored — and :class:`DataFacts` carries the answer to every step that needs
it: :func:`geneae.resolve.resolve` (which settings the data call for), the preprocessor and
the model. Nothing downstream re-derives these from the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from geneae.logscale import (
    LN_ONE,
    LOG2_COUNTS,
    LOG_RANGE,
    SMALL_TOTAL,
    LogScale,
    carries_depth,
    from_floor,
    ln_of_small_totals,
    log2_of_normalised,
    may_be_ln_of_small_totals,
    may_be_log2,
    may_carry_depth,
    normalised_scale,
    row_power_sums,
    totals_above_floor,
)
from geneae.matrix_values import (
    FRACTIONS_TOTAL,
    UNLOGGED_MAX,
    ValueType,
    add_moments,
    classify,
    gene_variances,
    is_count_matrix,
    is_unit_variance,
    largest_total,
    new_moments,
    value_range,
    value_type,
)

CountsIn = Literal["layers['counts']", "X"]

# Tables with more zeros than this share of their entries are single cells': droplet cells
# hold 85-99 % zeros even on their 2,000 most variable genes, bulk samples 1-10 % (up to
# about half where a whole annotation's unexpressed genes are kept).
CELLS_ZEROS = 0.75
# Raw counts of fewer than this per sample are single cells' whatever their zeros: droplet
# cells hold 1e3-5e4 UMIs, bulk libraries 1e6-1e8 reads (a few hundred thousand at the
# least); cells of a small panel of well-expressed genes may hold few zeros.
CELLS_DEPTH = 1e5


@dataclass(frozen=True)
class DataFacts:
    """What one look at a dataset found.

    Attributes
    ----------
    n_obs, n_vars
        Samples and genes.
    value_type
        The kind of values in ``X`` (see :func:`geneae.matrix_values.value_type`).
    counts_in
        Where raw counts are: ``layers['counts']`` when that layer holds counts, else
        ``X`` when X does, else None.
    sparse
        Whether ``X`` is stored sparse.
    max_value
        The largest finite value of ``X`` (for messages, e.g. why data count as unlogged).
    min_value
        The smallest finite value of ``X`` (for messages: why data are not counts).
    depth_in_log
        Log-normalised values that are log2(x + 1) of values still carrying each sample's
        sequencing depth (:func:`geneae.logscale.carries_depth`).
    log2_normalised
        Log values that are log2 of expression normalised per sample, with the minimum as
        the log of the pseudo-count (:func:`geneae.logscale.log2_of_normalised`).
    ln_small_totals
        Log-normalised values that are ln(x + 1) of expression normalised to fewer than
        :data:`~geneae.logscale.SMALL_TOTAL` per sample
        (:func:`geneae.logscale.ln_of_small_totals`).
    unit_variance
        Standardised values whose genes all spread alike (:func:`is_unit_variance`:
        z-scores), not only centred ones.
    floor_fraction
        The share of ``X``'s entries at its minimum (its zeros, stored or not; of values
        logged with a pseudo-count, the log's floor, zeros once undone): single cells'
        tables are mostly zeros, bulk samples' are not (:attr:`single_cells`).
    shallow_fraction
        The share of samples whose raw counts total fewer than :data:`CELLS_DEPTH` (0
        without raw counts): single cells' depth, not bulk samples' (:attr:`single_cells`).
    """

    n_obs: int
    n_vars: int
    value_type: ValueType
    counts_in: CountsIn | None
    sparse: bool
    max_value: float
    min_value: float = 0.0
    depth_in_log: bool = False
    log2_normalised: bool = False
    ln_small_totals: bool = False
    unit_variance: bool = False
    floor_fraction: float = 0.0
    shallow_fraction: float = 0.0

    @property
    def has_counts(self) -> bool:
        return self.counts_in is not None

    @property
    def single_cells(self) -> bool:
        """Whether the values are single cells', not bulk samples'.

        Mostly zeros (:data:`CELLS_ZEROS`), or raw counts of most samples below bulk
        samples' depth (:data:`CELLS_DEPTH`).
        """
        shallow = self.has_counts and self.shallow_fraction > 0.5
        return self.floor_fraction > CELLS_ZEROS or shallow

    @property
    def log_scale(self) -> LogScale | None:
        """The log that the values are on, where taking them out of it is called for.

        log2(x + 1) of values that carry each sample's depth (:attr:`depth_in_log`); the
        log with a pseudo-count whose floor is the minimum (e.g. log2(x+0.001)) of values
        classed ``other`` (negative, and not z-scores); or log2(x + 2^min) of normalised
        expression (:attr:`log2_normalised`: log2(TPM + 1), limma's log-CPM); or ln(x + 1)
        of expression normalised to a small total (:attr:`ln_small_totals`).
        """
        if self.depth_in_log and self.value_type == "log-normalised":
            return LOG2_COUNTS
        if self.ln_small_totals and self.value_type == "log-normalised":
            return LN_ONE
        if self.value_type not in ("log-normalised", "other"):
            return None
        floor = from_floor(self.min_value) if self.min_value < 0 else None
        if floor is None and self.log2_normalised:
            return normalised_scale(self.min_value)
        return floor

    def describe_values(self) -> str:
        """One noun phrase for messages, e.g. ``"unlogged expression (max 15,302)"``.

        With negative values the minimum is named too (``"other values (min -1, max
        10)"``): a single negative entry is why a count table is not taken as counts.
        """
        if self.min_value < 0:
            scale = self.log_scale
            named = (
                f" = {scale.base}({scale.pseudo:g}): log values with a pseudo-count"
                if scale
                else ""
            )
            return f"{self._noun} (min {self.min_value:,.4g}{named}, max {self.max_value:,.4g})"
        return f"{self._noun} (max {self.max_value:,.4g}{self._log_named()}{self._shares()})"

    def _shares(self) -> str:
        """Why unlogged expression this small is unlogged, for messages, or ``""``."""
        if self.value_type == "unlogged expression" and self.max_value < UNLOGGED_MAX:
            return f"; every sample totals under {FRACTIONS_TOTAL:g}: shares of its expression"
        return ""

    @property
    def _noun(self) -> str:
        """The value type as a noun (``"log-normalised values"``) for "the data hold ..."."""
        if self.value_type in ("raw counts", "unlogged expression"):
            return self.value_type
        if self.value_type == "standardised" and not self.unit_variance:
            return "centred values"
        return f"{self.value_type} values"

    @property
    def log_of(self) -> str:
        """What the values are a log of, for messages (``" of counts with ..."``), or ``""``."""
        if self.depth_in_log:
            return " of counts with each sample's depth"
        if self.ln_small_totals:
            return f" of expression normalised to under {SMALL_TOTAL:,.0f} per sample"
        return " of expression normalised per sample" if self.log2_normalised else ""

    def _log_named(self) -> str:
        """``", log2(x+1) of ..."`` for a log told by the samples' totals, else ``""``."""
        scale = self.log_scale
        return f", {scale}{self.log_of}" if scale and self.log_of else ""


def describe(adata: object, layer: str | None = None) -> DataFacts:
    """Look at ``adata`` (or its ``layer`` as X) once and return its :class:`DataFacts`."""
    x = adata.X if layer is None else adata.layers[layer]  # type: ignore[attr-defined]
    layers = adata.layers if layer is None else {}  # type: ignore[attr-defined]
    kind = value_type(x)
    counts_in: CountsIn | None = None
    if "counts" in layers and is_count_matrix(layers["counts"]):
        counts_in = "layers['counts']"
    elif kind == "raw counts":
        counts_in = "X"
    n_obs, n_vars = x.shape
    lo, hi, at_lo = value_range(x)
    if lo > hi:  # no finite value
        lo = hi = 0.0
    look = _LogLook(kind, lo, hi, int(n_vars))
    sums = {base: row_power_sums(x, base) for base in look.bases}
    counts = None if counts_in is None else x if counts_in == "X" else layers["counts"]
    return DataFacts(
        shallow_fraction=0.0 if counts is None else _shallow_rows(counts) / max(int(n_obs), 1),
        floor_fraction=at_lo / max(int(n_obs) * int(n_vars), 1),
        n_obs=int(n_obs),
        n_vars=int(n_vars),
        value_type=kind,
        counts_in=counts_in,
        sparse=bool(sp.issparse(x)),
        max_value=hi,
        min_value=lo,
        unit_variance=kind == "standardised" and is_unit_variance(gene_variances(x)),
        **look.facts(sums),
    )


def _shallow_rows(counts: np.ndarray | sp.spmatrix) -> int:
    """How many rows of ``counts`` total fewer than :data:`CELLS_DEPTH`."""
    totals = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    return int(np.sum(totals < CELLS_DEPTH))


#: The bases whose totals tell log2 of normalised expression from natural logs of it.
_LOG2, _LN = 2.0, float(np.e)


@dataclass(frozen=True)
class _LogLook:
    """Which logs values of this kind and range may be on, from their rows' power sums.

    One rule for :func:`describe` and :class:`FactsAccumulator`: both give the sums of
    ``base^v - 1`` of every row (:func:`geneae.logscale.row_power_sums`) for ``bases``.
    """

    kind: ValueType
    lo: float
    hi: float
    n_vars: int

    @property
    def depth(self) -> bool:
        return self.kind == "log-normalised" and may_carry_depth(self.lo, self.hi)

    @property
    def log2(self) -> bool:
        return self.kind in ("log-normalised", "other") and may_be_log2(self.lo, self.hi)

    @property
    def ln_small(self) -> bool:
        return self.kind == "log-normalised" and may_be_ln_of_small_totals(self.lo, self.hi)

    @property
    def bases(self) -> tuple[float, ...]:
        if self.log2 or self.ln_small:
            return (_LOG2, _LN)
        return (_LOG2,) if self.depth else ()

    def facts(self, sums: dict[float, np.ndarray]) -> dict[str, bool]:
        """``depth_in_log``, ``log2_normalised`` and ``ln_small_totals`` of :class:`DataFacts`."""
        depth = self.depth and carries_depth(sums[_LOG2])  # its floor is 0
        normalised = (
            self.log2
            and not depth
            and log2_of_normalised(
                *(totals_above_floor(sums[b], b, self.lo, self.n_vars) for b in (_LOG2, _LN))
            )
        )
        # log1p's floor is 0: the power sums are the totals of the undone values.
        small = self.ln_small and ln_of_small_totals(sums[_LN], sums[_LOG2])
        return {"depth_in_log": depth, "log2_normalised": normalised, "ln_small_totals": small}


class FactsAccumulator:
    """:func:`describe` of a matrix seen in consecutive blocks of rows (data on disk).

    Gives the same :class:`DataFacts` as one look at the whole matrix, with memory for
    one block plus a few numbers per gene.
    """

    def __init__(self, n_vars: int, *, has_counts_layer: bool) -> None:
        self.n_obs = 0
        self.n_vars = n_vars
        self.x_counts = True
        self.layer_counts = has_counts_layer
        self.lo, self.hi = np.inf, -np.inf
        self.col_sum = np.zeros(n_vars)
        self.moments = new_moments(n_vars)
        self.col_n = np.zeros(n_vars)
        # Each row's power sums while the values may still be logs (see _LogLook).
        self.power_sums: dict[float, list[np.ndarray]] = {_LOG2: [], _LN: []}
        self.sparse = False
        self.top_total = 0.0  # the largest sample total so far
        self.at_lo = 0  # entries at the minimum so far
        # Rows below single cells' depth, of X and of the counts layer (which holds the
        # counts is known at the end).
        self.shallow_x = 0
        self.shallow_layer = 0

    def add(self, x: np.ndarray | sp.spmatrix, counts: np.ndarray | sp.spmatrix | None) -> None:
        """One block of rows of X and, when the data have that layer, of the counts layer."""
        self.n_obs += x.shape[0]
        self.sparse = bool(sp.issparse(x))
        self.x_counts = self.x_counts and is_count_matrix(x)
        if self.layer_counts and counts is not None:
            self.layer_counts = is_count_matrix(counts)
            self.shallow_layer += _shallow_rows(counts)
        self.shallow_x += _shallow_rows(x)
        lo, hi, at_lo = value_range(x)
        if lo <= self.lo:
            self.at_lo = at_lo + (self.at_lo if lo == self.lo else 0)
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        dense = x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)
        self.col_sum += np.nansum(dense, axis=0)
        if dense.shape[0]:
            self.top_total = max(self.top_total, largest_total(dense))
        add_moments(self.moments, dense)
        self.col_n += np.sum(~np.isnan(dense), axis=0)
        if -LOG_RANGE < self.lo and self.hi < LOG_RANGE:  # still possibly log values
            for base, sums in self.power_sums.items():
                sums.append(row_power_sums(dense, base))

    def facts(self) -> DataFacts:
        """The facts of every block added so far."""
        finite = self.lo <= self.hi
        kind = classify(
            self.x_counts,
            self.lo if finite else None,
            self.hi if finite else None,
            lambda: np.divide(
                self.col_sum, self.col_n, out=np.full(self.n_vars, np.nan), where=self.col_n > 0
            ),
            lambda: self.top_total,
        )
        counts_in: CountsIn | None = None
        shallow = 0
        if self.layer_counts:
            counts_in, shallow = "layers['counts']", self.shallow_layer
        elif kind == "raw counts":
            counts_in, shallow = "X", self.shallow_x
        look = _LogLook(kind, float(self.lo), float(self.hi), self.n_vars)
        sums = {base: np.concatenate(self.power_sums[base]) for base in look.bases}
        return DataFacts(
            n_obs=self.n_obs,
            n_vars=self.n_vars,
            value_type=kind,
            counts_in=counts_in,
            sparse=self.sparse,
            max_value=float(self.hi) if finite else 0.0,
            min_value=float(self.lo) if finite else 0.0,
            unit_variance=kind == "standardised" and is_unit_variance(self.moments.var()),
            floor_fraction=self.at_lo / max(self.n_obs * self.n_vars, 1),
            shallow_fraction=shallow / max(self.n_obs, 1),
            **look.facts(sums),
        )
