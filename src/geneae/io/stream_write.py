"""A matrix written to a file a block of rows at a time, atomically (too large for memory).

The streaming counterpart of :func:`geneae.io.write_matrix`, for results of data read out
of core (a reconstruction, cells x genes, of a file beyond ``train.memory_budget_gb``):
:func:`row_blocks_writer` opens the file and takes each block of rows as it is computed,
so memory holds one block, never the matrix. Two formats can be filled by rows on disk:

- ``.h5ad``: the same file :func:`~geneae.io.write_matrix` writes (obs names, var names,
  ``uns["geneae"]["values"]``), with ``X`` a dense float32 HDF5 dataset (gzip, chunked by
  rows) that h5py fills block by block; ``anndata.read_h5ad`` reads it as usual.
- ``.npy``: a float32 array filled through :func:`numpy.lib.format.open_memmap`.

CSV / TSV tables are refused (:func:`check_streamable`): a text table of millions of cells x
thousands of genes is no way to keep such a matrix. Like every geneae writer the file is
written under a temporary name beside the target and renamed into place only once every
row is in (:func:`geneae._atomic.atomic_path`): a failure midway leaves no file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd

from geneae._atomic import atomic_path
from geneae.errors import InputError
from geneae.io.finalize import quiet_anndata
from geneae.io.write import WRITE_SUFFIXES, suffix_of

STREAM_SUFFIXES: tuple[str, ...] = (".h5ad", ".npy")
"""File endings :func:`row_blocks_writer` writes."""

# anndata's on-disk specification of a dense array (what ``write_h5ad`` gives ``X``).
DENSE_ENCODING = {"encoding-type": "array", "encoding-version": "0.2.0"}
# Bytes of one HDF5 chunk of X (whole rows): gzip works a chunk at a time.
CHUNK_BYTES = 1 << 20

WriteRows = Callable[[int, np.ndarray], None]
"""``write(start, block)``: rows ``start : start + len(block)`` of the matrix."""


def check_streamable(path: str | os.PathLike[str]) -> str:
    """The ending of ``path`` when a matrix can be streamed into it (:data:`STREAM_SUFFIXES`).

    Raises
    ------
    InputError
        For a CSV / TSV table or an unknown ending: one line naming the file and the
        endings to use.
    """
    target = Path(path)
    suffix = suffix_of(target)
    if suffix in STREAM_SUFFIXES:
        return suffix
    if suffix in WRITE_SUFFIXES:
        raise InputError(
            f"{target}: a reconstruction of data read out of core (cells x genes, beyond "
            "train.memory_budget_gb) is written a block of rows at a time, which a "
            f"{suffix} table cannot hold; write .h5ad or .npy instead."
        )
    raise InputError(
        f"Cannot write {target}: unknown file ending. Use one of {', '.join(STREAM_SUFFIXES)}."
    )


@contextlib.contextmanager
def row_blocks_writer(
    path: str | os.PathLike[str],
    *,
    obs_names: Sequence[str],
    columns: Sequence[str],
    values: str | None = None,
) -> Iterator[WriteRows]:
    """Open ``path`` for a float32 matrix of ``obs_names`` x ``columns``, filled by blocks.

    Parameters
    ----------
    path
        Target, ``.h5ad`` or ``.npy`` (:func:`check_streamable`).
    obs_names
        Row names (one per row of the matrix).
    columns
        Column names.
    values
        What the values are, in ``uns["geneae"]["values"]`` of an h5ad file (as
        :func:`~geneae.io.write_matrix` says it); ``.npy`` has no place for it.

    Yields
    ------
    WriteRows
        ``write(start, block)`` puts ``block`` (rows x columns) at row ``start``. The file
        appears under ``path`` when the block ends with every row written; on an exception
        (or rows missing) it does not, and an existing file is left as it was.
    """
    target = Path(path)
    suffix = check_streamable(target)
    shape = (len(obs_names), len(columns))
    written = 0

    def write_into(array: h5py.Dataset | np.ndarray) -> WriteRows:
        def write(start: int, block: np.ndarray) -> None:
            nonlocal written
            if block.shape[1:] != shape[1:] or not 0 <= start <= shape[0] - len(block):
                raise ValueError(f"rows {start}+{block.shape} do not fit a {shape} matrix")
            array[start : start + len(block)] = np.asarray(block, dtype=np.float32)
            written += len(block)

        return write

    with atomic_path(target) as tmp:
        if suffix == ".npy":
            matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            yield write_into(matrix)
            matrix.flush()
            del matrix
        else:
            _write_tables(tmp, obs_names, columns, values)
            with h5py.File(tmp, "r+") as handle:
                yield write_into(_dense_x(handle, shape))
        if written != shape[0]:  # a bug in the caller: never rename an incomplete file
            raise RuntimeError(f"{target}: {written} of {shape[0]} rows written")


def _write_tables(
    path: Path, obs_names: Sequence[str], columns: Sequence[str], values: str | None
) -> None:
    """An h5ad file with the names and ``uns`` of :func:`~geneae.io.write_matrix`, no X."""
    with quiet_anndata():
        adata = ad.AnnData(
            obs=pd.DataFrame(index=pd.Index(obs_names).astype(str)),
            var=pd.DataFrame(index=pd.Index(columns).astype(str)),
        )
        if values is not None:
            adata.uns["geneae"] = {"values": values}
        adata.write_h5ad(path, compression="gzip")


def _dense_x(handle: h5py.File, shape: tuple[int, int]) -> h5py.Dataset:
    """An empty float32 ``X`` of ``shape``, encoded as anndata encodes a dense matrix."""
    options: dict[str, object] = {}
    if shape[0] and shape[1]:
        rows = max(1, min(shape[0], CHUNK_BYTES // (4 * shape[1])))
        options = {"chunks": (rows, shape[1]), "compression": "gzip"}
    x = handle.create_dataset("X", shape=shape, dtype=np.float32, **options)
    x.attrs.update(DENSE_ENCODING)
    return x
