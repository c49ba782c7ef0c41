"""Plain HDF5 matrices (the scDeepCluster / scDCC layout) and shared h5py helpers.

The layout is a cells x genes dataset ``X`` with optional integer labels ``Y`` and no
names at all, so names are generated; any other per-cell dataset is kept (``ADT_X`` of
CITE-seq files goes to ``obsm``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae.io.finalize import build_anndata, generated_names
from geneae.io.messages import input_error

logger = logging.getLogger(__name__)

_OBS_NAME_KEYS = ("obs_names", "barcodes", "cell_names", "cells", "cell_ids")
_VAR_NAME_KEYS = ("var_names", "gene_names", "genes", "gene_symbols", "gene_ids", "features")


def decode(values: np.ndarray) -> np.ndarray:
    """HDF5 byte strings as Python strings; other arrays unchanged."""
    values = np.asarray(values)
    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8", errors="replace").astype(object)
    if values.dtype.kind == "O":
        return np.array(
            [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values.ravel()],
            dtype=object,
        ).reshape(values.shape)
    return values


def read_sparse_group(group: h5py.Group, path: Path) -> sp.csr_matrix | sp.csc_matrix:
    """A CSR/CSC matrix stored as data/indices/indptr (h5sparse or anndata encoding).

    Raises
    ------
    InputError
        If the group lacks the arrays or its index arrays disagree with its shape.
    """
    attrs = group.attrs
    kind = attrs.get("h5sparse_format", attrs.get("encoding-type", "csr"))
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    shape = attrs.get("h5sparse_shape", attrs.get("shape"))
    missing = [k for k in ("data", "indices", "indptr") if k not in group]
    if missing or shape is None:
        raise input_error(
            path,
            f"sparse matrix group {group.name!r} lacks {', '.join(missing) or 'a shape attribute'}",
            "Re-write the file with anndata or h5py (data, indices, indptr and a shape).",
        )
    shape = tuple(int(s) for s in shape)
    cls = sp.csc_matrix if kind.startswith("csc") else sp.csr_matrix
    try:
        return cls((group["data"][()], group["indices"][()], group["indptr"][()]), shape=shape)
    except ValueError as exc:
        raise input_error(
            path,
            f"sparse matrix group {group.name!r} is inconsistent ({exc})",
            "The file is probably corrupt; re-export it.",
        ) from exc


def _read_x(node: h5py.Dataset | h5py.Group, path: Path) -> np.ndarray | sp.spmatrix:
    if isinstance(node, h5py.Group):
        return read_sparse_group(node, path)
    if node.ndim != 2:
        raise input_error(
            path,
            f"dataset 'X' has shape {node.shape}; a cells x genes matrix (2-D) is needed",
            "Store X as a 2-D cells x genes array.",
        )
    if node.dtype.kind in "iuf":
        # Convert while reading: a float64 matrix never exists in memory twice.
        return node.astype(np.float32)[()]
    return node[()]


def read_plain_h5(path: Path) -> ad.AnnData:
    """Read an HDF5 file with a cells x genes ``X`` and optional labels ``Y``.

    Parameters
    ----------
    path
        The ``.h5`` file.

    Returns
    -------
    anndata.AnnData
        ``X`` as stored (dense or sparse), generated names ``cell_0000`` / ``gene_0000``
        unless the file has name datasets, ``Y`` and other per-cell vectors in ``obs``,
        per-cell 2-D datasets in ``obsm``.
    """
    try:
        with h5py.File(path, "r") as f:
            if "X" not in f:
                raise input_error(
                    path,
                    f"no dataset 'X' (top-level keys: {list(f.keys())})",
                    "Store the samples x genes matrix as 'X', or give the file its real format's "
                    "extension (fmt= in Python).",
                )
            x = _read_x(f["X"], path)
            n_cells, n_genes = x.shape
            obs_names = generated_names("cell", n_cells)
            var_names = generated_names("gene", n_genes)
            obs: dict[str, np.ndarray] = {}
            obsm: dict[str, np.ndarray] = {}
            for key, node in f.items():
                if key == "X" or not isinstance(node, h5py.Dataset):
                    continue
                shape = node.shape
                if key in _OBS_NAME_KEYS and shape == (n_cells,):
                    obs_names = pd.Index(decode(node[()])).astype(str)
                elif key in _VAR_NAME_KEYS and shape == (n_genes,):
                    var_names = pd.Index(decode(node[()])).astype(str)
                elif len(shape) == 1 and shape[0] == n_cells:
                    obs[key] = decode(node[()])
                elif len(shape) == 2 and shape[0] == n_cells:
                    obsm[key] = node[()]
                elif key == "Y":
                    raise input_error(
                        path,
                        f"labels 'Y' have shape {shape} but X has {n_cells} cells",
                        "Store one label per cell in 'Y', in the order of X's rows.",
                    )
                else:
                    logger.info("%s: ignoring dataset %r of shape %s", path, key, shape)
    except OSError as exc:
        raise input_error(
            path,
            f"the HDF5 file cannot be read ({exc})",
            "The file is probably corrupt or truncated; re-download or re-export it.",
        ) from exc
    adata = build_anndata(x, obs_names, var_names, obs=obs)
    for key, value in obsm.items():
        adata.obsm[key] = value
    return adata
