"""The Lightning data modules of training: batches of the training and validation rows.

:class:`RowsDataModule` makes them once the trainer is known (device, rank, number of
processes); :class:`ExpressionDataModule` holds the data in memory (on the training device
or pinned), :class:`geneae.train.chunked_data.ChunkedDataModule` reads them from disk.
:class:`EpochSeeder` tells the training batches which epoch it is.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import Callback

from geneae.batches import Batches, ExpressionTensors
from geneae.config import TrainConfig

logger = logging.getLogger(__name__)

#: Entries (rows x genes) per validation batch: 32 MB per float32 batch-sized tensor.
VALIDATION_BATCH_ENTRIES = 1 << 23


def validation_batch_size(config: TrainConfig, n_genes: int) -> int:
    """Rows per validation batch of an in-memory run: at least the training batch size.

    Validation runs in eval mode (batch norm on its running statistics, no dropout, no
    gradients), so its loss does not depend on how the rows are batched; fewer, larger
    batches spend less time outside the arithmetic (10x PBMC's 427 validation cells of
    2,000 genes: one batch instead of two). ``VALIDATION_BATCH_ENTRIES`` bounds the memory.
    """
    return max(config.batch_size, VALIDATION_BATCH_ENTRIES // max(n_genes, 1))


class EpochSeeder(Callback):
    """Tells the training batches which epoch it is, so each draws that epoch's order."""

    def __init__(self, data: RowsDataModule) -> None:
        self.data = data

    def on_train_epoch_start(self, trainer: pl.Trainer, plan: pl.LightningModule) -> None:
        if self.data.train_batches is not None:
            self.data.train_batches.set_epoch(trainer.current_epoch)


class RowsDataModule(pl.LightningDataModule):
    """Training and validation batches over subsets of rows, made once the trainer is known.

    The trainer gives the device, this process's rank and the number of processes;
    subclasses say how a subset's batches are made (:meth:`make_batches`).
    """

    def __init__(self, train_rows: np.ndarray, val_rows: np.ndarray, config: TrainConfig) -> None:
        super().__init__()
        self.train_rows, self.val_rows, self.config = train_rows, val_rows, config
        self.train_batches: Any = None
        self.val_batches: Any = None

    def make_batches(self, trainer: pl.Trainer, rows: np.ndarray, *, shuffle: bool) -> Any:
        """The batch iterable of ``rows`` for ``trainer``."""
        raise NotImplementedError

    def on_device(self) -> ExpressionTensors | None:
        """All the data on the training device, where training put them there (else None)."""
        return None

    def setup(self, stage: str) -> None:
        if self.train_batches is not None:
            return
        trainer = self.trainer
        assert trainer is not None
        self.train_batches = self.make_batches(trainer, self.train_rows, shuffle=True)
        self.val_batches = self.make_batches(trainer, self.val_rows, shuffle=False)

    def train_dataloader(self) -> Any:
        assert self.train_batches is not None
        return self.train_batches

    def val_dataloader(self) -> Any:
        if self.val_batches is None or len(self.val_rows) == 0:
            return []
        return self.val_batches


class ExpressionDataModule(RowsDataModule):
    """Places the data on the training device (or pinned host memory) once it is known."""

    def __init__(
        self,
        tensors: ExpressionTensors,
        train_rows: np.ndarray,
        val_rows: np.ndarray,
        config: TrainConfig,
    ) -> None:
        super().__init__(train_rows, val_rows, config)
        self.tensors = tensors
        self.source: ExpressionTensors | None = None
        self.resident = True

    def on_device(self) -> ExpressionTensors | None:
        return self.source if self.resident else None

    def make_batches(self, trainer: pl.Trainer, rows: np.ndarray, *, shuffle: bool) -> Batches:
        device = trainer.strategy.root_device
        if self.source is None:
            budget = self.config.memory_budget_gb * 2**30
            self.resident = device.type == "cpu" or self.tensors.nbytes <= budget
            self.source = self.tensors.to(device, pin=not self.resident)
            if not self.resident:
                logger.info(
                    "data (%.1f GB) exceeds the memory budget: streaming batches",
                    self.tensors.nbytes / 2**30,
                )
        return Batches(
            self.source,
            rows,
            batch_size=(
                self.config.batch_size
                if shuffle
                else validation_batch_size(self.config, self.tensors.x.shape[1])
            ),
            device=device,
            shuffle=shuffle,
            seed=self.config.seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
        )
