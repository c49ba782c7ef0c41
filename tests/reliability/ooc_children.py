"""Child processes of the out-of-core tests: ``python ooc_children.py memory|ddp ARGS``.

``memory STORE BUDGET_GB``: fit a model from STORE out of core and print (JSON) the
resident memory before the fit and its peak during the fit (Linux ``/proc``).
``ddp OUT``: two CPU processes (gloo) under Lightning's DDP read a ChunkedDataModule for
two epochs; rank 0 writes to OUT the rows each process saw in each epoch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def memory(store: str, budget: float) -> None:
    import geneae.results  # noqa: F401 - everything the fit imports, before the baseline
    import geneae.train.chunked_data  # noqa: F401
    import geneae.train.trainer  # noqa: F401
    from geneae.config import RunConfig
    from geneae.model import GeneAE

    config = RunConfig().updated(
        {
            "train.max_epochs": 1,
            "model.members": 1,
            "train.quiet": True,
            "train.cluster_epochs": 0,
            "train.num_threads": 1,
            "train.memory_budget_gb": budget,
            "train.chunk_rows": 256,
            "train.buffer_chunks": 4,
        }
    )
    before = status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again here
    model = GeneAE(config).fit(store)
    out = {"before_mb": before, "peak_mb": status_mb("VmHWM"), "data": model.metrics["data"]}
    print(json.dumps(out))


N_ROWS = 700
TRAIN = np.sort(np.random.default_rng(1).choice(N_ROWS, 610, replace=False))


def ddp(out: str) -> None:
    import lightning.pytorch as pl
    import torch
    import torch.distributed as dist

    from geneae.batches import ExpressionTensors, RowMatrix
    from geneae.chunked import chunk_bounds
    from geneae.config import TrainConfig
    from geneae.train.chunked_data import ChunkedDataModule
    from geneae.train.data_modules import EpochSeeder

    def load(ranges, rows):
        x = RowMatrix.from_array(np.ones((len(rows), 2), dtype=np.float32))
        return ExpressionTensors(x=x, covariate=torch.as_tensor(rows, dtype=torch.int64))

    class Recorder(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: dict[int, list[list[int]]] = {}

        def training_step(self, batch, index):
            self.seen.setdefault(self.current_epoch, []).append(batch["covariate"].tolist())
            return ((self.w - 1.0) ** 2).sum() * batch["x"].shape[0]

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    config = TrainConfig(batch_size=16, seed=3, buffer_chunks=2)
    val = np.setdiff1d(np.arange(N_ROWS), TRAIN)
    data = ChunkedDataModule(load, chunk_bounds(N_ROWS, 40, 2), TRAIN, val[:0], config)
    model = Recorder()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[EpochSeeder(data)],
    )
    trainer.fit(model, datamodule=data)
    gathered: list = [None] * trainer.world_size
    dist.all_gather_object(gathered, model.seen)
    if trainer.is_global_zero:
        record = {"train": TRAIN.tolist(), "ranks": gathered}
        Path(out).write_text(json.dumps(record))


if __name__ == "__main__":
    if sys.argv[1] == "memory":
        memory(sys.argv[2], float(sys.argv[3]))
    else:
        ddp(sys.argv[2])
