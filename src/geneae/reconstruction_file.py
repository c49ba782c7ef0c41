"""A model's reconstruction of a dataset written to a file (``geneae reconstruct``).

:func:`write_reconstruction` is :meth:`GeneAE.reconstruct_to`: data in memory are
reconstructed at once and written by :func:`geneae.io.write_matrix`; data the model reads
out of core (docs/scaling.md) go to :func:`stream_reconstruction`, which reconstructs one
chunk of cells at a time, maps it into the space asked for with the same function as in
memory (:func:`geneae.model_outputs.in_space`, each chunk's library sizes taken from its
rows as stored) and writes the block straight into the file
(:func:`geneae.io.stream_write.row_blocks_writer`). Memory holds a chunk, never the
cells x genes matrix; the file appears only once every row is in.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import anndata as ad
import numpy as np

from geneae.io import write_matrix
from geneae.io.backed import BackedData
from geneae.io.stream_write import check_streamable, row_blocks_writer
from geneae.model_outputs import check_space, forward_pass, in_space
from geneae.ondisk import OnDisk, training_data

if TYPE_CHECKING:
    from geneae.model import GeneAE

logger = logging.getLogger(__name__)

__all__ = ["Source", "stream_reconstruction", "write_reconstruction"]

Source = ad.AnnData | BackedData | str | Path
"""Data to reconstruct: in memory, or a path / backed AnnData / open store."""


def write_reconstruction(
    model: GeneAE,
    data: Source,
    out_file: str | Path,
    *,
    layer: str | None = None,
    space: str = "target",
) -> tuple[int, int]:
    """Write ``model``'s reconstruction of ``data`` in ``space`` to ``out_file``, atomically.

    Parameters
    ----------
    model
        A fitted model.
    data
        An AnnData, or a path, backed AnnData or open store: an ``.h5ad`` / ``.zarr``
        beyond ``train.memory_budget_gb`` is streamed (:func:`stream_reconstruction`),
        anything else is read into memory.
    out_file
        ``.h5ad``, ``.npy``, ``.csv`` / ``.tsv`` (optionally ``.gz``); streamed data:
        ``.h5ad`` or ``.npy`` only.
    layer
        Use this layer as the data (in memory; a store is read as the model's
        ``data.layer`` says).
    space
        ``target``, ``input`` or ``values``, as in :meth:`GeneAE.reconstruct`; a model
        trained with genes as samples writes its own space whatever ``space`` says.

    Returns
    -------
    tuple of int
        Rows x genes written.

    Raises
    ------
    NotFittedError
        An unfitted model.
    InputError
        An unknown ``space`` or file ending, a table for streamed data, data the model
        cannot read.
    ConfigError
        A model trained with genes as samples given data beyond the memory budget.
    """
    model._require_fitted()
    check_space(space)
    data = training_data(data, model.config)
    if isinstance(data, BackedData):
        check_streamable(out_file)  # before the pass over the data that describes it
        on_disk = model.preprocess(data)
        assert isinstance(on_disk, OnDisk)
        return stream_reconstruction(model, on_disk, out_file, space=space)
    obs = None
    if model.config.data.genes_as_samples:
        # A gene model's rows are the genes; its values stay in the model's own space.
        outputs = model.predict(data, layer=layer)
        recon, rows = outputs.reconstruction, list(outputs.obs_names)
    else:
        recon, rows = model.reconstruct(data, layer=layer, space=space), list(data.obs_names)
        obs = data.obs  # the samples' annotations travel into an .h5ad
    units = model.reconstruction_units(space)
    write_matrix(recon, out_file, obs_names=rows, columns=list(model.genes), values=units, obs=obs)
    return recon.shape[0], recon.shape[1]


def stream_reconstruction(
    model: GeneAE,
    on_disk: OnDisk,
    out_file: str | Path,
    *,
    space: str = "target",
    batch_size: int = 4096,
) -> tuple[int, int]:
    """Reconstruct data on disk one chunk of cells at a time into ``out_file``.

    The same values as :meth:`GeneAE.reconstruct` of the data in memory (to float32
    rounding), written block by block into an ``.h5ad`` (with the units in
    ``uns["geneae"]["values"]``) or ``.npy`` file.

    Parameters
    ----------
    model
        A fitted model.
    on_disk
        The data as the model's input (``model.preprocess`` of an open store).
    out_file
        ``.h5ad`` or ``.npy``.
    space
        ``target``, ``input`` or ``values`` (see :meth:`GeneAE.reconstruct`).
    batch_size
        Rows per forward pass.

    Returns
    -------
    tuple of int
        Cells x genes written.
    """
    check_streamable(out_file)
    check_space(space)
    module, preprocessor = model.module, model.preprocessor
    assert module is not None and preprocessor is not None
    obs_names = on_disk.data.obs.index[on_disk.cells]
    genes = list(model.genes)
    units = model.reconstruction_units(space)
    with row_blocks_writer(out_file, obs_names=obs_names, columns=genes, values=units) as write:
        for index, chunk in on_disk.each_read_chunk():
            pre = on_disk.preprocess(chunk)
            mean = forward_pass(
                module,
                on_disk.tensors(pre),
                np.asarray(pre.obs_names.astype(str)),
                n_genes=len(genes),
                likelihood=model.config.model.likelihood,
                reconstruction_rows=None,
                batch_size=batch_size,
            ).reconstruction
            block = in_space(
                preprocessor,
                mean,
                space,
                chunk,
                counts_model=model.counts_model,
                facts=on_disk.facts,
            )
            write(int(index[0]), block)
    logger.info(
        "out of core: wrote the reconstruction of %d cells x %d genes (%s) to %s, chunk by chunk",
        len(obs_names),
        len(genes),
        units,
        out_file,
    )
    return len(obs_names), len(genes)
