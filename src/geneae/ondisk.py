"""A dataset left on disk, prepared for a model a buffer of rows at a time (out of core).

The counterpart of :class:`~geneae.prepared.Prepared` for an ``.h5ad`` file or ``.zarr``
store whose matrix exceeds ``train.memory_budget_gb`` (or with ``train.out_of_core:
always``); docs/scaling.md describes the route:

- :func:`use_out_of_core` is the one place that decides the route, from the matrix's
  size on disk (:func:`geneae.io.backed.matrix_nbytes`: shapes and types, nothing read;
  :mod:`geneae.ondisk_route`, whose functions this module also exports);
- :func:`prepare_on_disk` describes the data and fits the preprocessing in passes over
  chunks (:mod:`geneae.pp.streaming`): the same cells, genes and statistics as in memory;
- :class:`OnDisk` reads, preprocesses and batches buffers of chunks for training
  (:mod:`geneae.chunked`), encodes every cell chunk by chunk, and holds a bounded seeded
  subsample of the cells in memory (:attr:`OnDisk.in_memory`) for what needs cells at
  once: the decoder's start at the gene means, the clustering phase and the evaluation
  beside PCA.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from geneae.batches import ExpressionTensors
from geneae.chunked import chunk_bounds
from geneae.config import RunConfig, TrainConfig
from geneae.facts import DataFacts
from geneae.io.backed import BackedData
from geneae.likelihoods import COUNT_LIKELIHOODS
from geneae.model_outputs import forward_pass
from geneae.ondisk_route import (
    in_memory_nbytes,
    model_genes_at_most,
    open_for_training,
    store_facts,
    training_data,
    use_out_of_core,
)
from geneae.pp import Preprocessor
from geneae.pp.steps import library_genes
from geneae.pp.streaming import fit_streaming
from geneae.prepared import Outputs, Prepared, covariate_codes, covariate_levels, to_tensors
from geneae.resolve import resolve

logger = logging.getLogger(__name__)

__all__ = [
    "OnDisk",
    "in_memory_nbytes",
    "model_genes_at_most",
    "open_for_training",
    "predict_on_disk",
    "prepare_on_disk",
    "training_data",
    "use_out_of_core",
]

# Bytes per cell and model gene that the in-memory subsample may cost: its input and
# counts, and the evaluation's working copies (reconstruction, input space in float64,
# PCA and its reconstruction, maps): measured ~50 on 11k cells x 2,000 genes, with margin.
SAMPLE_BYTES_PER_VALUE = 96
SAMPLE_MIN_CELLS = 1000


@dataclass
class OnDisk:
    """Data on disk as a model's input, preprocessed a buffer of rows at a time.

    Attributes
    ----------
    data
        The open store.
    preprocessor
        The fitted preprocessing (applied to each buffer as it is read).
    facts
        The facts of the whole data.
    cells
        The file rows of the model's rows (the cells the training filters kept; every
        row for new data), sorted.
    counts
        Whether batches carry raw counts and library sizes (count models).
    covariate
        The obs column of the covariate and its levels, or None.
    train
        ``chunk_rows``, ``buffer_chunks``, ``seed`` and ``memory_budget_gb``.
    in_memory
        A bounded seeded subsample of the model's rows, preprocessed in memory (set by
        :meth:`hold_sample`; before that, None).
    """

    data: BackedData
    preprocessor: Preprocessor
    facts: DataFacts
    cells: np.ndarray
    counts: bool
    covariate: tuple[str, list[str]] | None
    train: TrainConfig
    in_memory: Prepared | None = None

    @property
    def n_obs(self) -> int:
        return len(self.cells)

    @property
    def bounds(self) -> np.ndarray:
        """Chunk boundaries over the file's rows."""
        world = (
            self.train.devices * self.train.num_nodes if isinstance(self.train.devices, int) else 1
        )
        return chunk_bounds(self.data.n_obs, self.train.chunk_rows, world)

    def summary(self) -> dict[str, Any]:
        """The ``data`` section of metrics.json (as :func:`geneae.model_inputs.data_summary`)."""
        held = self.in_memory.n_obs if self.in_memory is not None else 0
        return {
            "n_cells": self.data.n_obs,
            "n_genes": self.data.n_vars,
            "n_cells_model": self.n_obs,
            "n_genes_model": len(self.preprocessor.genes_),
            "value_type": self.facts.value_type,
            "out_of_core": {
                "matrix_gb": self.data.nbytes / 2**30,
                "in_memory_gb": in_memory_nbytes(self.data, len(self.preprocessor.genes_)) / 2**30,
                "memory_budget_gb": self.train.memory_budget_gb,
                "chunk_rows": self.train.chunk_rows,
                "buffer_chunks": self.train.buffer_chunks,
                "cells_in_memory": held,
            },
        }

    def read(self, ranges: list[tuple[int, int]], rows: np.ndarray) -> ad.AnnData:
        """The file ``rows`` (sorted, inside ``ranges``) in memory, as stored."""
        parts = [self.data.rows(a, b)[(rows[(rows >= a) & (rows < b)] - a)] for a, b in ranges]
        x = _stack([p.X for p in parts])
        chunk = ad.AnnData(X=x, obs=self.data.obs.iloc[rows], var=self.data.var)
        if self.data.counts is not None:
            chunk.layers["counts"] = _stack([p.layers["counts"] for p in parts])
        return chunk

    def preprocess(self, chunk: ad.AnnData) -> ad.AnnData:
        """Rows from :meth:`read` preprocessed as fitted."""
        return self.preprocessor.transform(chunk, facts=self.facts, copy=False)

    def preprocessed(self, ranges: list[tuple[int, int]], rows: np.ndarray) -> ad.AnnData:
        """The file ``rows`` (sorted, inside ``ranges``) read and preprocessed."""
        return self.preprocess(self.read(ranges, rows))

    def tensors(self, pre: ad.AnnData) -> ExpressionTensors:
        """Batching tensors of preprocessed rows."""
        codes = None
        if self.covariate is not None:
            codes = covariate_codes(pre, *self.covariate)
        steps = self.preprocessor.steps_
        genes = None if steps is None else library_genes(steps, pre.n_vars)
        return to_tensors(pre, counts=self.counts, covariate=codes, library_genes=genes)

    def load(self, ranges: list[tuple[int, int]], rows: np.ndarray) -> ExpressionTensors:
        """:data:`geneae.chunked.Loader`: file rows read, preprocessed, as tensors."""
        return self.tensors(self.preprocessed(ranges, rows))

    def data_module(self, train_rows: np.ndarray, val_rows: np.ndarray, config: TrainConfig) -> Any:
        """The Lightning data module of the model rows ``train_rows`` / ``val_rows``."""
        from geneae.train.chunked_data import ChunkedDataModule

        file_rows = self.cells
        return ChunkedDataModule(
            self.load, self.bounds, file_rows[train_rows], file_rows[val_rows], config
        )

    def each_chunk(self, model_rows: np.ndarray | None = None) -> Any:
        """(model rows, preprocessed AnnData) of each chunk holding some of ``model_rows``.

        ``model_rows`` sorted (None: all), chunks in file order.
        """
        for index, chunk in self.each_read_chunk(model_rows):
            yield index, self.preprocess(chunk)

    def each_read_chunk(self, model_rows: np.ndarray | None = None) -> Any:
        """As :meth:`each_chunk`, the rows as stored (:meth:`preprocess` them)."""
        wanted = self.cells if model_rows is None else self.cells[model_rows]
        bounds = self.bounds
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            lo, hi = np.searchsorted(wanted, [a, b])
            if hi == lo:
                continue
            rows = wanted[lo:hi]
            index = np.arange(lo, hi) if model_rows is None else model_rows[lo:hi]
            yield index, self.read([(int(a), int(b))], rows)

    def hold_sample(self, seed: int) -> Prepared:
        """Preprocess a seeded subsample of the model rows into memory (:attr:`in_memory`).

        At most ``MAX_EVAL_CELLS`` cells (the evaluation's own bound), fewer where the
        memory budget asks for it.
        """
        from geneae.results import MAX_EVAL_CELLS

        n_genes = max(1, len(self.preprocessor.genes_))
        budget = int(self.train.memory_budget_gb * 2**30 / (SAMPLE_BYTES_PER_VALUE * n_genes))
        size = min(self.n_obs, MAX_EVAL_CELLS, max(SAMPLE_MIN_CELLS, budget))
        rows = np.arange(self.n_obs)
        if size < self.n_obs:
            rows = np.sort(np.random.default_rng(seed).choice(self.n_obs, size, replace=False))
        parts = [pre for _, pre in self.each_chunk(rows)]
        pre = ad.AnnData(
            X=_stack([p.X for p in parts]),
            obs=pd.concat([p.obs for p in parts]),
            var=parts[0].var,
        )
        if "counts" in parts[0].layers:
            pre.layers["counts"] = _stack([p.layers["counts"] for p in parts])
        logger.info(
            "out of core: %d of %d cells held in memory (seeded subsample) for the decoder's "
            "start, the clustering phase and the evaluation beside PCA",
            pre.n_obs,
            self.n_obs,
        )
        self.in_memory = Prepared(pre, self.tensors(pre), self.facts)
        return self.in_memory

    @torch.no_grad()
    def outputs(
        self,
        module: torch.nn.Module,
        *,
        n_genes: int,
        likelihood: str,
        reconstruction_rows: np.ndarray | None,
        batch_size: int,
    ) -> Outputs:
        """Every output of ``module`` for every model row, one chunk at a time.

        Reconstructions are cells x genes: keep them for a bounded ``reconstruction_rows``
        only (None: all rows, as much memory as the dense matrix).
        """
        keep = None if reconstruction_rows is None else np.asarray(reconstruction_rows)
        parts: list[Outputs] = []
        for index, pre in self.each_chunk():
            local = None if keep is None else keep[np.isin(keep, index)] - index[0]
            parts.append(
                forward_pass(
                    module,
                    self.tensors(pre),
                    np.asarray(pre.obs_names.astype(str)),
                    n_genes=n_genes,
                    likelihood=likelihood,
                    reconstruction_rows=local,
                    batch_size=batch_size,
                )
            )

        def join(key: str) -> np.ndarray | None:
            values = [getattr(p, key) for p in parts]
            return None if values[0] is None else np.concatenate(values)

        return Outputs(
            obs_names=np.concatenate([p.obs_names for p in parts]),
            latent=np.concatenate([p.latent for p in parts]),
            latent_var=join("latent_var"),
            cluster_probabilities=join("cluster_probabilities"),
            reconstruction=np.concatenate([p.reconstruction for p in parts]),
            reconstruction_rows=keep,
        )


def prepare_on_disk(config: RunConfig, data: BackedData) -> tuple[RunConfig, Preprocessor, OnDisk]:
    """Describe the data, resolve ``config`` and fit its preprocessing, chunk by chunk.

    Parameters
    ----------
    config
        The run configuration as given.
    data
        The open store.

    Returns
    -------
    tuple
        The resolved configuration, the fitted preprocessor and the training data (its
        subsample held in memory).
    """
    rows = config.train.chunk_rows
    facts = store_facts(data, rows)
    config = resolve(config, facts)
    preprocessor = Preprocessor.from_config(config.preprocess)
    kept = fit_streaming(
        preprocessor, lambda: data.chunks(rows), facts, data.obs.index, data.var.index
    )
    key = config.data.covariate
    covariate = None
    if key is not None:
        frame = data.obs.iloc[np.flatnonzero(kept)]
        covariate = (key, covariate_levels(ad.AnnData(obs=frame), key))
    counts = config.model.likelihood in COUNT_LIKELIHOODS
    on_disk = OnDisk(
        data, preprocessor, facts, np.flatnonzero(kept), counts, covariate, config.train
    )
    on_disk.hold_sample(config.train.seed)
    return config, preprocessor, on_disk


def predict_on_disk(
    data: BackedData, preprocessor: Preprocessor, config: RunConfig, levels: list[str]
) -> OnDisk:
    """New data on disk as the input of a fitted model: every row, preprocessed as fitted."""
    facts = store_facts(data, config.train.chunk_rows)
    key = config.data.covariate
    return OnDisk(
        data,
        preprocessor,
        facts,
        np.arange(data.n_obs),
        config.model.likelihood in COUNT_LIKELIHOODS,
        None if key is None else (key, levels),
        config.train,
    )


def _stack(parts: list[Any]) -> Any:
    """Row blocks (all sparse or all dense) one below the other."""
    if sp.issparse(parts[0]):
        return sp.vstack(parts, format="csr", dtype=np.float32)
    return np.concatenate([np.asarray(p) for p in parts], axis=0)
