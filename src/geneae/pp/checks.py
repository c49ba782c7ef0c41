"""Reading X or a layer, and checking values with messages that say where a problem is."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae.errors import InputError
from geneae.facts import DataFacts
from geneae.io.messages import nonfinite_values
from geneae.logscale import LogScale
from geneae.pp.blocks import Matrix, row_slices


def in_memory(adata: ad.AnnData) -> ad.AnnData:
    """The AnnData itself, loaded into memory if it is backed by a file.

    A backed AnnData stays as the caller had it: anndata's ``to_memory`` closes its file,
    which is opened again.
    """
    if not isinstance(adata, ad.AnnData):
        raise InputError(f"expected an AnnData object, got {type(adata).__name__}.")
    if not adata.isbacked:
        return adata
    was_open = adata.file.is_open
    loaded = adata.to_memory()
    if was_open and not adata.file.is_open:
        adata.file.open()
    return loaded


def check_shape_and_names(adata: ad.AnnData) -> None:
    """Refuse empty data and duplicated gene names (genes are matched by name)."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(f"the data is empty ({adata.n_obs} samples x {adata.n_vars} genes).")
    if not adata.var_names.is_unique:
        dup = adata.var_names[adata.var_names.duplicated()].unique()
        raise InputError(
            f"{len(dup):,} gene names occur more than once (e.g. {preview(list(dup))}); "
            "make them unique first (adata.var_names_make_unique())."
        )


def get_matrix(adata: ad.AnnData, layer: str | None) -> Matrix:
    """X or a layer as a NumPy array or a CSR matrix (views and other formats converted)."""
    x = adata.X if layer is None else adata.layers[layer]
    if x is None:
        raise InputError("the AnnData has no X matrix; put the expression values in X.")
    if sp.issparse(x):
        return sp.csr_matrix(x)
    return np.asarray(x)


@dataclass(frozen=True)
class NotCounts:
    """Why a matrix is not raw counts, for error messages."""

    detail: str
    negative: bool


def not_counts(x: Matrix, where: str, obs: pd.Index, var: pd.Index) -> NotCounts:
    """Describe the values of ``x`` that are not non-negative integers."""

    def bad(v: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return ~np.isfinite(v) | (v < 0) | (v != np.round(v))

    n, example = find_bad(x, bad, obs, var)
    detail = f"{where} has {n:,} negative or non-integer values (e.g. {example})"
    stored = x.data if sp.issparse(x) else np.asarray(x).ravel()
    return NotCounts(detail, negative=bool(np.nanmin(stored, initial=0) < 0))


def needs_counts(what: str, problem: NotCounts | None) -> InputError:
    """The error for a step that needs raw counts, naming the presets to use instead."""
    detail = problem.detail if problem is not None else "no counts found"
    if problem is not None and problem.negative:
        instead = "preset='standardize'"
    else:
        instead = "preset='lognorm' (non-negative values such as TPM) or preset='standardize'"
    return InputError(
        f"{what} needs raw counts (non-negative integers), but the data are not raw counts: "
        f"{detail}. Put raw counts in X or layers['counts'], or use {instead} instead."
    )


def check_values(x: Matrix, check: ValueCheck) -> None:
    """Run ``check`` over ``x`` and raise what it found.

    Checked in blocks of rows, so that the masks stay small whatever the size of ``x``.
    """
    for rows in row_slices(x):
        check.add(x[rows], rows.start)
    check.raise_if_bad()


class ValueCheck:
    """Non-finite values are never usable; negative ones not for normalise / log1p.

    Sees a matrix in consecutive blocks of rows: counts the bad values of every block and
    keeps the first example, so the error after the last block reads exactly as a check of
    the whole matrix would. ``unlogged``: the values were taken out of this log, and a
    negative one was below its floor.
    """

    def __init__(
        self,
        *,
        nonnegative: bool,
        where: str,
        obs: pd.Index,
        var: pd.Index,
        unlogged: LogScale | None = None,
    ) -> None:
        self.nonnegative, self.where, self.obs, self.var = nonnegative, where, obs, var
        self.unlogged = unlogged
        self.n_nonfinite = self.n_negative = self.n_above = 0
        self.nonfinite_example = self.negative_example = self.above_example = ""

    def add(self, block: Matrix, start: int) -> None:
        """Check ``block``, whose first row is row ``start`` of the whole matrix."""
        obs = self.obs[start : start + block.shape[0]]
        if self.unlogged is not None:  # +inf: above the log's range (LogScale.undo)
            n, example = find_bad(block, lambda v: v == np.inf, obs, self.var)
            self.n_above += n
            self.above_example = self.above_example or example
            n, example = find_bad(block, lambda v: np.isnan(v) | (v == -np.inf), obs, self.var)
        else:
            n, example = find_bad(block, lambda v: ~np.isfinite(v), obs, self.var)
        self.n_nonfinite += n
        self.nonfinite_example = self.nonfinite_example or example
        if self.nonnegative:
            with np.errstate(invalid="ignore"):  # NaN compares False: counted above
                n, example = find_bad(block, lambda v: v < 0, obs, self.var)
            self.n_negative += n
            self.negative_example = self.negative_example or example

    @property
    def found(self) -> bool:
        """Whether any block so far had a bad value."""
        return bool(self.n_nonfinite or self.n_negative or self.n_above)

    def raise_if_bad(self) -> None:
        if self.n_nonfinite:
            problem, fix = nonfinite_values(self.n_nonfinite, self.nonfinite_example)
            raise InputError(f"{self.where} has {problem}. {fix}")
        if self.n_above and self.unlogged is not None:
            scale = self.unlogged
            raise InputError(
                f"{self.where} has {self.n_above:,} values above {scale.ceiling:.4g} (or "
                f"infinite; undone: e.g. {self.above_example}), which no {scale} of "
                "expression reaches: these "
                f"values are not on the log that preprocess.unlog undoes ({scale}). Give "
                "values on that log (as the model was trained on), or set preprocess.unlog "
                "to their own log, or 'no'."
            )
        if self.n_negative and self.unlogged is not None:
            scale = self.unlogged
            raise InputError(
                f"{self.where} has {self.n_negative:,} values below {scale.floor:.4g}, the "
                f"floor of {scale} (zero expression) that preprocess.unlog undoes (undone: "
                f"e.g. {self.negative_example}); set preprocess.unlog to the log these "
                "values are on, or 'no'."
            )
        if self.n_negative:
            raise InputError(
                "library-size normalisation and log1p need non-negative values, but "
                f"{self.where} has {self.n_negative:,} negative values (e.g. "
                f"{self.negative_example}); the data look scaled already: use "
                "preset='standardize' (or normalize=False, log1p=False)."
            )


def find_bad(
    x: Matrix, bad: Callable[[np.ndarray], np.ndarray], obs: pd.Index, var: pd.Index
) -> tuple[int, str]:
    """How many stored values are bad, and where the first one is (for messages)."""
    if sp.issparse(x):
        mask = bad(x.data)
        n = int(mask.sum())
        if n == 0:
            return 0, ""
        pos = int(np.argmax(mask))
        row, col = int(np.searchsorted(x.indptr, pos, side="right") - 1), int(x.indices[pos])
        value = x.data[pos]
    else:
        mask = bad(np.asarray(x))
        n = int(mask.sum())
        if n == 0:
            return 0, ""
        row, col = divmod(int(np.argmax(mask.ravel())), x.shape[1])
        value = x[row, col]
    return n, f"{value:g} at sample {str(obs[row])!r}, gene {str(var[col])!r}"


def preview(items: Sequence[Any], n: int = 5) -> str:
    """The first ``n`` items quoted, and how many more there are."""
    shown = ", ".join(repr(str(i)) for i in items[:n])
    return shown + (f", ... ({len(items) - n:,} more)" if len(items) > n else "")


def log_state(value_type: str | None, log_scale: LogScale | None = None) -> str | None:
    """``"logged"``, ``"unlogged"`` or None (not known) of values of ``value_type``.

    ``log_scale``: the log the values are known to be on (log values with a negative
    floor are classed ``other``).
    """
    if value_type in ("raw counts", "unlogged expression"):
        return "unlogged"
    if value_type == "log-normalised" or log_scale is not None:
        return "logged"
    return None


def check_same_log_state(fitted: str | None, facts: DataFacts) -> None:
    """Refuse data on the other side of a log than the data a model's steps were fitted on.

    ``fitted``: :func:`log_state` of the training data. Steps fitted on log values would
    take unlogged values for log values (latent means in the thousands), and the reverse
    would log log values again; both without any other sign.
    """
    now = log_state(facts.value_type, facts.log_scale)
    if fitted is None or now is None or now == fitted:
        return
    if fitted == "logged":
        trained, fix = "log values", "log values as in training (e.g. log2(TPM + 1))"
    else:
        trained = "values not on a log scale"
        fix = "values as in training, not logged (e.g. TPM, FPKM or counts)"
    raise InputError(
        f"the data hold {facts.describe_values()}, but the model was trained on {trained}; "
        f"give it {fix}."
    )
