"""Loom files (velocyto, the Human Cell Atlas, loompy): genes x cells HDF5 matrices.

A ``.loom`` file holds ``/matrix`` (genes x cells, dense and chunked), ``/row_attrs`` (one
array per gene attribute), ``/col_attrs`` (one per cell attribute) and optional
``/layers`` of the same shape (velocyto: ``spliced``, ``unspliced``, ``ambiguous``). The
matrix is read in blocks of cells into a sparse cells x genes matrix, so a file never
takes its dense size in memory. Gene names come from ``row_attrs`` ``Gene`` (loompy's
convention) or the usual alternatives, cell names from ``col_attrs`` ``CellID``; every
other one-dimensional attribute becomes a column of ``var`` / ``obs`` (a ``cell_type``
column is found as labels by itself; name another, e.g. ``--labels ClusterName``).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import scipy.sparse as sp

from geneae.io.finalize import build_anndata, generated_names
from geneae.io.hdf5 import decode
from geneae.io.messages import input_error

__all__ = ["read_loom"]

#: Cells read from the matrix at once (genes x this many values in memory, dense).
BLOCK_CELLS = 2048
GENE_NAME_KEYS = ("Gene", "gene", "Genes", "gene_names", "var_names", "Accession")
CELL_NAME_KEYS = ("CellID", "cell_id", "CellIDs", "obs_names", "cell_names", "barcode")


def read_loom(path: Path) -> ad.AnnData:
    """Read a ``.loom`` file as cells x genes (sparse float32 ``X``), with its attributes."""
    try:
        with h5py.File(path, "r") as f:
            matrix = f.get("matrix")
            if not isinstance(matrix, h5py.Dataset) or matrix.ndim != 2:
                raise input_error(
                    path,
                    "a loom file needs a two-dimensional /matrix dataset (genes x cells)",
                    "Write it again with loompy or scanpy (adata.write_loom).",
                )
            n_genes, n_cells = (int(n) for n in matrix.shape)
            x = _cells_by_genes(matrix, n_cells)
            genes = _attributes(f, "row_attrs", n_genes, path)
            cells = _attributes(f, "col_attrs", n_cells, path)
    except OSError as exc:
        raise input_error(
            path,
            f"the loom file cannot be read ({exc})",
            "The file is probably corrupt or truncated; re-download or re-export it.",
        ) from exc
    var_names = _names(genes, GENE_NAME_KEYS, "gene", n_genes)
    obs_names = _names(cells, CELL_NAME_KEYS, "cell", n_cells)
    return build_anndata(x, obs_names, var_names, obs=cells, var=genes)


def _cells_by_genes(matrix: h5py.Dataset, n_cells: int) -> sp.csr_matrix:
    """The genes x cells dataset as a cells x genes CSR matrix, read a block of cells at a time."""
    blocks = []
    for start in range(0, n_cells, BLOCK_CELLS):
        block = np.asarray(matrix[:, start : min(start + BLOCK_CELLS, n_cells)], dtype=np.float32)
        blocks.append(sp.csr_matrix(block.T))
    if not blocks:
        return sp.csr_matrix((0, int(matrix.shape[0])), dtype=np.float32)
    return sp.vstack(blocks, format="csr")


def _attributes(f: h5py.File, group: str, n: int, path: Path) -> dict[str, np.ndarray]:
    """The one-dimensional attributes of length ``n`` in ``group`` (others are skipped)."""
    node = f.get(group)
    if node is None:
        return {}
    if not isinstance(node, h5py.Group):
        raise input_error(path, f"/{group} is not a group", "Write it again with loompy.")
    found = {}
    for key, dataset in node.items():
        if isinstance(dataset, h5py.Dataset) and dataset.shape == (n,):
            found[key] = decode(dataset[()])
    return found


def _names(attributes: dict[str, np.ndarray], keys: tuple[str, ...], kind: str, n: int) -> list:
    """Names from the first attribute of ``keys`` that holds text (taken out of the table)."""
    for key in keys:
        values = attributes.get(key)
        if values is not None and values.dtype.kind in "OU":
            del attributes[key]
            return [str(v) for v in values]
    return generated_names(kind, n)
