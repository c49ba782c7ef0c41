"""What geneae takes from an AnnData's ``.raw``: its log values, or its raw counts.

scanpy's workflow keeps log-normalised values (or counts) in ``.raw`` and z-scores (or log
values) in X. A file read in memory (:mod:`geneae.io.finalize`), a file read on disk
(:mod:`geneae.io.backed`) and an AnnData given in Python (:func:`as_read_from_a_file`) use it by
the same rules, so that one dataset gives one model however it is handed over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae.io.logged_counts import counts_from_log, counts_origin
from geneae.io.messages import input_error
from geneae.matrix_values import ValueType, is_count_matrix, value_type

logger = logging.getLogger(__name__)

Matrix = np.ndarray | sp.spmatrix | sp.sparray


def standard_matrix(x: Matrix, path: Path) -> Matrix:
    """Dense -> float32 array; sparse -> CSR with float32 values (models train in float32)."""
    if sp.issparse(x):
        x = x.tocsr()
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        return x
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise input_error(
            path,
            f"the matrix holds {x.dtype} values, not numbers",
            "Store numeric expression values.",
        )
    return x if x.dtype == np.float32 else x.astype(np.float32)


#: What a reader says when it takes the counts from ``.raw`` (in memory or on disk).
RAW_COUNTS_NOTE = (
    "raw counts found in .raw.X of %s (X holds other values): the count models use them"
)


#: What a reader says when it trains on ``.raw``'s log values instead of X's z-scores.
RAW_VALUES_NOTE = (
    "X of %s holds z-scores and .raw.X the log-normalised values of its genes: those are "
    "used (the values before scaling; data.use_raw: false keeps X)"
)


#: ... and where data.use_raw asks for them.
USE_RAW_NOTE = "X of %s: .raw.X's values of its genes (data.use_raw)"


def use_raw_values(
    path: Path,
    use_raw: bool | None,
    has_raw: bool,
    x_kind: Callable[[], ValueType],
    raw_kind: Callable[[], ValueType],
) -> bool:
    """Whether ``.raw``'s values of X's genes replace X, said in one line where they do.

    ``use_raw``: the user's choice (True without such a ``.raw`` is an error); ``has_raw``:
    whether ``.raw`` has every gene of X; ``x_kind`` / ``raw_kind``: the kinds of values of
    X and of ``.raw`` (computed only when asked). Left to the data (None): where X holds
    z-scores and ``.raw`` their log-normalised values, as scanpy's workflow leaves a file
    (``adata.raw = adata`` after log1p, then ``sc.pp.scale``). On the four log-normalised
    benchmark sets so saved, the default scored 0.12 ARI higher on worm neurons and 0.08 on
    10x PBMC with the log values, 0.015 lower on mouse bladder and 0.07 on CBMC
    (docs/design/default-model.md, round 48).
    """
    if use_raw is False or not has_raw:
        if use_raw:
            raise input_error(
                path,
                "data.use_raw is set, but there is no .raw with every gene of X, each once",
                "Store the values in .raw (adata.raw = adata before subsetting genes), or "
                "drop data.use_raw.",
            )
        return False
    if use_raw:
        logger.info(USE_RAW_NOTE, path)
        return True
    if x_kind() != "standardised" or raw_kind() != "log-normalised":
        return False
    logger.info(RAW_VALUES_NOTE, path)
    return True


def raw_gene_columns(raw_genes: pd.Index, genes: pd.Index) -> np.ndarray | None:
    """Where each gene of ``X`` is in ``.raw``, or None when ``.raw`` cannot give its counts.

    ``.raw`` (scanpy's place for counts beside log-normalised ``X``) serves when it has
    every gene of ``X``, each once; whether its values are counts is the caller's check.
    """
    if not raw_genes.is_unique or not genes.isin(raw_genes).all():
        return None
    return raw_genes.get_indexer(genes)


def values_from_raw(adata: ad.AnnData, path: Path, use_raw: bool | None) -> Matrix | None:
    """``.raw``'s values of X's genes where :func:`use_raw_values` says they replace X."""
    raw = adata.raw
    columns = None
    if use_raw is not False and raw is not None and raw.n_obs == adata.n_obs:
        columns = raw_gene_columns(raw.var_names, adata.var_names)
    if columns is None:
        use_raw_values(path, use_raw, False, lambda: "other", lambda: "other")
        return None
    values = standard_matrix(raw.X[:, columns], path)
    if use_raw_values(path, use_raw, True, lambda: value_type(adata.X), lambda: value_type(values)):
        return values
    return None


def counts_from_raw(adata: ad.AnnData, path: Path) -> Matrix | None:
    """Raw counts kept in ``.raw``, for ``layers["counts"]``.

    Only when ``X`` holds no counts (the caller's check), ``.raw`` has every gene of ``X``
    (:func:`raw_gene_columns`) and its values for them are counts; the counts of X's genes
    are then used, in X's gene order.
    """
    raw = adata.raw
    if raw is None or raw.n_obs != adata.n_obs:
        return None
    columns = raw_gene_columns(raw.var_names, adata.var_names)
    if columns is None:
        return None
    counts = standard_matrix(raw.X[:, columns], path)
    if not is_count_matrix(counts):
        return None
    logger.info(RAW_COUNTS_NOTE, path)
    return counts


def counts_elsewhere(adata: ad.AnnData, x: Matrix, path: Path) -> tuple[str, Matrix] | None:
    """Raw counts where X (``x``) holds none, and whence, for ``layers["counts"]``.

    ``.raw``'s (:func:`counts_from_raw`), else those whose logs ``x`` holds
    (:func:`geneae.io.logged_counts.counts_from_log`); ``(".raw.X", counts)`` or
    ``("e^v - 1 of X's ln(x+1)", counts)``, or None.
    """
    counts = counts_from_raw(adata, path)
    if counts is not None:
        return ".raw.X", counts
    found = counts_from_log(x, path)
    if found is None:
        return None
    return counts_origin(found[0]), found[1]


def as_read_from_a_file(
    adata: ad.AnnData, use_raw: bool | None, name: str = "the AnnData"
) -> ad.AnnData:
    """An in-memory ``adata`` as a file's reader gives it.

    ``.raw`` used by the same rules (its values replacing X, or its counts serving as
    ``layers["counts"]``), and counts kept as their logs in X taken back
    (:mod:`geneae.io.logged_counts`). A new AnnData is returned where anything is taken
    (sharing ``adata``'s other arrays); ``adata`` itself is never changed, and comes back as
    it is where nothing is.
    """
    where = Path(name)
    x = values_from_raw(adata, where, use_raw)
    layers = dict(adata.layers)
    values = adata.X if x is None else x
    if "counts" not in layers and not is_count_matrix(values):
        found = counts_elsewhere(adata, values, where)
        if found is not None:
            layers["counts"] = found[1]
    if x is None and len(layers) == len(adata.layers):
        return adata
    return ad.AnnData(
        X=adata.X if x is None else x,
        obs=adata.obs,
        var=adata.var,
        layers=layers,
        obsm=dict(adata.obsm),
        uns=dict(adata.uns),
    )
