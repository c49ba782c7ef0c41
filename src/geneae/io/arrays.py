"""NumPy ``.npy`` / ``.npz`` matrices: dense, sparse (``save_npz``), or a sparse one's parts.

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
#: The parts of a compressed sparse matrix saved one by one (``numpy.savez(path,
#: data=m.data, indices=m.indices, indptr=m.indptr, shape=m.shape)``), without scipy's
#: ``format`` entry; rows or columns are told apart by the length of ``indptr``.
_SPARSE_PARTS = {"data", "indices", "indptr", "shape"}
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
    """Read a ``.npz`` of a sparse matrix or of dense arrays.

    A sparse matrix is one saved by ``scipy.sparse.save_npz``, or its parts ``data``,
    ``indices``, ``indptr`` and ``shape`` saved with ``numpy.savez``. For dense archives the
    matrix is ``X`` (or the only array). In either kind a 1-D ``Y`` / ``labels`` array of
    matching length becomes ``obs["Y"]`` / ``obs["labels"]``. ``transpose=True`` reads a
    genes x samples matrix.
    """
    try:
        # Our own handle: np.load leaks its file when the zip directory is corrupt.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if _SPARSE_KEYS <= set(keys):
                x, matrix_keys = sp.load_npz(path), _SPARSE_KEYS | _SPARSE_PARTS
                x = _oriented(_as_matrix(x, path, "the sparse matrix"), transpose)
            elif _SPARSE_PARTS <= set(keys):
                x, matrix_keys = _from_parts(archive, path), _SPARSE_PARTS
                x = _oriented(x, transpose)
            else:
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
                x, matrix_keys = _oriented(x, transpose), {matrix_key}
            obs = _labels(archive, keys, matrix_keys, x.shape[0], path)
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise input_error(
            path,
            f"not a loadable .npz archive ({exc})",
            "Save it with numpy.savez or scipy.sparse.save_npz (object arrays are refused).",
        ) from exc
    return _named(x, obs)


def _from_parts(archive: np.lib.npyio.NpzFile, path: Path) -> sp.csr_matrix:
    """The sparse matrix whose ``data`` / ``indices`` / ``indptr`` / ``shape`` were saved."""
    shape = tuple(int(n) for n in np.asarray(archive["shape"]).ravel())
    n_pointers = len(archive["indptr"])
    if len(shape) != 2:
        raise input_error(
            path,
            f"'shape' is {shape}; the parts of a sparse samples x genes matrix need 2 numbers",
            "Save shape=matrix.shape beside data, indices and indptr.",
        )
    kind = {shape[0] + 1: sp.csr_matrix, shape[1] + 1: sp.csc_matrix}
    if n_pointers not in kind or shape[0] == shape[1]:
        problem = (
            f"a square {shape} matrix's parts do not say whether 'indptr' runs over rows or columns"
            if n_pointers in kind
            else f"'indptr' has {n_pointers} entries, but shape {shape} needs {shape[0] + 1} "
            f"(rows) or {shape[1] + 1} (columns)"
        )
        raise input_error(
            path, problem, "Save the matrix with scipy.sparse.save_npz (it records its format)."
        )
    parts = (archive["data"], archive["indices"], archive["indptr"])
    return _as_matrix(kind[n_pointers](parts, shape=shape), path, "the matrix")  # as CSR


def _labels(
    archive: np.lib.npyio.NpzFile, keys: list[str], taken: set[str], n: int, path: Path
) -> dict[str, np.ndarray]:
    """The 1-D label arrays (``Y``, ``labels``, ...) saved beside the matrix, one per sample."""
    obs = {}
    for key in _LABEL_KEYS:
        if key in keys and key not in taken:
            values = archive[key]
            if values.shape != (n,):
                raise input_error(
                    path,
                    f"labels {key!r} have shape {values.shape} but the matrix has {n} samples",
                    "Store one label per sample.",
                )
            obs[key] = values
    return obs
