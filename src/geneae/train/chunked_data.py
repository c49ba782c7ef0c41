"""The Lightning data module of out-of-core training: batches read from disk.

The in-memory counterpart is :class:`geneae.train.trainer.ExpressionDataModule`; both
hand Lightning the training and validation batch iterables once the trainer (its device,
rank and number of processes) is known.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np

from geneae.chunked import ChunkedBatches, Loader
from geneae.config import TrainConfig


class ChunkedDataModule(pl.LightningDataModule):
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
        super().__init__()
        self.load, self.bounds, self.config = load, bounds, config
        self.train_rows, self.val_rows = train_rows, val_rows
        self.train_batches: ChunkedBatches | None = None
        self.val_batches: ChunkedBatches | None = None
        self.resident = False

    def setup(self, stage: str) -> None:
        if self.train_batches is not None:
            return
        trainer = self.trainer
        assert trainer is not None
        common = dict(
            batch_size=self.config.batch_size,
            device=trainer.strategy.root_device,
            seed=self.config.seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            buffer_chunks=self.config.buffer_chunks,
        )
        self.train_batches = ChunkedBatches(
            self.load, self.bounds, self.train_rows, shuffle=True, **common
        )
        self.val_batches = ChunkedBatches(
            self.load, self.bounds, self.val_rows, shuffle=False, **common
        )

    def train_dataloader(self) -> ChunkedBatches:
        assert self.train_batches is not None
        return self.train_batches

    def val_dataloader(self) -> ChunkedBatches | list:
        if self.val_batches is None or len(self.val_rows) == 0:
            return []
        return self.val_batches
