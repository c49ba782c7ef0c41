"""A Lightning callback that reports each epoch's validation loss to an Optuna trial.

After every epoch (once its validation ran) the trial receives the validation loss as an
intermediate value and a heartbeat (the time, so other workers know this trial is alive);
with pruning on, a trial the pruner gives up on stops there with
:class:`optuna.TrialPruned`.
"""

from __future__ import annotations

import math
import time
from typing import Any

from lightning.pytorch.callbacks import Callback

MONITOR = "val_loss"


class TrialReporter(Callback):
    """Report ``val_loss`` per epoch to ``trial``; prune when ``prune`` and the pruner says so.

    Parameters
    ----------
    trial
        The running :class:`optuna.trial.Trial`.
    prune
        Ask the study's pruner after every epoch (only when the study minimises the
        validation loss itself: the pruner compares these values in the study's direction).
    """

    def __init__(self, trial: Any, *, prune: bool) -> None:
        self.trial = trial
        self.prune = prune
        self.pruned_epoch: int | None = None
        self.last_epoch: int | None = None

    def on_train_epoch_end(self, trainer: Any, plan: Any) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(MONITOR)
        if value is None:
            return
        epoch = int(trainer.current_epoch)
        loss = float(value)
        self.last_epoch = epoch
        self.trial.report(loss if math.isfinite(loss) else math.nan, step=epoch)
        self.trial.set_user_attr("heartbeat", time.time())
        if self.prune and self.trial.should_prune():
            import optuna

            self.pruned_epoch = epoch
            raise optuna.TrialPruned(f"pruned after epoch {epoch} ({MONITOR} {loss:.6g})")
