"""AnnData ``.h5ad`` files, including the anndata-0.5-era layout anndata may drop one day.

``anndata.read_h5ad`` is tried first. The fallback reads the legacy layout directly with
h5py: ``obs`` / ``var`` / ``obsm`` / ``varm`` as compound datasets with an ``index``
field, categorical columns stored as integer codes with their names in
``uns/<column>_categories``, and ``raw.X`` as an h5sparse CSR group.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd

from geneae.errors import InputError
from geneae.io.finalize import build_anndata, quiet_anndata
from geneae.io.hdf5 import decode, read_sparse_group
from geneae.io.messages import input_error

logger = logging.getLogger(__name__)


def read_h5ad(path: Path, *, backed: bool = False) -> ad.AnnData:
    """Read an ``.h5ad`` file with anndata, falling back to the legacy-layout reader.

    Parameters
    ----------
    path
        The file.
    backed
        Open in anndata's backed mode ("r"): ``X`` stays on disk. The legacy fallback
        cannot do that, so such a file is then read into memory (with a log message).

    Returns
    -------
    anndata.AnnData
        The file's content, untouched.

    Raises
    ------
    InputError
        When neither anndata nor the legacy reader can read the file.
    """
    try:
        with quiet_anndata():
            return ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as exc:  # noqa: BLE001 - anndata raises many types for odd layouts
        first_error = exc
    logger.info("anndata could not read %s (%s); trying the legacy layout", path, first_error)
    try:
        adata = read_legacy_h5ad(path)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise input_error(
            path,
            f"not readable as h5ad (anndata: {first_error}; legacy layout: {exc})",
            "Re-write the file with a current anndata (adata.write_h5ad), or, if it is another "
            "format, give it that format's extension (fmt= in Python).",
        ) from exc
    if backed:
        logger.warning("%s: legacy h5ad layout cannot be opened backed; read into memory", path)
    return adata


def _structured_frame(table: np.ndarray, categories: dict[str, list[str]]) -> pd.DataFrame:
    """A DataFrame from a compound dataset; codes become categoricals where names exist."""
    names = table.dtype.names or ()
    index = decode(table["index"]) if "index" in names else np.arange(len(table)).astype(str)
    columns: dict[str, object] = {}
    for name in names:
        if name == "index":
            continue
        values = decode(table[name])
        if name in categories and values.dtype.kind in "iu":
            columns[name] = pd.Categorical.from_codes(
                values.astype(np.int64), categories=categories[name]
            )
        else:
            columns[name] = values
    return pd.DataFrame(columns, index=pd.Index(index.astype(str), dtype=object))


def _categories(f: h5py.File) -> dict[str, list[str]]:
    uns = f.get("uns")
    if not isinstance(uns, h5py.Group):
        return {}
    out = {}
    for key, node in uns.items():
        if key.endswith("_categories") and isinstance(node, h5py.Dataset):
            out[key[: -len("_categories")]] = [str(c) for c in decode(node[()])]
    return out


def _structured_arrays(node: h5py.Dataset | None) -> dict[str, np.ndarray]:
    """Read obsm / varm stored as one compound dataset with a (n, k) sub-array per field."""
    if not isinstance(node, h5py.Dataset) or node.dtype.names is None:
        return {}
    table = node[()]
    return {name: np.asarray(table[name]) for name in node.dtype.names}


def read_legacy_h5ad(path: Path) -> ad.AnnData:
    """Read the anndata-0.5-era ``.h5ad`` layout with h5py alone.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    anndata.AnnData
        ``X``, ``obs`` and ``var`` (categoricals restored), ``obsm``, ``varm`` and
        ``raw`` (X and var); other ``uns`` entries are not carried over.
    """
    with h5py.File(path, "r") as f:
        node = f["X"]
        x = read_sparse_group(node, path) if isinstance(node, h5py.Group) else node[()]
        categories = _categories(f)
        obs = _structured_frame(f["obs"][()], categories)
        var = _structured_frame(f["var"][()], categories)
        obsm = _structured_arrays(f.get("obsm"))
        varm = _structured_arrays(f.get("varm"))
        raw = None
        if "raw.X" in f:
            raw_node = f["raw.X"]
            raw_x = (
                read_sparse_group(raw_node, path)
                if isinstance(raw_node, h5py.Group)
                else raw_node[()]
            )
            raw_var = (
                _structured_frame(f["raw.var"][()], {})
                if "raw.var" in f
                else pd.DataFrame(index=pd.Index([str(i) for i in range(raw_x.shape[1])]))
            )
            raw = (raw_x, raw_var)
    adata = build_anndata(x, obs.index, var.index, obs=dict(obs.items()), var=dict(var.items()))
    for key, value in obsm.items():
        adata.obsm[key] = value
    for key, value in varm.items():
        adata.varm[key] = value
    if raw is not None:
        raw_x, raw_var = raw
        adata.raw = build_anndata(raw_x, obs.index, raw_var.index, var=dict(raw_var.items()))
    return adata


def read_zarr(path: Path) -> ad.AnnData:
    """An AnnData zarr store (``adata.write_zarr``), read into memory.

    Raises
    ------
    InputError
        When anndata cannot read it.
    """
    try:
        with quiet_anndata():
            return ad.read_zarr(path)
    except Exception as exc:  # noqa: BLE001 - anndata / zarr raise many types
        raise input_error(
            path,
            f"not readable as an AnnData zarr store ({exc})",
            "Re-write it with a current anndata (adata.write_zarr), or as .h5ad.",
        ) from exc
