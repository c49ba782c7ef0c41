"""The post-processing every reader's output goes through, written once.

Readers only turn a file into an AnnData with the file's own names and columns; this
module makes every result look the same to the rest of geneae: labels in
``obs["label"]``, counts in ``layers["counts"]``, float32 matrices (CSR when sparse or
mostly zero, dense otherwise), unique names, finite values and a record of where the
data came from.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae.errors import DataWarning
from geneae.io.genes_file import gene_names_from_file
from geneae.io.labels_file import Labels, LabelsSheet, labels_from_file
from geneae.io.messages import input_error, nonfinite_values
from geneae.io.raw import counts_elsewhere, standard_matrix, values_from_raw
from geneae.matrix_values import csr_if_mostly_zero, is_count_matrix, values_of

LABEL_KEYS: tuple[str, ...] = (
    "label",
    "labels",
    "cell_type",
    "celltype",
    "cell_types",
    "cell_ontology_class",
    "bulk_labels",
    "y",
)
"""obs columns (case-insensitive, in order of preference) taken as labels automatically."""

_ARRAY_FORMATS = {"npy", "npz"}
logger = logging.getLogger(__name__)


def generated_names(prefix: str, n: int) -> pd.Index:
    """Stable names ``prefix_0000`` ... for files that carry none (zero-padded to sort)."""
    width = max(4, len(str(max(n - 1, 0))))
    return pd.Index([f"{prefix}_{i:0{width}d}" for i in range(n)])


@contextlib.contextmanager
def quiet_anndata() -> Iterator[None]:
    """Silence anndata's own warnings about names and old file layouts.

    Duplicate names are reported once, as a :class:`DataWarning`, by :func:`finalize`;
    old-layout notices are about the file's age, which the user cannot act on here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(Observation|Variable) names are not unique")
        warnings.filterwarnings("ignore", category=ad.OldFormatWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"anndata")
        warnings.filterwarnings("ignore", message=r"Moving element from \.uns")
        yield


def build_anndata(
    x: np.ndarray | sp.spmatrix | sp.sparray,
    obs_names: Sequence[str],
    var_names: Sequence[str],
    obs: Mapping[str, Any] | None = None,
    var: Mapping[str, Any] | None = None,
) -> ad.AnnData:
    """An AnnData from a matrix, its names and per-sample / per-gene columns.

    Column values are taken by position (a pandas Series is not aligned on its index).
    Duplicate names are allowed here; :func:`finalize` reports and fixes them.
    """
    with quiet_anndata():
        return ad.AnnData(x, obs=_frame(obs, obs_names), var=_frame(var, var_names))


def _frame(columns: Mapping[str, Any] | None, names: Sequence[str]) -> pd.DataFrame:
    index = pd.Index(np.asarray(names, dtype=object).astype(str), dtype=object)
    values = {k: (v.array if isinstance(v, pd.Series) else v) for k, v in (columns or {}).items()}
    return pd.DataFrame(values, index=index)


def _is_existing_file(value: object) -> bool:
    return isinstance(value, str | os.PathLike) and Path(value).is_file()


def categorical_labels(values: Sequence[object] | pd.Series | np.ndarray) -> pd.Categorical:
    """Labels as a categorical with string categories.

    Integer-valued numbers become ``"1"``, ``"2"``, ... (ordered numerically, not as text);
    an existing categorical keeps its category order; missing values stay missing.
    """
    series = pd.Series(values).reset_index(drop=True)
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = series.cat.categories
        names = _label_strings(pd.Series(cats)).tolist()
        codes = series.cat.codes.to_numpy()
        return pd.Categorical.from_codes(codes, categories=pd.Index(names).unique())
    if series.dtype.kind == "S":
        series = series.str.decode("utf-8")
    strings = _label_strings(series)
    if pd.api.types.is_numeric_dtype(series):
        order = series.dropna().unique()
        order.sort()
        cats = pd.Index(_label_strings(pd.Series(order))).unique()
        return pd.Categorical(strings, categories=cats)
    return pd.Categorical(strings.replace("", np.nan))


def _label_strings(series: pd.Series) -> pd.Series:
    """String form of labels, with integer-valued floats written without ``.0``."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size and np.all(finite == np.round(finite)):
            out = pd.Series([None if np.isnan(v) else str(int(v)) for v in values], dtype=object)
            return out
    return series.map(
        lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
    )


def _resolve_labels(
    adata: ad.AnnData, path: Path, fmt: str, labels: Labels | None
) -> tuple[pd.Categorical | None, str | None]:
    """The labels to store and where they came from (a file path or an obs column)."""
    if isinstance(labels, LabelsSheet):
        values = labels_from_file(labels.path, adata.obs_names, path, LABEL_KEYS, labels.column)
        return categorical_labels(values), os.fspath(labels.path)
    if labels is not None and _is_existing_file(labels):
        values = labels_from_file(Path(labels), adata.obs_names, path, LABEL_KEYS)
        return categorical_labels(values), os.fspath(labels)
    if labels is not None and (fmt in _ARRAY_FORMATS or not isinstance(labels, str)):
        raise input_error(
            labels,
            "the labels file does not exist",
            "Check the path (--labels-file; labels= in Python).",
        )
    columns = [str(c) for c in adata.obs.columns]
    if labels is not None:
        if labels in columns:
            return categorical_labels(adata.obs[labels]), labels
        similar = [c for c in columns if c.lower() == labels.lower()]
        hint = f" Did you mean {similar[0]!r}?" if similar else ""
        raise input_error(
            path,
            f"no label column {labels!r} (columns: {', '.join(columns[:30]) or 'none'}"
            f"{' ...' if len(columns) > 30 else ''}) and no file of that name",
            f"Name one of the columns (--labels; labels= in Python), or give a labels file "
            f"(--labels-file).{hint}",
        )
    by_lower = {c.lower(): c for c in reversed(columns)}
    for key in LABEL_KEYS:
        if key in by_lower:
            column = by_lower[key]
            return categorical_labels(adata.obs[column]), column
    return None, None


#: What to do about a store without X (and without a counts layer to read as X).
NO_X_FIX = "Store the expression matrix in X, or set data.layer to one of the layers (--config)."


def _make_names_unique(adata: ad.AnnData, path: Path) -> None:
    for axis, what in (("obs", "sample"), ("var", "gene")):
        names = adata.obs_names if axis == "obs" else adata.var_names
        if names.is_unique:
            continue
        dup = names[names.duplicated()].unique()
        warnings.warn(
            DataWarning(
                f"{path}: {len(dup)} duplicated {what} name(s) (e.g. {dup[0]!r}) were made "
                "unique by appending -1, -2, ..."
            ),
            stacklevel=4,
        )
        if axis == "obs":
            adata.obs_names_make_unique()
        else:
            adata.var_names_make_unique()


def _without_empty_lines(adata: ad.AnnData, path: Path) -> ad.AnnData:
    """``adata`` without the genes, then the samples, that hold no value at all (all NaN).

    cBioPortal's z-score tables write NA for every sample of a gene without variance; such a
    gene says nothing, so it is left out with one warning. A matrix with missing values
    anywhere else is refused by :func:`_check_finite`.
    """
    x = adata.X
    if sp.issparse(x) or x.dtype.kind != "f":
        return adata
    missing = np.isnan(x)
    empty_genes = missing.all(axis=0)
    empty_samples = missing[:, ~empty_genes].all(axis=1)
    if not (empty_genes.any() or empty_samples.any()) or empty_genes.all() or empty_samples.all():
        return adata  # nothing empty, or nothing would be left (refused as missing values)
    for empty, what, other, names in (
        (empty_genes, "gene", "sample", adata.var_names),
        (empty_samples, "sample", "gene", adata.obs_names),
    ):
        if empty.any():
            warnings.warn(
                f"{path.name}: {int(empty.sum())} {what}(s) without a value in any {other} "
                f"(e.g. {names[empty][0]!r}) were left out",
                DataWarning,
                stacklevel=2,
            )
    return adata[~empty_samples, ~empty_genes].copy()


def _check_finite(adata: ad.AnnData, path: Path) -> None:
    x = adata.X
    values = values_of(x)
    bad = ~np.isfinite(values)
    n_bad = int(bad.sum())
    if not n_bad:
        return
    at = int(np.argmax(bad))
    if sp.issparse(x):
        row = int(np.searchsorted(x.indptr, at, side="right") - 1)
        col = int(x.indices[at])
    else:
        row, col = divmod(at, adata.n_vars)
    problem, fix = nonfinite_values(
        n_bad,
        f"at sample {adata.obs_names[row]!r} (row {row + 1}), gene {adata.var_names[col]!r} "
        f"(column {col + 1})",
    )
    raise input_error(path, problem, fix)


def finalize(
    adata: ad.AnnData,
    path: Path,
    fmt: str,
    *,
    labels: Labels | None = None,
    genes: str | os.PathLike[str] | None = None,
    labels_required: bool = True,
    use_raw: bool | None = None,
) -> ad.AnnData:
    """Bring a reader's AnnData to geneae's common shape (in place, also returned).

    Parameters
    ----------
    adata
        What the reader built: the file's matrix (samples x genes) and metadata.
    path
        The file read, for messages and ``uns["geneae_source"]``.
    fmt
        The format name it was read as.
    labels
        A labels file (one per line), an obs column name, or None to auto-detect one of
        :data:`LABEL_KEYS`.
    genes
        Gene names replacing the file's: one per line, or an annotation table keyed by
        the file's gene IDs (:mod:`geneae.io.genes_file`).
    labels_required
        False: a label column that is not there is no error (no labels are read).
    use_raw
        Whether ``.raw``'s values of X's genes replace X (None: where X holds z-scores and
        ``.raw`` their log values, :func:`use_raw_values`).

    Returns
    -------
    anndata.AnnData
        The same object. ``layers["counts"]`` is *the same array* as ``X`` when the data
        are counts, so transformations must replace ``X``, never modify it in place.

    Raises
    ------
    InputError
        Empty matrix, label/gene files of the wrong length, unknown label column,
        non-numeric, NaN or infinite values.
    """
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise input_error(
            path,
            f"the matrix is empty ({adata.n_obs} samples x {adata.n_vars} genes)",
            "Check that the file holds data and, for tables, that the separator is right.",
        )
    if genes is not None:
        names, keyed = gene_names_from_file(Path(genes), adata.var_names, path)
        if keyed and "gene_ids" not in adata.var:
            adata.var["gene_ids"] = adata.var_names.astype(str)  # the IDs the names replace
        adata.var_names = pd.Index(names).astype(str)
    if not labels_required and isinstance(labels, str) and labels not in adata.obs:
        labels = None
    label_values, label_key = _resolve_labels(adata, path, fmt, labels)
    _make_names_unique(adata, path)
    if label_values is not None:
        adata.obs["label"] = label_values
    origin = None
    if not adata.isbacked:
        if adata.X is None:
            if "counts" not in adata.layers:
                raise input_error(
                    path,
                    f"the file has no X matrix (layers: {', '.join(adata.layers) or 'none'})",
                    NO_X_FIX,
                )
            adata.X = adata.layers["counts"]
        adata.X = standard_matrix(adata.X, path)
        values = values_from_raw(adata, path, use_raw)
        if values is not None:
            adata.X = values
        adata = _without_empty_lines(adata, path)
        _check_finite(adata, path)
        # mostly-zero dense files (tables, plain HDF5, npy) are held as CSR from here on
        adata.X = csr_if_mostly_zero(adata.X)
        if "counts" in adata.layers:
            adata.layers["counts"] = csr_if_mostly_zero(adata.layers["counts"])
        if "counts" not in adata.layers and is_count_matrix(adata.X):
            adata.layers["counts"] = adata.X
        elif "counts" not in adata.layers:
            counts_from = counts_elsewhere(adata, adata.X, path)
            if counts_from is not None:
                origin, adata.layers["counts"] = counts_from
    source = {"path": str(path), "format": fmt}
    if origin is not None:
        source["counts_from"] = origin
    if label_key is not None:
        source["label_key"] = label_key
    adata.uns["geneae_source"] = source
    return adata
