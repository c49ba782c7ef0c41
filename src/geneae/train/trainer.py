"""Build and run the Lightning Trainer: data, callbacks, checkpoints, history, stopping.

Never lose much work: a resume point (``history.csv`` and ``run_dir/checkpoints/last.ckpt``,
each written to a temporary name, then renamed) is written after the first epoch, then at
most every ``train.checkpoint_interval_s`` seconds, and after the last epoch; ``resume``
continues from ``last.ckpt`` and replays the epochs since, which give the same weights (each
epoch's batch order and random draws are functions of the seed and the epoch). The best
weights travel inside ``last.ckpt``. Checkpoints are Lightning's torch pickles; they are
loaded only with ``weights_only=True`` and are never the saved model.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO

from geneae._atomic import atomic_path
from geneae.config import TrainConfig
from geneae.train.data_modules import EpochSeeder, RowsDataModule
from geneae.train.plan import TrainingPlan

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint files appear complete or not at all (temporary name, then rename)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        # Resume files are pickles: never let them execute code.
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


class HistoryWriter(Callback):
    """Collects per-epoch metrics into a table (written by :class:`ResumePoint`)."""

    def __init__(self, previous: pd.DataFrame | None = None) -> None:
        self.rows: list[dict[str, float]] = [] if previous is None else previous.to_dict("records")
        self.epochs_run = 0  # by this run (a resumed one's rows include earlier epochs)

    def on_train_epoch_end(self, trainer: pl.Trainer, plan: pl.LightningModule) -> None:
        # Runs after this epoch's validation, so val_* metrics are in callback_metrics.
        if trainer.sanity_checking:
            return
        row = {"epoch": float(trainer.current_epoch)}
        for key, value in trainer.callback_metrics.items():
            row[key] = float(value)
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        self.epochs_run += 1

    def write(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            self.table().to_csv(tmp, index=False)

    def table(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows)
        if not df.empty:
            df["epoch"] = df["epoch"].astype(int)
            first = ["epoch"] + sorted(c for c in df.columns if c.startswith("train_"))
            first += sorted(c for c in df.columns if c.startswith("val_"))
            df = df[first + [c for c in df.columns if c not in first]]
        return df


class ResumePoint(Callback):
    """Writes the resume point: ``history.csv``, then ``last.ckpt``.

    After the first epoch, then at most every ``interval`` seconds (0: after every epoch),
    and after the last epoch. Must run after every callback whose state it saves (early
    stopping, best weights) and after the history row of the epoch. A checkpoint holds the
    weights, the optimizer state and the best weights (~10 MB for the default model on
    2,000 genes); writing one after every short epoch cost ~10% of the training time of a
    small data set (bundled PBMC: 0.319 s per epoch at interval 0 vs 0.292 s at 10 s).
    """

    def __init__(
        self, checkpoint: Path, history: HistoryWriter, history_path: Path, interval: float
    ) -> None:
        self.checkpoint = checkpoint
        self.history = history
        self.history_path = history_path
        self.interval = interval
        self.written_at = -math.inf

    def on_train_epoch_end(self, trainer: pl.Trainer, plan: pl.LightningModule) -> None:
        last = trainer.should_stop or trainer.current_epoch + 1 >= (trainer.max_epochs or 0)
        due = last or time.monotonic() - self.written_at >= self.interval
        # Every process must take the same decision: saving waits for all of them.
        if not trainer.strategy.broadcast(due, src=0):
            return
        if trainer.is_global_zero:
            self.history.write(self.history_path)
        trainer.save_checkpoint(self.checkpoint)
        self.written_at = time.monotonic()


class WarmupAwareEarlyStopping(Callback):
    """Stop when the monitored loss has not improved by ``min_delta`` for ``patience`` epochs.

    Epochs before the KL warm-up ends do not count: while the KL weight still grows the
    training objective changes, and stopping then would end the run before the model it
    was asked for exists.
    """

    def __init__(self, monitor: str, patience: int, min_delta: float, start_epoch: int) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.start_epoch = start_epoch
        self.best = math.inf
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, plan: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or trainer.current_epoch < self.start_epoch:
            return
        value = float(value)
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = trainer.current_epoch
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])


@dataclass
class FitResult:
    """What a finished run hands back to the model facade."""

    history: pd.DataFrame
    best_state: dict[str, torch.Tensor]
    epochs_trained: int
    best_epoch: int | None
    device: str
    stopped_early: bool
    is_global_zero: bool = True
    #: Epochs this call trained (a resumed run's history holds earlier ones too).
    epochs_run: int = 0


def _progress_enabled(config: TrainConfig) -> bool:
    return not config.quiet and sys.stderr.isatty() and os.environ.get("CI") != "true"


def fit_module(
    plan: TrainingPlan,
    data: RowsDataModule,
    config: TrainConfig,
    max_epochs: int,
    run_dir: Path | None = None,
    resume: bool = False,
    extra_callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Train ``plan`` on ``data``; return the history and the best weights.

    With ``run_dir`` the resume point (``history.csv`` and ``checkpoints/last.ckpt``, see
    :class:`ResumePoint`) is kept there; with ``resume`` training continues from
    ``run_dir/checkpoints/last.ckpt``. ``extra_callbacks``
    run after geneae's own at each epoch end, when the epoch's history row is complete.
    """
    pl.seed_everything(config.seed, workers=False, verbose=False)
    has_val = len(data.val_rows) > 0
    monitor = "val_loss" if has_val else "train_loss"
    checkpoint = run_dir / CHECKPOINT_DIR / "last.ckpt" if run_dir is not None else None
    history_path = run_dir / "history.csv" if run_dir is not None else None
    previous = None
    if resume:
        assert history_path is not None, "resume needs the run directory"
        if history_path.exists():
            previous = pd.read_csv(history_path)

    history = HistoryWriter(previous)
    callbacks: list[Callback] = [EpochSeeder(data), history]
    if config.early_stopping:
        callbacks.append(
            WarmupAwareEarlyStopping(monitor, config.patience, config.min_delta, plan.warmup_end)
        )
    best = BestWeights(monitor)
    callbacks.append(best)
    if checkpoint is not None and history_path is not None:
        interval = config.checkpoint_interval_s
        callbacks.append(ResumePoint(checkpoint, history, history_path, interval))
    callbacks += list(extra_callbacks)
    progress = _progress_enabled(config)
    if progress:
        callbacks.append(RichProgressBar(leave=False))

    with _quiet_lightning():  # its banner (GPU available, tips) is not geneae's to print
        trainer = pl.Trainer(
            max_epochs=max_epochs,
            accelerator=config.accelerator,
            devices=config.devices,
            strategy=config.strategy,
            num_nodes=config.num_nodes,
            precision=config.precision,
            # Gradient clipping is done by the plan (manual optimisation).
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO()],
            logger=False,
            enable_checkpointing=False,  # ResumePoint writes the one checkpoint
            enable_progress_bar=progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=str(run_dir) if run_dir is not None else None,
            deterministic=False,
            reload_dataloaders_every_n_epochs=0,
        )
    with warnings.catch_warnings(), _quiet_lightning():
        # Lightning nags about worker processes; our batches are gathered on the device.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*across ranks is zero.*")
        # Resuming writes into the run's own checkpoint folder on purpose.
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        warnings.filterwarnings("ignore", message=".*`IterableDataset`.*")
        warnings.filterwarnings("ignore", message=".*The number of training batches.*")
        fit_interruptibly(
            trainer,
            plan,
            datamodule=data,
            ckpt_path=checkpoint if resume else None,
            weights_only=True,
        )
    table = history.table()
    best_state = best.state
    return FitResult(
        history=table,
        best_state=best_state if best_state is not None else _cpu_state(plan.module),
        epochs_trained=int(trainer.current_epoch),
        best_epoch=best.epoch,
        device=str(trainer.strategy.root_device),
        stopped_early=bool(trainer.should_stop and trainer.current_epoch < max_epochs),
        is_global_zero=trainer.is_global_zero,
        epochs_run=history.epochs_run,
    )


def fit_interruptibly(trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
    """``trainer.fit``, where Ctrl-C stays a :class:`KeyboardInterrupt`.

    Lightning answers Ctrl-C with its own shutdown, then ``sys.exit(1)``, and leaves SIGINT
    ignored from then on: the command line would end with exit code 1 and no word, and a
    Python session would ignore every later Ctrl-C. The interrupt is raised again (the
    CLI's exit code 130 and its ``--resume`` hint) and the SIGINT handler put back.
    """
    handler = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(*args, **kwargs)
    except SystemExit as exc:
        if not isinstance(exc.__context__, KeyboardInterrupt):
            raise  # e.g. SIGTERM's exit (geneae.runlock.terminate_as_exit)
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)
        raise exc.__context__ from None


class BestWeights(Callback):
    """Keeps a copy of the module's weights at the best monitored epoch.

    The copy stays on the training device until it is read (:attr:`state`, on the CPU): on
    a GPU, copying each tensor to the host at every better epoch made the host wait for
    the GPU once per tensor (25 waits an epoch for the default member; BENCHMARKS.md, GPU).
    """

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.best = math.inf
        self.epoch: int | None = None
        self._state: dict[str, torch.Tensor] | None = None

    @property
    def state(self) -> dict[str, torch.Tensor] | None:
        """The best epoch's weights, on the CPU (None before any epoch was monitored)."""
        if self._state is None:
            return None
        return {k: v.to("cpu") for k, v in self._state.items()}

    def on_train_epoch_end(self, trainer: pl.Trainer, plan: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        if float(value) < self.best:
            self.best = float(value)
            self.epoch = int(trainer.current_epoch)
            self._state = {k: v.detach().clone() for k, v in plan.module.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "epoch": self.epoch, "state": self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.epoch, self._state = state["best"], state["epoch"], state["state"]


LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


def _quiet_lightning() -> contextlib.AbstractContextManager[None]:
    """Hide Lightning's banner (GPU/TPU availability, tips, 'fit stopped') during fit."""
    return quiet_loggers(*LIGHTNING_LOGGERS)


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Raise the named loggers to WARNING for the duration, then restore their levels."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
