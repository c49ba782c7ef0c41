"""The :class:`Preprocessor` estimator: fit on training data, re-apply identically to new data.

``fit`` decides which cells and genes to keep and learns per-gene statistics; ``transform``
re-applies exactly those steps to any data that has the kept genes (matched by name, in any
order). Its parameters are a :class:`~geneae.config.PreprocessConfig` (one schema for the
API, YAML and the command line); what ``auto`` and ``None`` become is decided by
:func:`geneae.resolve_preprocess.resolve_preprocess` from the data's facts. Its state is plain JSON,
saved with the model, so loading never executes code (its format: :mod:`geneae.pp.state`).

Steps, each optional, in this order: cell and gene filters, a gene list from a file,
library-size normalisation, log1p, highly-variable-gene selection, then either per-gene
standardisation or min-max scaling. The library size is computed over the kept genes only,
so the fitted transform needs only those genes; the gene selection itself is made
scanpy-style, on all genes normalised together.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import ValidationError

from geneae._atomic import write_text
from geneae.config import PreprocessConfig, describe_validation_error
from geneae.errors import ConfigError, DataWarning, InputError, ModelFileError, NotFittedError
from geneae.facts import DataFacts, describe
from geneae.matrix_values import ValueType
from geneae.pp.blocks import Matrix, densify, map_rows, row_blocks, row_sums
from geneae.pp.checks import (
    check_same_log_state,
    check_shape_and_names,
    check_values,
    in_memory,
    log_state,
    preview,
)
from geneae.pp.gene_matching import gene_columns
from geneae.pp.selection import Kept, names_sha256, select_cells_and_genes
from geneae.pp.state import (
    FORMAT,
    FORMAT_VERSION,
    check_format,
    fitted_state,
    parse_state,
    read_state_text,
    restore_fitted,
    saved_params,
)
from geneae.pp.steps import (
    apply_value_steps,
    before_scaling,
    counts_layer,
    counts_matrix,
    describe_value_steps,
    fit_stats,
    hvg_mask,
    library_genes,
    source_matrix,
    value_check,
    why_not_counts,
)
from geneae.resolve_preprocess import resolve_preprocess


class Preprocessor:
    """Fit preprocessing steps on training data and re-apply them to new data.

    Parameters
    ----------
    preset
        ``counts``: drop empty cells and genes, HVG ``seurat_v3`` top 2000 on counts,
        ``X = log1p(normalize_total(1e4))``, counts kept in ``layers["counts"]``.
        ``lognorm``: normalise + log1p (kept as they are when X is log-normalised already),
        HVG ``seurat`` top 2000. ``standardize``: normalise + log1p for raw counts, and
        for unlogged expression (TPM, FPKM, estimated counts) normalise to a million per
        sample (1e4 for single cells', and under ``auto`` for bulk values beside the
        model's wide members) + log1p; optional HVG by variance, z-score
        clipped at 10. ``minmax``: like standardize but optional HVG by MAD and min-max
        scaling to [0, 1]. ``none``: gene alignment only. ``auto``: decided from the data
        (see :func:`geneae.resolve_preprocess.resolve_preprocess`).
    **steps
        Any field of :class:`~geneae.config.PreprocessConfig` (``n_top_genes``, ``scale``,
        ``clip``, ``min_cells_per_gene``, ``gene_list``, ...); ``None`` takes the preset's
        value for the data at hand. A bad value is a :class:`~geneae.errors.ConfigError`
        naming it.

    Attributes
    ----------
    steps_ : PreprocessConfig
        The resolved steps (no ``auto`` or ``None`` left).
    genes_ : list of str
        The kept genes, in output order.
    stats_ : dict of str to ndarray
        Per-gene ``mean`` / ``std`` (scale) or ``min`` / ``max`` (minmax), fitted order.
    """

    def __init__(self, preset: str = "auto", **steps: Any) -> None:
        if steps.get("gene_list") is not None:
            steps["gene_list"] = str(steps["gene_list"])
        try:
            self.config = PreprocessConfig(preset=preset, **steps)
        except ValidationError as exc:
            raise ConfigError(
                describe_validation_error(exc, "Preprocessor", PreprocessConfig)
            ) from None
        self._reset()

    def _reset(self) -> None:
        self.steps_: PreprocessConfig | None = None
        self.genes_: list[str] = []
        self.stats_: dict[str, np.ndarray] = {}
        self.n_input_genes_: int = 0
        self.input_genes_sha256_: str = ""
        self.value_type_: ValueType | None = None

    @classmethod
    def from_config(cls, cfg: PreprocessConfig) -> Preprocessor:
        """Build from a :class:`~geneae.config.PreprocessConfig` (resolved or not)."""
        return cls(**cfg.model_dump())

    def get_params(self) -> dict[str, Any]:
        """The parameters as given (``None`` / ``auto``: decided by the data at fit)."""
        return self.config.model_dump()

    def __repr__(self) -> str:
        given = {k: v for k, v in self.get_params().items() if v not in (None, "auto")}
        args = ", ".join([repr(self.config.preset), *(f"{k}={v!r}" for k, v in given.items())])
        return f"Preprocessor({args})"

    @property
    def is_fitted(self) -> bool:
        return self.steps_ is not None

    # -- fit / transform ----------------------------------------------------------------
    def fit(self, adata: ad.AnnData, *, facts: DataFacts | None = None) -> Preprocessor:
        """Choose cells and genes and learn per-gene statistics on training data.

        ``facts`` (from :func:`geneae.facts.describe`) saves looking at the data again.
        """
        self._fit(adata, facts)
        return self

    def fit_transform(
        self, adata: ad.AnnData, *, facts: DataFacts | None = None, copy: bool = True
    ) -> ad.AnnData:
        """Fit on ``adata`` and return it preprocessed, without the cells the filters dropped.

        ``copy=False`` lets the result share arrays that come out unchanged with ``adata``
        (see :meth:`transform`).
        """
        adata = in_memory(adata)
        facts = facts or describe(adata)
        cells = self._fit(adata, facts)
        return self._transform(adata, facts, warn_extra=False, cells=cells, copy=copy)

    def transform(
        self, adata: ad.AnnData, *, facts: DataFacts | None = None, copy: bool = True
    ) -> ad.AnnData:
        """Preprocess ``adata`` with the fitted steps; every cell is kept, in order.

        Genes are matched by name: all fitted genes must be present (in any order); others
        are dropped with a :class:`~geneae.errors.DataWarning` unless the data has exactly
        the genes seen in fit.

        ``copy=False`` saves memory on large data: where the kept genes are all of
        ``adata``'s genes in order, ``layers["counts"]`` (float32 counts) and the sparsity
        pattern of ``X`` are ``adata``'s own arrays rather than copies, so changing them in
        place would change ``adata``. The values are the same either way.
        """
        self._require_fitted()
        adata = in_memory(adata)
        return self._transform(adata, facts or describe(adata), warn_extra=True, copy=copy)

    def counts_to_input(self, counts: np.ndarray) -> np.ndarray:
        """Map a cells x kept-genes matrix (fitted gene order) through the value steps.

        Used to put count-space reconstructions into the model's input space (normalise,
        log1p, then scale / min-max as fitted). Returns float32.
        """
        steps = self._require_fitted()
        x = np.array(counts, dtype=np.float64)  # a private copy: the steps work in place
        if x.ndim != 2 or x.shape[1] != len(self.genes_):
            raise InputError(
                f"expected a matrix with {len(self.genes_)} columns (the kept genes), got "
                f"shape {x.shape}."
            )
        return densify(apply_value_steps(x, steps, self.stats_)).astype(np.float32)

    def input_to_values(self, x: np.ndarray) -> np.ndarray:
        """Invert the fitted scaling of a cells x kept-genes matrix in input space.

        Undoes z-scoring (``x * std + mean``) or min-max scaling, then log1p (``expm1``),
        giving values in the units the steps started from (normalised counts when the data
        were normalised, otherwise the user's own units; taken out of their log when
        ``unlog`` names one). Clipped z-scores stay clipped.
        Where log1p was applied the values were non-negative expression, so a reconstruction
        below log1p(0) = 0 means no expression: it is put at 0 before ``expm1``.
        """
        steps = self._require_fitted()
        out = np.array(x, dtype=np.float64)
        if steps.scale:
            out = out * self.stats_["std"] + self.stats_["mean"]
        elif steps.minmax:
            out = out * (self.stats_["max"] - self.stats_["min"]) + self.stats_["min"]
        if steps.log1p:
            out = np.expm1(np.maximum(out, 0.0))
        return out.astype(np.float32)

    def library_sizes(self, adata: ad.AnnData, *, facts: DataFacts | None = None) -> np.ndarray:
        """Each cell's total over the kept genes of the matrix the value steps start from.

        Over the leading ones of :func:`~geneae.pp.steps.library_genes` where wide genes
        follow the most variable.

        The per-cell factor of library-size normalisation (``target_sum / library``):
        multiplying normalised values by ``library / target_sum`` puts them back on the
        scale of the data. Float64, one value per cell of ``adata``. ``facts``: those of
        the whole data when ``adata`` is a chunk of it (None: described from ``adata``).
        """
        steps = self._require_fitted()
        adata = in_memory(adata)
        cols = self._align(adata.var_names, warn_extra=False)
        source = source_matrix(
            adata, steps, counts_matrix(adata, facts or describe(adata)), fitted=True
        )
        cols = cols[: library_genes(steps, len(cols))]
        return np.concatenate(
            [row_sums(block) for _, block in row_blocks(source, None, cols)] or [np.zeros(0)]
        )

    def describe_steps(self) -> str:
        """The fitted value steps in words, e.g. ``normalised to 10000, log1p, z-scored``."""
        return describe_value_steps(self._require_fitted())

    # -- persistence (the state's format: geneae.pp.state) ------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this preprocessor, as JSON-ready values."""
        state: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION}
        state["params"] = self.get_params()
        state["fitted"] = fitted_state(self)
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Preprocessor:
        """Rebuild a preprocessor from :meth:`to_dict` output (validated)."""
        version = check_format(state)
        try:
            pre = cls(**saved_params(state, version))
            fitted = state.get("fitted")
            if fitted is not None:
                restore_fitted(pre, fitted, version)
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ModelFileError(f"saved preprocessor is malformed ({exc!r}).") from None
        return pre

    def to_json(self) -> str:
        """The state as JSON text (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        """Rebuild a preprocessor from :meth:`to_json` output (validated)."""
        return cls.from_dict(parse_state(text))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the state as JSON, atomically (never a pickle)."""
        write_text(path, self.to_json() + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Preprocessor:
        """Read a preprocessor written by :meth:`save`."""
        path = Path(path)
        text = read_state_text(path)
        try:
            return cls.from_json(text)
        except ModelFileError as exc:
            raise ModelFileError(f"{path}: {exc}") from None

    # -- internals: fit -----------------------------------------------------------------
    def _require_fitted(self) -> PreprocessConfig:
        if self.steps_ is None:
            raise NotFittedError(
                "this Preprocessor is not fitted yet: call fit(adata) or fit_transform(adata) "
                "on the training data first, or load a fitted one with Preprocessor.load(path)."
            )
        return self.steps_

    def _fit(self, adata: ad.AnnData, facts: DataFacts | None) -> np.ndarray:
        """Fit; return the boolean mask of the training cells kept."""
        self._reset()
        adata = in_memory(adata)
        check_shape_and_names(adata)
        facts = facts or describe(adata)
        steps = resolve_preprocess(self.config, facts)
        counts = counts_matrix(adata, facts)
        source = source_matrix(adata, steps, counts)
        check_values(source, value_check(steps, adata.obs_names, adata.var_names))
        kept = Kept(adata.n_obs, adata.n_vars)
        base = counts if counts is not None else source  # filters count what was measured
        select_cells_and_genes(
            kept,
            base,
            steps,
            adata.var_names,
            hvg=lambda n: hvg_mask(kept, source, counts, steps, n),
            has_counts=counts is not None,
            why_not_counts=why_not_counts(adata),
        )

        self.steps_ = steps
        self.genes_ = [str(g) for g in adata.var_names[kept.genes]]
        if steps.scale or steps.minmax:  # the only steps with fitted statistics
            self.stats_ = fit_stats(before_scaling(kept.current(source), steps, kept=True), steps)
        self.n_input_genes_ = adata.n_vars
        self.input_genes_sha256_ = names_sha256(adata.var_names)
        self.value_type_ = facts.value_type
        return kept.cells

    # -- internals: transform -----------------------------------------------------------
    def _transform(
        self,
        adata: ad.AnnData,
        facts: DataFacts,
        *,
        warn_extra: bool,
        cells: np.ndarray | None = None,
        copy: bool = True,
    ) -> ad.AnnData:
        """The fitted steps on the ``cells`` (mask; None: all) of ``adata``.

        Runs in blocks of rows (:func:`geneae.pp.blocks.map_rows`): the float64 working
        copies are one block at a time, and each result is allocated once, in float32.
        """
        steps = self._require_fitted()
        check_shape_and_names(adata)
        # X must be on fit's side of a log. Counts are checked as counts, and values a log
        # is undone from by the checks of that log's range (geneae.pp.checks.ValueCheck).
        if steps.source == "X" and steps.log_scale is None:
            check_same_log_state(log_state(self.value_type_), facts)
        cols = self._align(adata.var_names, warn_extra=warn_extra)
        counts = counts_matrix(adata, facts)
        source = source_matrix(adata, steps, counts, fitted=True)
        rows = None if cells is None or cells.all() else cells
        kept = adata if rows is None else adata[rows]  # a view, for obs: no matrix copied
        check = value_check(steps, kept.obs_names, adata.var_names[cols])

        def value_steps(where: slice, block: Matrix) -> Matrix:
            check.add(block, where.start)
            # Bad values end in an error after the last block: skip their arithmetic (and
            # its RuntimeWarnings), the block is discarded.
            return block if check.found else apply_value_steps(block, steps, self.stats_)

        dense = not sp.issparse(source) or steps.scale or steps.minmax
        x = map_rows(source, rows, cols, value_steps, dense=dense, share=not copy)
        check.raise_if_bad()
        out = ad.AnnData(X=x, obs=kept.obs.copy(), var=adata.var.iloc[cols].copy())
        if counts is not None:
            out.layers["counts"] = counts_layer(counts, rows, cols, copy=copy)
        return out

    def _align(self, names: pd.Index, *, warn_extra: bool) -> np.ndarray:
        """Column index of every fitted gene in ``names``; errors on missing genes."""
        cols = gene_columns(pd.Index(self.genes_), names)
        missing = [g for g, c in zip(self.genes_, cols, strict=True) if c < 0]
        if missing:
            raise InputError(
                f"{len(missing):,} of the {len(self.genes_):,} genes this preprocessor was "
                f"fitted on are missing from the data: {preview(missing)}. New data must "
                "contain every gene used in training (check that the gene IDs are of the same "
                "kind, e.g. symbols vs Ensembl IDs)."
            )
        n_extra = len(names) - len(cols)
        if warn_extra and n_extra > 0 and names_sha256(names) != self.input_genes_sha256_:
            extra = names[np.setdiff1d(np.arange(len(names)), cols)]
            warnings.warn(
                f"{n_extra:,} genes not used by the preprocessor were dropped "
                f"(e.g. {preview(list(extra))}).",
                DataWarning,
                stacklevel=4,
            )
        return cols
