"""Writers for results (latent codes, reconstructions, annotated data), always atomic.

Every file is written under a temporary name in the target directory and renamed into
place (:func:`geneae._atomic.atomic_path`), so an interrupted run never leaves a
half-written file that a later step would read as complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae._atomic import atomic_path
from geneae.errors import InputError
from geneae.io.finalize import generated_names, quiet_anndata

WRITE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".npy", ".h5ad")
"""File endings :func:`write_matrix` accepts."""


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike[str]) -> Path:
    """Write ``adata`` to ``path`` as gzip-compressed h5ad, atomically.

    Parameters
    ----------
    adata
        The data; a backed object is written from memory (it is loaded first).
    path
        Target file; its directory is created if needed, an existing file is replaced
        only once the new one is complete.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    target = Path(path)
    if adata.isbacked:
        adata = adata.to_memory()
    with atomic_path(target) as tmp, quiet_anndata():
        adata.write_h5ad(tmp, compression="gzip")
    return target


def suffix_of(path: Path) -> str:
    """The ending of ``path`` among :data:`WRITE_SUFFIXES` (lower case), or ""."""
    name = path.name.lower()
    return next((s for s in WRITE_SUFFIXES if name.endswith(s)), "")


def write_matrix(
    array: np.ndarray | sp.spmatrix | sp.sparray,
    path: str | os.PathLike[str],
    *,
    obs_names: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    values: str | None = None,
    obs: pd.DataFrame | None = None,
) -> Path:
    """Write a samples x columns matrix (a latent space, a reconstruction), atomically.

    Parameters
    ----------
    array
        2-D matrix, dense or sparse.
    path
        Target; the format follows the ending: ``.csv`` / ``.tsv`` (optionally ``.gz``;
        row names in the first column, headed ``sample``, column names in the header),
        ``.npy`` (values only), ``.h5ad`` (names in ``obs_names`` / ``var_names``).
    obs_names
        Row names (default ``sample_0000`` ...).
    columns
        Column names (default ``dim_0000`` ...).
    values
        What the values are (e.g. ``"expected counts"``), said in the file: the header of
        a table's row-name column reads ``values: ...``; an h5ad file holds it in
        ``uns["geneae"]["values"]``; ``.npy`` has no place for it.
    obs
        The rows' annotations (e.g. the input's cell types), one row per row of ``array``:
        kept in an h5ad file's ``obs``; tables and ``.npy`` have no place for them.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InputError
        Unknown ending, an array that is not 2-D, or names of the wrong length.
    """
    target = Path(path)
    suffix = suffix_of(target)
    if not suffix:
        raise InputError(
            f"Cannot write {target}: unknown file ending. Use one of {', '.join(WRITE_SUFFIXES)}."
        )
    shape = array.shape
    if len(shape) != 2:
        raise InputError(f"Cannot write {target}: the array has shape {shape}; 2-D is needed.")
    rows = pd.Index(generated_names("sample", shape[0]) if obs_names is None else obs_names)
    cols = pd.Index(generated_names("dim", shape[1]) if columns is None else columns)
    for names, n, what in ((rows, shape[0], "obs_names"), (cols, shape[1], "columns")):
        if len(names) != n:
            raise InputError(
                f"Cannot write {target}: {what} has {len(names)} names for {n} "
                f"{'rows' if what == 'obs_names' else 'columns'} of the array."
            )
    if suffix == ".h5ad":
        with quiet_anndata():
            annotations = pd.DataFrame(index=rows.astype(str))
            if obs is not None:
                if len(obs) != shape[0]:
                    raise InputError(
                        f"Cannot write {target}: obs has {len(obs)} rows for {shape[0]} rows "
                        "of the array."
                    )
                annotations = obs.set_axis(annotations.index).copy()
            adata = ad.AnnData(array, obs=annotations, var=pd.DataFrame(index=cols.astype(str)))
        if values is not None:
            adata.uns["geneae"] = {"values": values}
        return write_h5ad(adata, target)
    dense = array.toarray() if sp.issparse(array) else np.asarray(array)
    with atomic_path(target) as tmp:
        if suffix == ".npy":
            # A file handle, because np.save appends ".npy" to a name not ending in it.
            with open(tmp, "wb") as fh:
                np.save(fh, dense, allow_pickle=False)
        else:
            sep = "\t" if suffix.startswith(".tsv") else ","
            frame = pd.DataFrame(dense, index=rows, columns=cols)
            # The row-name column gets a header (R, spreadsheets and `cut` see a name).
            frame.index.name = "sample" if values is None else f"values: {values}"
            compression = "gzip" if suffix.endswith(".gz") else None
            frame.to_csv(tmp, sep=sep, compression=compression)
    return target
