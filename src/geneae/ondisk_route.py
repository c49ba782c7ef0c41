"""Which route a dataset on disk takes: read into memory, or trained on out of core.

:func:`use_out_of_core` is the one place that decides it, from what the in-memory route
would hold (:func:`in_memory_nbytes`: the matrix's size on disk, nothing read, and a dense
input of :func:`model_genes_at_most` genes); :func:`open_for_training` opens the store by
rows when it goes out of core (:mod:`geneae.ondisk` then prepares it), and
:func:`training_data` gives what a fit reads either way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import anndata as ad

from geneae.config import RunConfig, TrainConfig
from geneae.errors import ConfigError, InputError
from geneae.facts import DataFacts, FactsAccumulator
from geneae.io.backed import BackedData, is_store, open_backed
from geneae.io.labels_file import Labels
from geneae.pp.checks import in_memory
from geneae.resolve_preprocess import model_genes_for

logger = logging.getLogger(__name__)

__all__ = [
    "in_memory_nbytes",
    "model_genes_at_most",
    "open_for_training",
    "store_facts",
    "training_data",
    "use_out_of_core",
]


def use_out_of_core(train: TrainConfig, nbytes: int) -> bool:
    """Whether data needing ``nbytes`` in memory are trained on from disk (``train.out_of_core``).

    ``nbytes``: what the in-memory route would hold, see :func:`in_memory_nbytes`.
    """
    if train.out_of_core != "auto":
        return train.out_of_core == "always"
    return nbytes > train.memory_budget_gb * 2**30


def model_genes_at_most(data: BackedData, config: RunConfig) -> int:
    """The most genes the preprocessing can keep of ``data``, known before it is fitted.

    ``preprocess.n_top_genes`` when set, else the preset's; under ``auto`` what
    :func:`geneae.resolve_preprocess.model_genes_for` gives for the store's values (2,000
    highly variable genes of raw counts, of log-normalised or unlogged values and of values
    only centred, every gene of z-scores; 5,000 for the wide members of bulk samples), told
    here from the store's first chunk (the route is decided before the full pass that
    describes the data); 0 keeps every gene.
    """
    cfg = config.preprocess
    looks = cfg.preset == "auto"
    sample = store_facts(data, config.train.chunk_rows, first_chunk_only=True) if looks else None
    n_genes = model_genes_for(cfg, sample, wide_members=config.model.wide_members != 0)
    return min(data.n_vars, n_genes) if n_genes else data.n_vars


def in_memory_nbytes(data: BackedData, n_genes: int) -> int:
    """Bytes the in-memory route would hold for ``data`` with ``n_genes`` model genes.

    The model input is held densely (the default count input is z-scored, so every entry is
    a value): cells x ``n_genes`` x 4 bytes, plus the stored matrices as they are (the raw
    counts stay sparse). Comparing the stored matrix alone with the budget kept 1M cells x
    2,000 genes (1.2 GB of CSR) in memory under the 2 GB default, with a dense 8 GB input.
    An unscaled sparse input stays sparse in memory: for it this is an upper bound.
    """
    return int(data.n_obs) * int(n_genes) * 4 + data.nbytes


def open_for_training(
    source: str | Path | ad.AnnData | BackedData,
    config: RunConfig,
    *,
    labels: Labels | None = None,
    labels_required: bool = True,
) -> ad.AnnData | BackedData | None:
    """The store of ``source`` opened by rows when it goes out of core, else None.

    ``source``: a path, an AnnData (a backed one names its file) or an open store.
    """
    if isinstance(source, BackedData):
        return source
    if isinstance(source, ad.AnnData):
        if not source.isbacked:
            return None
        source = Path(source.filename)
    if not isinstance(source, str | os.PathLike):
        raise InputError(
            f"expected an AnnData or the path of a data file, got {type(source).__name__}; "
            "wrap a matrix as anndata.AnnData(X=matrix) (samples x genes)."
        )
    path = Path(source)
    if not is_store(path) or config.train.out_of_core == "never":
        return None
    data = open_backed(
        path,
        layer=config.data.layer,
        labels=labels,
        labels_required=labels_required,
        use_raw=config.data.use_raw,
    )
    genes = model_genes_at_most(data, config)
    needed = in_memory_nbytes(data, genes)
    if not use_out_of_core(config.train, needed):
        data.close()
        return None
    if config.data.genes_as_samples:
        data.close()
        raise ConfigError(
            f"{path}: genes as samples trains on the transposed matrix, which needs it in "
            "memory; set train.out_of_core: never (with a larger train.memory_budget_gb)."
        )
    logger.info(
        "out of core: %s would take %.2f GB in memory (a dense input of %d cells x at most "
        "%d genes beside its %.2f GB matrix), %s the memory budget of %.2f GB "
        "(train.out_of_core: %s): reading chunks of %d rows, %d chunks per buffer",
        path,
        needed / 2**30,
        data.n_obs,
        genes,
        data.nbytes / 2**30,
        "over" if needed > config.train.memory_budget_gb * 2**30 else "within",
        config.train.memory_budget_gb,
        config.train.out_of_core,
        config.train.chunk_rows,
        config.train.buffer_chunks,
    )
    return data


def training_data(
    source: str | Path | ad.AnnData | BackedData, config: RunConfig
) -> ad.AnnData | BackedData:
    """``source`` opened by rows when it goes out of core, else in memory (read if a path)."""
    on_disk = open_for_training(source, config)
    if on_disk is not None:
        return on_disk
    if isinstance(source, ad.AnnData):
        return in_memory(source)
    from geneae.io import read

    return read(source, fmt=config.data.format, transpose=config.data.transpose)


def store_facts(data: BackedData, rows: int, *, first_chunk_only: bool = False) -> DataFacts:
    """:func:`geneae.facts.describe` of the store, in one pass over its chunks.

    With ``first_chunk_only``, of its first chunk (a cheap sample).
    """
    accumulator = FactsAccumulator(data.n_vars, has_counts_layer=data.counts is not None)
    for _, chunk in data.chunks(rows):
        accumulator.add(chunk.X, chunk.layers["counts"] if "counts" in chunk.layers else None)
        if first_chunk_only:
            break
    return accumulator.facts()
