"""NumPy ``.npy`` / ``.npz`` matrices (dense, or scipy sparse saved with ``save_npz``).

Arrays carry no names, so names are generated; labels and gene names come from side files
handled by :func:`geneae.io.finalize.finalize`. Pickled object arrays are refused: loading
data must never execute code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from geneae.errors import InputError
from geneae.io.finalize import build_anndata, generated_names
from geneae.io.messages import input_error

_SPARSE_KEYS = {"format", "shape", "data"}
_MATRIX_KEYS = ("X", "x", "data", "matrix", "counts", "arr_0")
_LABEL_KEYS = ("Y", "y", "labels", "label")


def _as_matrix(array: object, path: Path, what: str) -> np.ndarray | sp.csr_matrix:
    if sp.issparse(array):
        return sp.csr_matrix(array)
    array = np.asarray(array)
    if array.ndim != 2:
        raise input_error(
            path,
            f"{what} has shape {array.shape}; a 2-D samples x genes matrix is needed",
            "Save a 2-D array (reshape a single sample to (1, n_genes)).",
        )
    if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
        raise input_error(
            path, f"{what} holds {array.dtype} values, not numbers", "Save a numeric array."
        )
    return array


def _named(x: np.ndarray | sp.csr_matrix, obs: dict[str, np.ndarray] | None = None) -> ad.AnnData:
    return build_anndata(
        x, generated_names("sample", x.shape[0]), generated_names("gene", x.shape[1]), obs=obs
    )


def _oriented(x: np.ndarray | sp.csr_matrix, transpose: bool) -> np.ndarray | sp.csr_matrix:
    """Samples x genes: a genes x samples array (``transpose=True``) is turned around."""
    if not transpose:
        return x
    return sp.csr_matrix(x.T) if sp.issparse(x) else np.ascontiguousarray(x.T)


def read_npy(path: Path, *, transpose: bool = False) -> ad.AnnData:
    """Read a 2-D samples x genes array saved with ``numpy.save``.

    ``transpose=True`` reads a genes x samples array.
    """
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise input_error(
            path,
            f"not a loadable .npy array ({exc})",
            "Save a numeric array with numpy.save (object arrays are refused: they need "
            "pickle, which can run code).",
        ) from exc
    return _named(_oriented(_as_matrix(array, path, "the array"), transpose))


def read_npz(path: Path, *, transpose: bool = False) -> ad.AnnData:
    """Read a ``.npz``: a scipy sparse matrix from ``save_npz`` or dense arrays from ``savez``.

    For dense archives the matrix is ``X`` (or the only array); a 1-D ``Y`` / ``labels``
    array of matching length becomes ``obs["Y"]`` / ``obs["labels"]``. ``transpose=True``
    reads a genes x samples matrix.
    """
    try:
        # Our own handle: np.load leaks its file when the zip directory is corrupt.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if _SPARSE_KEYS <= set(keys):
                x = sp.load_npz(path)
                return _named(_oriented(_as_matrix(x, path, "the sparse matrix"), transpose))
            matrix_key = next((k for k in _MATRIX_KEYS if k in keys), None)
            if matrix_key is None and len(keys) == 1:
                matrix_key = keys[0]
            if matrix_key is None:
                raise input_error(
                    path,
                    f"cannot tell which array is the matrix (arrays: {keys or 'none'})",
                    "Name the samples x genes matrix 'X' (numpy.savez(path, X=matrix)).",
                )
            x = _as_matrix(archive[matrix_key], path, f"array {matrix_key!r}")
            x = _oriented(x, transpose)
            obs = {}
            for key in _LABEL_KEYS:
                if key in keys and key != matrix_key:
                    values = archive[key]
                    if values.shape != (x.shape[0],):
                        raise input_error(
                            path,
                            f"labels {key!r} have shape {values.shape} but the matrix has "
                            f"{x.shape[0]} samples",
                            "Store one label per sample.",
                        )
                    obs[key] = values
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise input_error(
            path,
            f"not a loadable .npz archive ({exc})",
            "Save it with numpy.savez or scipy.sparse.save_npz (object arrays are refused).",
        ) from exc
    return _named(x, obs)
