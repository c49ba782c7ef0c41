"""Grouping and reshaping AnnData: pseudobulk sums of raw counts, samples <-> genes."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae.errors import DataWarning, InputError
from geneae.matrix_values import is_count_matrix
from geneae.pp.blocks import Matrix, densify
from geneae.pp.checks import get_matrix, in_memory, needs_counts, not_counts, preview


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
    adata = in_memory(adata)
    keys = [groupby] if isinstance(groupby, str) else list(groupby)
    absent = [k for k in keys if k not in adata.obs]
    if absent:
        raise InputError(
            f"obs has no column {preview(absent)}; available: {preview(list(adata.obs), 10)}."
        )
    if layer == "counts" and layer not in adata.layers and is_count_matrix(adata.X):
        layer = None  # the counts are in X
    if layer is not None and layer not in adata.layers:
        raise InputError(
            f"layer {layer!r} not found (available: {preview(list(adata.layers)) or 'none'}); "
            "pass layer=None to sum X."
        )
    x = get_matrix(adata, layer)
    where = "X" if layer is None else f"layers[{layer!r}]"
    if not is_count_matrix(x):
        raise needs_counts("pseudobulk", not_counts(x, where, adata.obs_names, adata.var_names))
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
    return np.rint(densify(sums)).astype(np.int64)


def transpose(adata: ad.AnnData) -> ad.AnnData:
    """Swap samples and genes (obs <-> var, layers transposed); sparse results are CSR."""
    out = in_memory(adata).transpose().copy()
    if sp.issparse(out.X):
        out.X = sp.csr_matrix(out.X)
    for key in list(out.layers):
        if sp.issparse(out.layers[key]):
            out.layers[key] = sp.csr_matrix(out.layers[key])
    return out
