"""The Lightning data module of out-of-core training: batches read from disk.

The in-memory counterpart is :class:`geneae.train.data_modules.ExpressionDataModule`; both are
:class:`~geneae.train.data_modules.RowsDataModule`: batches of the training and validation rows
made once the trainer (its device, rank and number of processes) is known.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np

from geneae.chunked import ChunkedBatches, Loader
from geneae.config import TrainConfig
from geneae.train.data_modules import RowsDataModule


class ChunkedDataModule(RowsDataModule):
    """Batches read from disk a buffer of chunks at a time (out-of-core; geneae.chunked).

    ``train_rows`` / ``val_rows`` are rows of the file; each process of data-parallel
    training reads only its own chunks.
    """

    def __init__(
        self,
        load: Loader,
        bounds: np.ndarray,
        train_rows: np.ndarray,
        val_rows: np.ndarray,
        config: TrainConfig,
    ) -> None:
        super().__init__(train_rows, val_rows, config)
        self.load, self.bounds = load, bounds
        self.resident = False

    def make_batches(
        self, trainer: pl.Trainer, rows: np.ndarray, *, shuffle: bool
    ) -> ChunkedBatches:
        return ChunkedBatches(
            self.load,
            self.bounds,
            rows,
            batch_size=self.config.batch_size,
            device=trainer.strategy.root_device,
            shuffle=shuffle,
            seed=self.config.seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            buffer_chunks=self.config.buffer_chunks,
        )
