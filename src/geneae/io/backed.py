"""Expression data left on disk: an ``.h5ad`` file or a ``.zarr`` store, read by rows.

Out-of-core training (docs/scaling.md) never holds the whole matrix. :func:`open_backed`
reads a store's cell and gene tables, checks the matrix's layout (CSR or dense; its
``indptr`` is read once and checked against the stored values), and returns a
:class:`BackedData` whose :meth:`~BackedData.rows` reads one contiguous range of rows:
for CSR a slice of ``indptr``, then one contiguous read of ``indices`` and ``data``; for a
dense matrix one row slice. :func:`matrix_nbytes` estimates the matrix's size in memory
from the stored arrays' shapes and types, without reading them. Only h5py's and zarr's
public array APIs and :func:`anndata.io.read_elem` are used.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae.errors import InputError
from geneae.io.finalize import NO_X_FIX, _make_names_unique, _resolve_labels, quiet_anndata
from geneae.io.labels_file import Labels
from geneae.io.logged_counts import say_counts_from_log
from geneae.io.messages import input_error
from geneae.io.raw import RAW_COUNTS_NOTE, raw_gene_columns, use_raw_values
from geneae.logcounts import counts_of, counts_under_log
from geneae.logscale import LogScale
from geneae.matrix_values import is_count_matrix, value_type, values_of

__all__ = ["BackedData", "OnDiskMatrix", "is_store", "matrix_nbytes", "open_backed"]

logger = logging.getLogger(__name__)

STORE_SUFFIXES = (".h5ad", ".zarr")
#: Rows of X and of .raw read to tell whether .raw holds the counts of X's values.
PROBE_ROWS = 1024
REWRITE = "Re-write it with a current anndata (adata.write_h5ad / adata.write_zarr)."


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file or store that can be read a chunk of rows at a time."""
    path = Path(path)
    if path.suffix == ".h5ad":
        return path.is_file()
    return path.suffix == ".zarr" and path.is_dir()


@dataclass
class OnDiskMatrix:
    """A cells x genes matrix on disk: CSR (``indptr`` in memory) or dense.

    Attributes
    ----------
    path
        The store (for messages).
    shape
        (cells, genes).
    indptr
        CSR row pointers (int64, in memory), or None for a dense matrix.
    data, indices
        The CSR value and column arrays (h5py datasets or zarr arrays).
    dense
        The dense array on disk, or None for CSR.
    columns
        The stored columns :meth:`rows` returns, in this order (None: all of them), e.g. the
        genes of ``X`` among the more genes of ``.raw``.
    log_of_counts
        The log whose whole numbers the stored values are, where :meth:`rows` gives the
        counts back (:func:`geneae.logcounts.counts_of`), else None.
    """

    path: Path
    shape: tuple[int, int]
    indptr: np.ndarray | None = None
    data: Any = None
    indices: Any = None
    dense: Any = None
    columns: np.ndarray | None = None
    log_of_counts: LogScale | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of the matrix in memory, from the stored arrays' shapes and types."""
        if self.dense is not None:
            return int(np.prod(self.dense.shape)) * self.dense.dtype.itemsize
        assert self.indptr is not None
        values = int(self.data.shape[0])
        return values * (self.data.dtype.itemsize + self.indices.dtype.itemsize) + int(
            self.indptr.nbytes
        )

    @property
    def n_columns(self) -> int:
        """Columns :meth:`rows` returns: ``columns`` where set, else all stored ones."""
        return self.shape[1] if self.columns is None else len(self.columns)

    def stored(self, start: int, stop: int) -> int:
        """Stored values of rows ``start:stop`` (all values for a dense matrix)."""
        if self.indptr is None:
            return (stop - start) * self.shape[1]
        return int(self.indptr[stop] - self.indptr[start])

    def rows(self, start: int, stop: int) -> np.ndarray | sp.csr_matrix:
        """Rows ``start:stop`` as float32 (CSR with int32 indices, or dense), ``columns`` only."""
        block = self._stored_rows(start, stop)
        if self.log_of_counts is not None:
            if sp.issparse(block):
                block.data = counts_of(block.data, self.log_of_counts)
            else:
                block = counts_of(block, self.log_of_counts)
        if self.columns is None:
            return block
        return block[:, self.columns]

    def _stored_rows(self, start: int, stop: int) -> np.ndarray | sp.csr_matrix:
        try:
            if self.dense is not None:
                return np.asarray(self.dense[start:stop], dtype=np.float32)
            assert self.indptr is not None
            first, last = int(self.indptr[start]), int(self.indptr[stop])
            data = np.asarray(self.data[first:last], dtype=np.float32)
            indices = np.asarray(self.indices[first:last], dtype=np.int32)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise input_error(
                self.path, f"rows {start}-{stop} of the matrix cannot be read ({exc})", REWRITE
            ) from exc
        indptr = (self.indptr[start : stop + 1] - first).astype(np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.shape[1]):
            raise input_error(
                self.path,
                f"rows {start}-{stop} hold column indices outside 0-{self.shape[1] - 1}",
                REWRITE,
            )
        return sp.csr_matrix((data, indices, indptr), shape=(stop - start, self.shape[1]))


@dataclass
class BackedData:
    """A store's cell and gene tables in memory, its matrices on disk.

    Attributes
    ----------
    path
        The store.
    obs, var
        The cell and gene tables (names unique; ``obs["label"]`` when labels were found).
    x
        The matrix the model reads (``X``, or the layer asked for).
    counts
        ``layers["counts"]`` when the store has that layer (and it is not ``x``); else the
        counts of ``x``'s genes in ``.raw`` when ``x`` holds other values (scanpy's place
        for them, as :func:`geneae.io.read` takes them); else None.
    handle
        The open h5py file or zarr group (closed by :meth:`close`).
    """

    path: Path
    obs: pd.DataFrame
    var: pd.DataFrame
    x: OnDiskMatrix
    counts: OnDiskMatrix | None
    handle: Any

    @property
    def n_obs(self) -> int:
        return self.x.shape[0]

    @property
    def n_vars(self) -> int:
        return self.x.n_columns  # .raw's matrix may hold more genes than X

    @property
    def nbytes(self) -> int:
        """Bytes of the matrices a model reads, were they all in memory."""
        return self.x.nbytes + (self.counts.nbytes if self.counts is not None else 0)

    def rows(self, start: int, stop: int) -> ad.AnnData:
        """Rows ``start:stop`` in memory.

        ``X``, ``layers["counts"]`` (when the store has that layer), obs and var.
        """
        chunk = ad.AnnData(X=self.x.rows(start, stop), obs=self.obs.iloc[start:stop], var=self.var)
        if self.counts is not None:
            chunk.layers["counts"] = self.counts.rows(start, stop)
        return chunk

    def chunks(self, rows_per_chunk: int) -> Iterator[tuple[int, ad.AnnData]]:
        """Every row once, in order: (first row, rows in memory), ``rows_per_chunk`` each."""
        for start in range(0, self.n_obs, rows_per_chunk):
            yield start, self.rows(start, min(start + rows_per_chunk, self.n_obs))

    def take(self, rows: np.ndarray, rows_per_chunk: int) -> ad.AnnData:
        """The sorted ``rows`` in memory, read chunk by chunk (a bounded subsample)."""
        parts = []
        for start, chunk in self.chunks(rows_per_chunk):
            stop = start + chunk.n_obs
            local = rows[(rows >= start) & (rows < stop)] - start
            if local.size:
                parts.append(chunk[local].copy())
        with quiet_anndata():
            return ad.concat(parts, merge="first") if parts else self.rows(0, 0)

    def close(self) -> None:
        close = getattr(self.handle, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> BackedData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_backed(
    path: str | os.PathLike[str],
    *,
    layer: str | None = None,
    labels: Labels | None = None,
    labels_required: bool = True,
    use_raw: bool | None = None,
) -> BackedData:
    """Open an ``.h5ad`` file or ``.zarr`` store for reading by rows.

    Parameters
    ----------
    path
        The store.
    layer
        Read ``layers[layer]`` as the matrix instead of ``X``.
    labels, labels_required
        As in :func:`geneae.io.read`: a label column (or labels file) put into
        ``obs["label"]``; None looks for the usual label columns.
    use_raw
        As in :func:`geneae.io.read`: ``.raw``'s values of X's genes read as X.

    Raises
    ------
    InputError
        The store cannot be opened, has no such matrix, stores it by columns (CSC), or its
        arrays disagree (a damaged file).
    """
    path = Path(path)
    handle = _open(path)
    try:
        obs, var = _frame(handle, "obs", path), _frame(handle, "var", path)
        name = "X" if layer is None else f"layers/{layer}"
        layers = list(handle["layers"]) if "layers" in handle else []
        if name == "X" and name not in handle and "counts" in layers:
            name, layer = "layers/counts", "counts"  # as the in-memory reader: counts as X
        if name not in handle:
            raise input_error(
                path,
                f"the store has no {name} matrix (layers: {', '.join(layers) or 'none'})",
                NO_X_FIX,
            )
        x = _matrix(handle[name], path, name, (len(obs), len(var)))
        counts = None
        if layer != "counts" and "counts" in layers:
            counts = _matrix(handle["layers/counts"], path, "layers/counts", x.shape)
        meta = ad.AnnData(obs=obs, var=var)
        _make_names_unique(meta, path)
        if layer is None:
            x = _raw_values(handle, path, meta.var_names, x, use_raw) or x
        if counts is None and layer is None:
            counts = _raw_counts(handle, path, meta.var_names, x) or _log_counts(path, x)
        if not labels_required and isinstance(labels, str) and labels not in meta.obs:
            labels = None
        values, _ = _resolve_labels(meta, path, "h5ad", labels)
        if values is not None:
            meta.obs["label"] = values
    except Exception:
        _close(handle)
        raise
    return BackedData(path, meta.obs, meta.var, x, counts, handle)


def _raw_matrix(handle: Any, path: Path, genes: pd.Index, n_obs: int) -> OnDiskMatrix | None:
    """``raw/X`` for the genes of ``X``, in their order, when ``.raw`` has every one once.

    See :func:`geneae.io.raw.raw_gene_columns`.
    """
    if not all(key in handle for key in ("raw", "raw/X", "raw/var")):
        return None
    names = _frame(handle, "raw/var", path).index
    columns = raw_gene_columns(names, genes)
    if columns is None:
        return None
    raw = _matrix(handle["raw/X"], path, "raw/X", (n_obs, len(names)))
    raw.columns = columns
    return raw


def _raw_values(
    handle: Any, path: Path, genes: pd.Index, x: OnDiskMatrix, use_raw: bool | None
) -> OnDiskMatrix | None:
    """``raw/X`` of X's genes when it replaces X (:func:`geneae.io.raw.use_raw_values`).

    As the in-memory reader, the kinds of values judged on the first :data:`PROBE_ROWS`
    rows of each.
    """
    raw = None if use_raw is False else _raw_matrix(handle, path, genes, x.shape[0])
    probe = min(x.shape[0], PROBE_ROWS)
    taken = use_raw_values(
        path,
        use_raw,
        raw is not None,
        lambda: value_type(x.rows(0, probe)),
        lambda: value_type(raw.rows(0, probe)),
    )
    return raw if taken else None


def _raw_counts(handle: Any, path: Path, genes: pd.Index, x: OnDiskMatrix) -> OnDiskMatrix | None:
    """``raw/X`` for the genes of ``X``, in their order, when it holds their counts.

    As the in-memory reader: only when ``X`` holds no counts and ``.raw`` has every gene
    of ``X`` (:func:`geneae.io.raw.raw_gene_columns`). Whether the values are counts
    is judged on the first :data:`PROBE_ROWS` rows of each; the pass over every row that
    describes the data (:class:`geneae.facts.FactsAccumulator`) then checks all of
    ``raw/X``.
    """
    raw = _raw_matrix(handle, path, genes, x.shape[0])
    if raw is None:
        return None
    probe = min(x.shape[0], PROBE_ROWS)
    if is_count_matrix(x.rows(0, probe)) or not is_count_matrix(raw.rows(0, probe)):
        return None
    logger.info(RAW_COUNTS_NOTE, path)
    return raw


def _log_counts(path: Path, x: OnDiskMatrix) -> OnDiskMatrix | None:
    """``x`` read as the counts whose logs it holds (:mod:`geneae.io.logged_counts`).

    As the in-memory reader, where ``x`` holds no counts itself; judged on the first
    :data:`PROBE_ROWS` rows. The pass over every row that describes the data
    (:class:`geneae.facts.FactsAccumulator`) then checks that every value of every row is
    the log of a whole number (the others keep their fractions there).
    """
    probe = x.rows(0, min(x.shape[0], PROBE_ROWS))
    if is_count_matrix(probe):
        return None
    found = counts_under_log(values_of(probe))
    if found is None:
        return None
    say_counts_from_log(path, found[0])
    return dataclasses.replace(x, log_of_counts=found[0])


def matrix_nbytes(path: str | os.PathLike[str], *, layer: str | None = None) -> int:
    """Bytes the matrices of a store would take in memory (read from their shapes only)."""
    with open_backed(path, layer=layer, labels_required=False) as data:
        return data.nbytes


def _open(path: Path) -> Any:
    try:
        if path.suffix == ".zarr" or path.is_dir():
            import zarr

            return zarr.open_group(str(path), mode="r")
        import h5py

        return h5py.File(path, "r")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        kind = "zarr store" if path.suffix == ".zarr" else "HDF5 (.h5ad) file"
        raise input_error(path, f"not a readable {kind} ({exc})", REWRITE) from exc
    except Exception as exc:  # noqa: BLE001 - zarr raises its own error types
        raise input_error(path, f"not a readable store ({exc})", REWRITE) from exc


def _close(handle: Any) -> None:
    close = getattr(handle, "close", None)
    if close is not None:
        close()


def _frame(handle: Any, key: str, path: Path) -> pd.DataFrame:
    if key not in handle:
        raise input_error(path, f"the store has no {key} table", REWRITE)
    try:
        with quiet_anndata():
            frame = ad.io.read_elem(handle[key])
    except Exception as exc:  # noqa: BLE001 - anndata raises many types for odd layouts
        raise input_error(path, f"its {key} table cannot be read ({exc})", REWRITE) from exc
    frame.index = frame.index.astype(str)
    return frame


def _matrix(node: Any, path: Path, name: str, shape: tuple[int, int]) -> OnDiskMatrix:
    """The matrix ``node`` (a group holding CSR arrays, or a dense array), checked."""
    attrs = dict(node.attrs)
    encoding = str(attrs.get("encoding-type", ""))
    if hasattr(node, "shape") and not hasattr(node, "keys"):  # a dense array
        if tuple(node.shape) != shape:
            raise _damaged(path, f"{name} has shape {tuple(node.shape)}, the tables {shape}")
        return OnDiskMatrix(path, shape, dense=node)
    if encoding == "csc_matrix":
        raise input_error(
            path,
            f"{name} is stored by columns (CSC); reading chunks of cells needs rows (CSR)",
            "Convert it once: adata.X = adata.X.tocsr(), then write the file again.",
        )
    if encoding != "csr_matrix" or not all(k in node for k in ("data", "indices", "indptr")):
        raise _damaged(path, f"{name} is neither a dense array nor a CSR matrix")
    stored_shape = tuple(int(s) for s in attrs.get("shape", shape))
    if stored_shape != shape:
        raise _damaged(path, f"{name} has shape {stored_shape}, the tables {shape}")
    try:
        indptr = np.asarray(node["indptr"][:], dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise _damaged(path, f"{name}/indptr cannot be read ({exc})") from exc
    data, indices = node["data"], node["indices"]
    n_values = int(data.shape[0])
    if (
        indptr.shape != (shape[0] + 1,)
        or indptr[0] != 0
        or indptr[-1] != n_values
        or int(indices.shape[0]) != n_values
        or np.any(np.diff(indptr) < 0)
    ):
        raise _damaged(path, f"the arrays of {name} disagree (indptr, indices, data)")
    return OnDiskMatrix(path, shape, indptr=indptr, data=data, indices=indices)


def _damaged(path: Path, problem: str) -> InputError:
    return input_error(path, f"the file is damaged: {problem}", REWRITE)
