"""10x Genomics Cell Ranger output: feature-barcode ``.h5`` files (v2 and v3) and mtx folders.

Written on h5py / scipy directly rather than through scanpy: it avoids importing scanpy
(seconds) for ``geneae info``, and lets every malformed file end in an error that names
the dataset at fault instead of a KeyError.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from geneae.io.detect import find_mtx
from geneae.io.finalize import build_anndata
from geneae.io.hdf5 import decode
from geneae.io.messages import input_error
from geneae.io.textfile import is_gzipped

logger = logging.getLogger(__name__)

GENE_EXPRESSION = "Gene Expression"
_V2_KEYS = {"barcodes", "data", "indices", "indptr", "shape", "genes"}
_V3_FEATURE_SKIP = {"id", "name", "feature_type", "_all_tag_keys"}


def _cells_by_genes(group: h5py.Group, path: Path) -> sp.csr_matrix:
    """The CSC genes x cells matrix of a 10x group, read as CSR cells x genes (no copy)."""
    missing = sorted({"data", "indices", "indptr", "shape"} - set(group))
    if missing:
        raise input_error(
            path,
            f"10x group {group.name!r} lacks {', '.join(missing)}",
            "The file is incomplete; re-export it from Cell Ranger.",
        )
    n_genes, n_cells = (int(s) for s in group["shape"][()][:2])
    data, indices, indptr = group["data"][()], group["indices"][()], group["indptr"][()]
    if len(indptr) != n_cells + 1 or len(data) != len(indices) or indptr[-1] != len(data):
        raise input_error(
            path,
            f"10x group {group.name!r} is inconsistent (shape {n_genes} x {n_cells}, "
            f"{len(indptr)} indptr, {len(data)} values, {len(indices)} indices)",
            "The file is probably truncated or corrupt; re-export it from Cell Ranger.",
        )
    try:
        return sp.csr_matrix((data, indices, indptr), shape=(n_cells, n_genes))
    except ValueError as exc:
        raise input_error(
            path, f"10x group {group.name!r} is inconsistent ({exc})", "Re-export the file."
        ) from exc


def _strings(group: h5py.Group, key: str, path: Path) -> np.ndarray:
    if key not in group:
        raise input_error(
            path,
            f"10x group {group.name!r} lacks {key!r}",
            "The file is incomplete; re-export it from Cell Ranger.",
        )
    return decode(group[key][()]).astype(str)


def _read_v3(f: h5py.File, path: Path) -> ad.AnnData:
    matrix = f["matrix"]
    x = _cells_by_genes(matrix, path)
    barcodes = _strings(matrix, "barcodes", path)
    if "features" not in matrix:
        raise input_error(path, "10x group 'matrix' lacks 'features'", "Re-export the file.")
    features = matrix["features"]
    var: dict[str, np.ndarray] = {"gene_ids": _strings(features, "id", path)}
    names = _strings(features, "name", path) if "name" in features else var["gene_ids"]
    if "feature_type" in features:
        var["feature_types"] = _strings(features, "feature_type", path)
    for key, node in features.items():
        if key not in _V3_FEATURE_SKIP and isinstance(node, h5py.Dataset):
            if node.shape == (x.shape[1],):
                var[key] = decode(node[()])
    return build_anndata(x, barcodes, names, var=var)


def _read_v2(f: h5py.File, path: Path) -> ad.AnnData:
    genomes = [k for k in f if isinstance(f[k], h5py.Group) and _V2_KEYS <= set(f[k])]
    if not genomes:
        raise input_error(
            path,
            f"no 10x layout (top-level keys: {list(f.keys())})",
            "Expected Cell Ranger v3 ('matrix' group) or v2 (one group per genome with "
            "barcodes, genes, data, indices, indptr, shape).",
        )
    parts, barcodes = [], None
    for genome in genomes:
        group = f[genome]
        x = _cells_by_genes(group, path)
        these = _strings(group, "barcodes", path)
        if barcodes is not None and not np.array_equal(barcodes, these):
            raise input_error(
                path,
                f"genomes {genomes} have different cell barcodes",
                "Read one genome at a time (split the file), or re-export with Cell Ranger v3.",
            )
        barcodes = these
        ids = _strings(group, "genes", path)
        names = _strings(group, "gene_names", path) if "gene_names" in group else ids
        parts.append((x, ids, names, genome))
    x = sp.hstack([p[0] for p in parts], format="csr")
    var = {
        "gene_ids": np.concatenate([p[1] for p in parts]),
        "genome": np.concatenate([[p[3]] * len(p[1]) for p in parts]),
    }
    return build_anndata(x, barcodes, np.concatenate([p[2] for p in parts]), var=var)


def _gene_expression_only(adata: ad.AnnData, path: Path) -> ad.AnnData:
    """Keep 'Gene Expression' features: antibody / CRISPR counts are not transcriptome."""
    if "feature_types" not in adata.var:
        return adata
    keep = (adata.var["feature_types"] == GENE_EXPRESSION).to_numpy()
    if keep.all():
        return adata
    if not keep.any():
        types = sorted(set(adata.var["feature_types"]))
        raise input_error(
            path,
            f"no {GENE_EXPRESSION!r} features (feature types: {', '.join(types)})",
            "This file holds no transcriptome counts.",
        )
    logger.info("%s: keeping %d of %d features (Gene Expression)", path, keep.sum(), keep.size)
    return adata[:, keep].copy()


def read_10x_h5(path: Path) -> ad.AnnData:
    """Read a Cell Ranger feature-barcode matrix ``.h5`` (v3 or v2 layout).

    Parameters
    ----------
    path
        The ``.h5`` file.

    Returns
    -------
    anndata.AnnData
        Cells x genes CSR counts; obs names are barcodes, var names gene symbols, with
        ``var["gene_ids"]`` (and ``feature_types`` / ``genome`` where stored). Only
        'Gene Expression' features are kept. Several v2 genomes are joined side by side.
    """
    try:
        with h5py.File(path, "r") as f:
            adata = _read_v3(f, path) if "matrix" in f else _read_v2(f, path)
    except OSError as exc:
        raise input_error(
            path,
            f"the HDF5 file cannot be read ({exc})",
            "The file is probably corrupt or truncated; re-download or re-export it.",
        ) from exc
    return _gene_expression_only(adata, path)


def _companion(folder: Path, prefix: str, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for name in (f"{prefix}{stem}", f"{prefix}{stem}.gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path, sep="\t", header=None, dtype=str, keep_default_na=False, compression="infer"
        )
    except (ValueError, OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise input_error(path, f"cannot parse this TSV file ({exc})", "Re-export it.") from exc


def read_10x_mtx(path: Path) -> ad.AnnData:
    """Read a Cell Ranger mtx folder (matrix.mtx, barcodes.tsv, features.tsv or genes.tsv).

    Parameters
    ----------
    path
        The folder, or its ``matrix.mtx[.gz]`` file. File-name prefixes as on GEO
        (``GSM123_matrix.mtx.gz`` with ``GSM123_barcodes.tsv.gz``) are followed.

    Returns
    -------
    anndata.AnnData
        Cells x genes CSR counts named as in :func:`read_10x_h5`.
    """
    matrix_path = find_mtx(path)
    folder = matrix_path.parent
    cut = matrix_path.name.lower().find("matrix.mtx")
    prefix = matrix_path.name[:cut] if cut > 0 else ""  # GEO-style "GSM123_matrix.mtx.gz"
    barcodes_path = _companion(folder, prefix, ("barcodes.tsv",))
    features_path = _companion(folder, prefix, ("features.tsv", "genes.tsv"))
    if barcodes_path is None or features_path is None:
        wanted = [] if barcodes_path else [f"{prefix}barcodes.tsv[.gz]"]
        wanted += [] if features_path else [f"{prefix}features.tsv[.gz] or {prefix}genes.tsv"]
        raise input_error(
            matrix_path,
            f"{' and '.join(wanted)} not found beside this matrix file (in {folder})",
            "Put the barcodes and features files written with it into the same folder.",
        )
    try:
        opener = gzip.open if is_gzipped(matrix_path) else open
        with opener(matrix_path, "rb") as fh:
            genes_by_cells = scipy.io.mmread(fh)
    except (ValueError, OSError, EOFError, IndexError, TypeError) as exc:
        raise input_error(
            matrix_path,
            f"not a readable Matrix Market file ({exc})",
            "Re-export it (it must start with '%%MatrixMarket matrix coordinate').",
        ) from exc
    if not sp.issparse(genes_by_cells):
        genes_by_cells = sp.coo_matrix(genes_by_cells)
    x = sp.csr_matrix(genes_by_cells.T)
    barcodes = _read_tsv(barcodes_path)
    features = _read_tsv(features_path)
    for table, file, n, what in (
        (barcodes, barcodes_path, x.shape[0], "cells (matrix columns)"),
        (features, features_path, x.shape[1], "genes (matrix rows)"),
    ):
        if len(table) != n:
            raise input_error(
                file,
                f"{len(table)} lines but {matrix_path.name} has {n} {what}",
                "Use the barcodes / features files written together with this matrix.",
            )
    var = {"gene_ids": features[0].to_numpy()}
    names = features[1].to_numpy() if features.shape[1] > 1 else var["gene_ids"]
    if features.shape[1] > 2:
        var["feature_types"] = features[2].to_numpy()
    adata = build_anndata(x, barcodes[0].to_numpy(), names, var=var)
    return _gene_expression_only(adata, matrix_path)
