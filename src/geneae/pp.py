"""Preprocessing: fit on training data, re-apply identically to new data.

:class:`Preprocessor` is a scikit-learn style estimator over AnnData. ``fit`` decides which
cells and genes to keep and learns per-gene statistics; ``transform`` re-applies exactly
those steps to any data that has the kept genes (matched by name, in any order). Its state
is plain JSON, saved with the model, so loading never executes code.

Steps, each optional, in this order: cell and gene filters, a gene list from a file,
library-size normalisation, log1p, highly-variable-gene selection, then either per-gene
standardisation or min-max scaling. Named presets pick sensible combinations.

The library size is computed over the kept genes only. That makes the fitted transform a
function of the kept genes alone, so new data needs only those genes; the gene selection
itself is made scanpy-style, on all genes normalised together.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae import _preprocess as P
from geneae._atomic import write_text
from geneae._matrix import ValueType, is_count_matrix, value_type
from geneae._preprocess import Matrix, read_gene_list
from geneae.errors import ConfigError, DataWarning, InputError, ModelFileError, NotFittedError

if TYPE_CHECKING:
    from geneae.config import PreprocessConfig

__all__ = ["PRESETS", "Preprocessor", "Steps", "pseudobulk", "read_gene_list", "transpose"]

PresetName = Literal["auto", "counts", "lognorm", "standardize", "minmax", "none"]
HVGFlavor = Literal["seurat_v3", "seurat", "cell_ranger", "variance", "mad"]
HVG_FLAVORS: tuple[str, ...] = ("seurat_v3", "seurat", "cell_ranger", "variance", "mad")
FORMAT = "geneae.Preprocessor"
FORMAT_VERSION = 1

# The preset's value of every step. ``None`` for normalize / log1p means "decided by the
# data at fit time": on for raw counts, off otherwise. 0 turns a numeric step off.
PRESETS: dict[str, dict[str, Any]] = {
    "counts": {
        "min_counts_per_cell": 1, "min_genes_per_cell": 0, "min_cells_per_gene": 1,
        "normalize": True, "target_sum": 1e4, "log1p": True,
        "n_top_genes": 2000, "hvg_flavor": "seurat_v3",
        "scale": False, "clip": 0.0, "minmax": False,
    },
    "lognorm": {
        "min_counts_per_cell": 0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "normalize": True, "target_sum": 1e4, "log1p": True,
        "n_top_genes": 2000, "hvg_flavor": "seurat",
        "scale": False, "clip": 0.0, "minmax": False,
    },
    "standardize": {
        "min_counts_per_cell": 0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "normalize": None, "target_sum": 1e4, "log1p": None,
        "n_top_genes": 0, "hvg_flavor": "variance",
        "scale": True, "clip": 10.0, "minmax": False,
    },
    "minmax": {
        "min_counts_per_cell": 0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "normalize": None, "target_sum": 1e4, "log1p": None,
        "n_top_genes": 0, "hvg_flavor": "mad",
        "scale": False, "clip": 0.0, "minmax": True,
    },
    "none": {
        "min_counts_per_cell": 0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "normalize": False, "target_sum": 1e4, "log1p": False,
        "n_top_genes": 0, "hvg_flavor": "variance",
        "scale": False, "clip": 0.0, "minmax": False,
    },
}  # fmt: skip
_PARAM_NAMES = ("gene_list", *PRESETS["counts"])


@dataclass(frozen=True)
class Steps:
    """The resolved steps of a fitted :class:`Preprocessor` (no ``None`` left)."""

    preset: str
    source: Literal["counts", "X"]  # counts: raw counts (layers["counts"] or X) feed the steps
    drop_empty: bool
    min_counts_per_cell: float
    min_genes_per_cell: int
    min_cells_per_gene: int
    gene_list: str | None
    normalize: bool
    target_sum: float
    log1p: bool
    n_top_genes: int
    hvg_flavor: str
    scale: bool
    clip: float
    minmax: bool


class Preprocessor:
    """Fit preprocessing steps on training data and re-apply them to new data.

    Parameters
    ----------
    preset
        ``counts``: drop empty cells and genes, HVG ``seurat_v3`` top 2000 on counts,
        ``X = log1p(normalize_total(1e4))``, counts kept in ``layers["counts"]``.
        ``lognorm``: normalise + log1p, HVG ``seurat`` top 2000. ``standardize``:
        normalise + log1p only for raw counts, optional HVG by variance, z-score clipped
        at 10. ``minmax``: like standardize but optional HVG by MAD and min-max scaling to
        [0, 1]. ``none``: gene alignment only. ``auto``: ``counts`` when the data has raw
        counts, ``standardize`` otherwise (decided at fit).
    min_counts_per_cell, min_genes_per_cell, min_cells_per_gene
        Training-data filters (0: off); applied only by ``fit`` / ``fit_transform``.
    gene_list
        A text file with one gene ID per line: keep only these genes (in the file's order).
    normalize, target_sum
        Scale every cell to ``target_sum`` total over the kept genes.
    log1p
        ``log(1 + x)`` after normalisation.
    n_top_genes, hvg_flavor
        Keep the ``n_top_genes`` most variable genes (0: keep all): scanpy's ``seurat_v3``
        (on raw counts), ``seurat``, ``cell_ranger``; ``variance`` (top by variance) or
        ``mad`` (top by median absolute deviation).
    scale, clip
        Per-gene z-score with the fitted mean and standard deviation, then clip to
        ``[-clip, clip]`` (0: no clipping).
    minmax
        Per-gene min-max scaling to [0, 1] with the fitted minimum and maximum.

    Every step left at ``None`` takes the preset's value (see :data:`PRESETS`); for
    ``standardize`` and ``minmax`` that means normalise + log1p exactly when ``X`` holds
    raw counts.

    Attributes
    ----------
    steps_ : Steps
        The resolved steps (preset, where the values come from, every parameter).
    genes_ : list of str
        The kept genes, in output order.
    stats_ : dict of str to ndarray
        Per-gene ``mean`` / ``std`` (scale) or ``min`` / ``max`` (minmax), fitted order.
    """

    def __init__(
        self,
        preset: PresetName = "auto",
        *,
        min_counts_per_cell: float | None = None,
        min_genes_per_cell: int | None = None,
        min_cells_per_gene: int | None = None,
        gene_list: str | os.PathLike[str] | None = None,
        normalize: bool | None = None,
        target_sum: float | None = None,
        log1p: bool | None = None,
        n_top_genes: int | None = None,
        hvg_flavor: HVGFlavor | None = None,
        scale: bool | None = None,
        clip: float | None = None,
        minmax: bool | None = None,
    ) -> None:
        self.preset = preset
        self.min_counts_per_cell = min_counts_per_cell
        self.min_genes_per_cell = min_genes_per_cell
        self.min_cells_per_gene = min_cells_per_gene
        self.gene_list = None if gene_list is None else str(gene_list)
        self.normalize = normalize
        self.target_sum = target_sum
        self.log1p = log1p
        self.n_top_genes = n_top_genes
        self.hvg_flavor = hvg_flavor
        self.scale = scale
        self.clip = clip
        self.minmax = minmax
        _validate_params(self.get_params())
        self._reset()

    def _reset(self) -> None:
        self.steps_: Steps | None = None
        self.genes_: list[str] = []
        self.stats_: dict[str, np.ndarray] = {}
        self.n_input_genes_: int = 0
        self.input_genes_sha256_: str = ""
        self.value_type_: ValueType | None = None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_config(
        cls, cfg: PreprocessConfig, value_type: ValueType | None = None
    ) -> Preprocessor:
        """Build from a :class:`~geneae.config.PreprocessConfig`.

        ``value_type`` (see :func:`geneae._matrix.value_type`) resolves ``preset="auto"``
        now: ``counts`` for raw counts, ``standardize`` otherwise; ``None`` leaves it to fit.
        """
        params = cfg.model_dump()
        if params["preset"] == "auto" and value_type is not None:
            params["preset"] = "counts" if value_type == "raw counts" else "standardize"
        return cls(**params)

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters as given (``None`` = the preset's value)."""
        return {"preset": self.preset, **{name: getattr(self, name) for name in _PARAM_NAMES}}

    def __repr__(self) -> str:
        given = {k: v for k, v in self.get_params().items() if v is not None and k != "preset"}
        args = ", ".join([repr(self.preset), *(f"{k}={v!r}" for k, v in given.items())])
        return f"Preprocessor({args})"

    @property
    def is_fitted(self) -> bool:
        return self.steps_ is not None

    # -- fit / transform ----------------------------------------------------------------
    def fit(self, adata: ad.AnnData) -> Preprocessor:
        """Choose cells and genes and learn per-gene statistics on training data."""
        self._fit(adata)
        return self

    def fit_transform(self, adata: ad.AnnData, *, copy: bool = True) -> ad.AnnData:
        """Fit on ``adata`` and return it preprocessed, without the cells the filters dropped.

        ``copy=False`` lets the result share arrays that come out unchanged with ``adata``
        (see :meth:`transform`).
        """
        cells = self._fit(adata)
        return self._transform(adata, warn_extra=False, cells=cells, copy=copy)

    def transform(self, adata: ad.AnnData, *, copy: bool = True) -> ad.AnnData:
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
        return self._transform(adata, warn_extra=True, copy=copy)

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
        out = self._value_steps(x, steps)
        return out.toarray() if sp.issparse(out) else out

    # -- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this preprocessor, as JSON-ready values."""
        state: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION}
        state["params"] = self.get_params()
        if self.steps_ is None:
            state["fitted"] = None
            return state
        state["fitted"] = {
            "steps": asdict(self.steps_),
            "genes": list(self.genes_),
            # float64 -> Python float -> JSON repr round-trips exactly.
            "stats": {k: v.tolist() for k, v in self.stats_.items()},
            "n_input_genes": self.n_input_genes_,
            "input_genes_sha256": self.input_genes_sha256_,
            "value_type": self.value_type_,
        }
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Preprocessor:
        """Rebuild a preprocessor from :meth:`to_dict` output (validated)."""
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ModelFileError(f"not a saved geneae preprocessor (expected format {FORMAT!r}).")
        if state.get("version") != FORMAT_VERSION:
            raise ModelFileError(
                f"preprocessor format version {state.get('version')!r} is not supported "
                f"(this geneae reads version {FORMAT_VERSION})."
            )
        try:
            pre = cls(**state["params"])
            fitted = state.get("fitted")
            if fitted is not None:
                pre._restore(fitted)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"saved preprocessor is malformed ({exc!r}).") from None
        return pre

    def _restore(self, fitted: dict[str, Any]) -> None:
        self.steps_ = Steps(**fitted["steps"])
        self.genes_ = [str(g) for g in fitted["genes"]]
        self.stats_ = {k: np.asarray(v, dtype=np.float64) for k, v in fitted["stats"].items()}
        self.n_input_genes_ = int(fitted["n_input_genes"])
        self.input_genes_sha256_ = str(fitted["input_genes_sha256"])
        self.value_type_ = fitted.get("value_type")
        for key, values in self.stats_.items():
            if values.shape != (len(self.genes_),):
                raise ValueError(
                    f"stats {key!r} has {values.size} values for {len(self.genes_)} genes"
                )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        try:
            state = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelFileError(f"saved preprocessor is not valid JSON ({exc}).") from None
        return cls.from_dict(state)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the state as JSON, atomically (never a pickle)."""
        write_text(path, self.to_json() + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Preprocessor:
        """Read a preprocessor written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: preprocessor file not found.")
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except ModelFileError as exc:
            raise ModelFileError(f"{path}: {exc}") from None

    # -- internals: fit -----------------------------------------------------------------
    def _require_fitted(self) -> Steps:
        if self.steps_ is None:
            raise NotFittedError(
                "this Preprocessor is not fitted yet: call fit(adata) or fit_transform(adata) "
                "on the training data first, or load a fitted one with Preprocessor.load(path)."
            )
        return self.steps_

    def _fit(self, adata: ad.AnnData) -> np.ndarray:
        """Fit; return the boolean mask of the training cells kept."""
        self._reset()
        adata = P.in_memory(adata)
        P.check_shape_and_names(adata)
        x_matrix = P.get_matrix(adata, None)
        counts, problem = P.find_counts(adata)
        steps = self._resolve(counts is not None, is_count_matrix(x_matrix))
        source = _source_matrix(adata, steps, counts, problem)
        where = "the counts" if steps.source == "counts" else "X"
        nonneg = steps.normalize or steps.log1p
        P.check_values(
            source, nonnegative=nonneg, where=where, obs=adata.obs_names, var=adata.var_names
        )
        if steps.preset == "lognorm" and steps.source == "X":
            P.warn_if_lognormalised(x_matrix)

        kept = P.Kept(adata.n_obs, adata.n_vars)
        base = counts if counts is not None else source  # filters count what was measured
        P.filter_cells_and_genes(
            kept,
            base,
            min_counts_per_cell=steps.min_counts_per_cell,
            min_genes_per_cell=steps.min_genes_per_cell,
            min_cells_per_gene=steps.min_cells_per_gene,
            drop_empty=steps.drop_empty,
        )
        if steps.gene_list is not None:
            P.keep_gene_list(kept, steps.gene_list, adata.var_names)
        if 0 < steps.n_top_genes < kept.genes.size:
            if steps.hvg_flavor == "seurat_v3" and counts is None:
                raise P.needs_counts("hvg_flavor='seurat_v3'", problem)
            kept.genes = kept.genes[_hvg_mask(kept, source, counts, steps)]
        if steps.drop_empty:
            P.drop_empty_cells(kept, base, "all zero in the selected genes")
        P.warn_dropped(kept, adata.n_obs, adata.n_vars)

        self.steps_ = steps
        self.genes_ = [str(g) for g in adata.var_names[kept.genes]]
        if steps.scale or steps.minmax:  # the only steps with fitted statistics
            self.stats_ = _fit_stats(_prepare(kept.current(source), steps), steps)
        self.n_input_genes_ = adata.n_vars
        self.input_genes_sha256_ = P.names_sha256(adata.var_names)
        self.value_type_ = value_type(x_matrix)
        return kept.cells

    def _resolve(self, has_counts: bool, x_is_counts: bool) -> Steps:
        """Fill every step left at ``None`` from the preset, now that the data is known."""
        preset = self.preset
        if preset == "auto":
            preset = "counts" if has_counts else "standardize"
        defaults = PRESETS[preset]
        given = self.get_params()
        value = {k: defaults[k] if given[k] is None else given[k] for k in defaults}
        for key in ("normalize", "log1p"):
            if value[key] is None:  # standardize / minmax: normalise and log only counts
                value[key] = x_is_counts
        if preset == "counts":
            source = "counts"
        elif preset == "lognorm":
            source = "counts" if has_counts else "X"
        elif preset in ("standardize", "minmax"):
            source = "counts" if x_is_counts else "X"
        else:
            source = "X"
        drop_empty = preset != "none"
        steps = Steps(preset, source, drop_empty, gene_list=self.gene_list, **value)
        _check_combination(steps.scale, steps.minmax)
        return steps

    # -- internals: transform -----------------------------------------------------------
    def _transform(
        self,
        adata: ad.AnnData,
        *,
        warn_extra: bool,
        cells: np.ndarray | None = None,
        copy: bool = True,
    ) -> ad.AnnData:
        """The fitted steps on the ``cells`` (mask; None: all) of ``adata``.

        Runs in blocks of rows (:func:`geneae._preprocess.map_rows`): the float64 working
        copies are one block at a time, and each result is allocated once, in float32.
        """
        steps = self._require_fitted()
        adata = P.in_memory(adata)
        P.check_shape_and_names(adata)
        cols = self._align(adata.var_names, warn_extra=warn_extra)
        counts, problem = P.find_counts(adata)
        source = _source_matrix(adata, steps, counts, problem)
        rows = None if cells is None or cells.all() else cells
        kept = adata if rows is None else adata[rows]  # a view, for obs: no matrix copied
        check = P.ValueCheck(
            nonnegative=steps.normalize or steps.log1p,
            where="the counts" if steps.source == "counts" else "X",
            obs=kept.obs_names,
            var=adata.var_names[cols],
        )

        def value_steps(where: slice, block: Matrix) -> Matrix:
            check.add(block, where.start)
            # Bad values end in an error after the last block: skip their arithmetic (and
            # its RuntimeWarnings), the block is discarded.
            return block if check.found else self._value_steps(block, steps)

        dense = not sp.issparse(source) or steps.scale or steps.minmax
        x = P.map_rows(source, rows, cols, value_steps, dense=dense, share=not copy)
        check.raise_if_bad()
        out = ad.AnnData(X=x, obs=kept.obs.copy(), var=adata.var.iloc[cols].copy())
        if counts is not None:
            out.layers["counts"] = _counts_layer(counts, rows, cols, copy=copy)
        return out

    def _align(self, names: pd.Index, *, warn_extra: bool) -> np.ndarray:
        """Column index of every fitted gene in ``names``; errors on missing genes."""
        cols = names.get_indexer(pd.Index(self.genes_))
        missing = [g for g, c in zip(self.genes_, cols, strict=True) if c < 0]
        if missing:
            raise InputError(
                f"{len(missing):,} of the {len(self.genes_):,} genes this preprocessor was "
                f"fitted on are missing from the data: {P.preview(missing)}. New data must "
                "contain every gene used in training (check that the gene IDs are of the same "
                "kind, e.g. symbols vs Ensembl IDs)."
            )
        n_extra = len(names) - len(cols)
        if warn_extra and n_extra > 0 and P.names_sha256(names) != self.input_genes_sha256_:
            extra = names[np.setdiff1d(np.arange(len(names)), cols)]
            warnings.warn(
                f"{n_extra:,} genes not used by the preprocessor were dropped "
                f"(e.g. {P.preview(list(extra))}).",
                DataWarning,
                stacklevel=4,
            )
        return cols

    def _value_steps(self, x: Matrix, steps: Steps) -> Matrix:
        """Normalise, log1p, then scale or min-max with the fitted statistics.

        Works in place on ``x``, a private float64 copy (a dense one is overwritten).
        """
        x = _prepare(x, steps)
        if steps.scale:
            x = P.densify(x)
            x -= self.stats_["mean"]
            x /= self.stats_["std"]
            if steps.clip > 0:
                np.clip(x, -steps.clip, steps.clip, out=x)
        elif steps.minmax:
            x = P.densify(x)
            lo, span = self.stats_["min"], self.stats_["max"] - self.stats_["min"]
            x -= lo
            x /= np.where(span > 0, span, 1.0)  # constant genes map to 0
            np.clip(x, 0.0, 1.0, out=x)  # new data outside the fitted range
        return x


# -- parameters ---------------------------------------------------------------------------
def _validate_params(params: dict[str, Any]) -> None:
    """Raise ConfigError for a bad parameter, naming it and the allowed values."""
    if params["preset"] not in ("auto", *PRESETS):
        raise ConfigError(
            f"preset {params['preset']!r} is unknown; choose one of auto, {', '.join(PRESETS)}."
        )
    for name in ("min_counts_per_cell", "target_sum", "clip"):
        v = params[name]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0):
            raise ConfigError(f"{name} must be a non-negative number, got {v!r}.")
    if params["target_sum"] == 0:
        raise ConfigError("target_sum must be positive (e.g. 1e4).")
    for name in ("min_genes_per_cell", "min_cells_per_gene", "n_top_genes"):
        v = params[name]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ConfigError(f"{name} must be a non-negative integer (0: off), got {v!r}.")
    for name in ("normalize", "log1p", "scale", "minmax"):
        if params[name] is not None and not isinstance(params[name], bool):
            raise ConfigError(f"{name} must be true, false or None, got {params[name]!r}.")
    if params["hvg_flavor"] is not None and params["hvg_flavor"] not in HVG_FLAVORS:
        raise ConfigError(
            f"hvg_flavor {params['hvg_flavor']!r} is unknown; choose one of "
            f"{', '.join(HVG_FLAVORS)}."
        )
    presets = ("counts", "standardize") if params["preset"] == "auto" else (params["preset"],)
    for preset in presets:
        chosen = {
            k: PRESETS[preset][k] if params[k] is None else params[k] for k in PRESETS[preset]
        }
        _check_combination(chosen["scale"], chosen["minmax"])


def _check_combination(scale: bool, minmax: bool) -> None:
    if scale and minmax:
        raise ConfigError(
            "scale (z-score) and minmax (scaling to [0, 1]) exclude each other; turn one off "
            "(preset 'standardize' scales, preset 'minmax' min-max scales)."
        )


def _prepare(x: Matrix, steps: Steps) -> Matrix:
    """The steps before scaling: normalisation, then log1p, in place on a float64 copy."""
    if steps.normalize:
        x = P.normalize_total(x, steps.target_sum)
    if steps.log1p:
        x = P.log1p(x)
    return x


def _fit_stats(x: Matrix, steps: Steps) -> dict[str, np.ndarray]:
    """Per-gene mean and std (ddof 0; a std of 0 is stored as 1), or min and max."""
    if steps.scale:
        mean, var = P.mean_var(x)
        std = np.sqrt(var)
        return {"mean": mean, "std": np.where(std > 0, std, 1.0)}
    if steps.minmax:
        lo, hi = P.min_max(x)
        return {"min": lo, "max": hi}
    return {}


def _hvg_mask(kept: P.Kept, source: Matrix, counts: Matrix | None, steps: Steps) -> np.ndarray:
    """Boolean mask over ``kept.genes`` of the ``n_top_genes`` most variable genes.

    Scored scanpy-style on all current genes normalised together (then log1p), or on the
    raw counts for ``seurat_v3``.
    """
    n_top, flavor = steps.n_top_genes, steps.hvg_flavor
    if flavor == "seurat_v3":
        assert counts is not None
        return P.scanpy_hvg(kept.current(counts), flavor, n_top)
    x = _prepare(kept.current(source), steps)
    if flavor == "variance":
        return P.top(P.mean_var(x)[1], n_top)
    if flavor == "mad":
        return P.top(P.median_abs_deviation(x), n_top)
    return P.scanpy_hvg(x, flavor, n_top)


def _source_matrix(
    adata: ad.AnnData, steps: Steps, counts: Matrix | None, problem: P.NotCounts | None
) -> Matrix:
    """The matrix the value steps start from: raw counts or X, as fitted."""
    if steps.source == "X":
        return P.get_matrix(adata, None)
    if counts is None:
        raise P.needs_counts(f"preset {steps.preset!r}", problem)
    return counts


def _counts_layer(
    counts: Matrix, rows: np.ndarray | None, cols: np.ndarray, *, copy: bool
) -> Matrix:
    """The raw counts of the kept cells and genes, as float32.

    ``counts`` itself when it is that already and ``copy`` is False.
    """
    unchanged = rows is None and P.is_identity(cols, counts.shape[1]) and P.is_canonical(counts)
    c_order = sp.issparse(counts) or counts.flags.c_contiguous
    if not copy and unchanged and counts.dtype == np.float32 and c_order:
        return counts
    return P.map_rows(
        counts, rows, cols, lambda _, block: block, dense=not sp.issparse(counts), share=not copy
    )


# -- other helpers ------------------------------------------------------------------------
def pseudobulk(
    adata: ad.AnnData, groupby: str | Sequence[str], *, layer: str | None = "counts"
) -> ad.AnnData:
    """Sum raw counts over the cells of each group (e.g. sample x cell type).

    Parameters
    ----------
    adata
        Cells x genes with raw counts in ``layers[layer]`` (``layer=None``: in ``X``;
        without a ``counts`` layer, raw counts in ``X`` are used).
    groupby
        One or more obs columns; cells with a missing value are left out (with a warning).

    Returns
    -------
    Groups x genes: ``X`` and ``layers["counts"]`` the summed counts (int64), obs the group
    values and ``n_cells``; var copied.
    """
    adata = P.in_memory(adata)
    keys = [groupby] if isinstance(groupby, str) else list(groupby)
    absent = [k for k in keys if k not in adata.obs]
    if absent:
        raise InputError(
            f"obs has no column {P.preview(absent)}; available: {P.preview(list(adata.obs), 10)}."
        )
    if layer == "counts" and layer not in adata.layers and is_count_matrix(adata.X):
        layer = None  # the counts are in X
    if layer is not None and layer not in adata.layers:
        raise InputError(
            f"layer {layer!r} not found (available: {P.preview(list(adata.layers)) or 'none'}); "
            "pass layer=None to sum X."
        )
    x = P.get_matrix(adata, layer)
    where = "X" if layer is None else f"layers[{layer!r}]"
    if not is_count_matrix(x):
        raise P.needs_counts("pseudobulk", P.not_counts(x, where, adata.obs_names, adata.var_names))
    group_id, groups = _group_codes(adata.obs[keys])
    sums = _group_sums(x, group_id, len(groups))
    out = ad.AnnData(X=sums, obs=groups, var=adata.var.copy())
    out.layers["counts"] = sums.copy()
    return out


def _group_codes(obs: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Group index per cell (-1: missing value) and one row per group with ``n_cells``."""
    keys = list(obs.columns)
    grouped = obs.groupby(keys, observed=True, sort=True, dropna=True)
    codes = grouped.ngroup().fillna(-1).to_numpy(dtype=np.int64)
    n_missing = int((codes < 0).sum())
    if n_missing:
        warnings.warn(
            f"{n_missing:,} cells with a missing {', '.join(keys)} value were left out.",
            DataWarning,
            stacklevel=3,
        )
    sizes = grouped.size()
    groups = sizes.index.to_frame(index=False)
    groups.columns = keys
    for key in keys:
        groups[key] = groups[key].astype("category")
    groups["n_cells"] = sizes.to_numpy().astype(np.int64)
    groups.index = pd.Index(groups[keys].astype(str).agg("_".join, axis=1))
    return codes, groups


def _group_sums(x: Matrix, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of each group (an indicator-matrix product; exact for counts)."""
    rows = np.flatnonzero(codes >= 0)
    indicator = sp.csr_matrix(
        (np.ones(rows.size), (codes[rows], rows)), shape=(n_groups, len(codes))
    )
    sums = indicator @ (x.astype(np.float64) if sp.issparse(x) else np.asarray(x, np.float64))
    return np.rint(P.densify(sums)).astype(np.int64)


def transpose(adata: ad.AnnData) -> ad.AnnData:
    """Swap samples and genes (obs <-> var, layers transposed); sparse results are CSR."""
    out = P.in_memory(adata).transpose().copy()
    if sp.issparse(out.X):
        out.X = sp.csr_matrix(out.X)
    for key in list(out.layers):
        if sp.issparse(out.layers[key]):
            out.layers[key] = sp.csr_matrix(out.layers[key])
    return out
