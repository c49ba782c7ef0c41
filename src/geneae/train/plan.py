"""One Lightning training plan for every model family.

The plan owns the optimisation: it turns the schedules into a KL weight and a masking rate
for each step, calls ``module.loss``, and logs every LossOutput term once per epoch for
training and validation. Per-step sums stay on the device (no host sync per step); they
are reduced and logged at the end of each epoch.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from geneae.config import ModelConfig, TrainConfig
from geneae.train import schedules
from geneae.train.compiled import CompiledLoss
from geneae.train.cuda_graph import GraphedStep
from geneae.train.mask_rate import dynamic_mask_rate
from geneae.train.optimizers import adam

Batch = dict[str, torch.Tensor]


#: Eager steps before a CUDA graph is captured: what is set up lazily on a first step (the
#: learned library's start, the optimizer's state) is set up by then.
EAGER_STEPS_BEFORE_GRAPH = 2


def scales_gradients(config: TrainConfig) -> bool:
    """Whether training scales its gradients (float16 mixed precision's loss scaling)."""
    return config.precision == "16-mixed"


def why_no_graph(
    train_config: TrainConfig, model_config: ModelConfig, world_size: int
) -> str | None:
    """Why a GPU run's steps are not captured as a CUDA graph (None: they are).

    Mixed precision's autocast keeps the casts of the weights it made in a cache, which
    a graph would replay stale (on a GPU geneae trains in float32 unless asked; bfloat16
    was slower there, BENCHMARKS.md); data-parallel training reduces gradients between
    processes inside the backward pass; the dynamic masking rate is a Python number
    inside the step.
    """
    if not train_config.cuda_graph:
        return "train.cuda_graph is off"
    if train_config.precision != "32":
        return f"mixed precision ({train_config.precision})"
    if world_size > 1:
        return "data-parallel training"
    if model_config.noise == "dynamic_mask":
        return "dynamic masking"
    return None


class TrainingPlan(pl.LightningModule):
    """Lightning wrapper around a pure-torch geneae module.

    Parameters
    ----------
    module
        A module built by :func:`geneae.module.build_module`.
    model_config, train_config
        The model and training sections of the run configuration.
    max_epochs
        Epochs this run trains at most (the schedules are laid out over them).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        model_config: ModelConfig,
        train_config: TrainConfig,
        max_epochs: int,
    ) -> None:
        super().__init__()
        # One optimizer, one loss: stepping it ourselves skips Lightning's closure
        # machinery, about a third of the step time of these small networks on a CPU.
        self.automatic_optimization = False
        self.module = module
        self.model_config = model_config
        self.train_config = train_config
        self.max_epochs = max_epochs
        self._graph: GraphedStep | None = None
        self._graph_note: str | None = None
        # The loss of a step that is not a CUDA graph: eager unless train.compile is on.
        self._loss_step = CompiledLoss(module, enabled=False)
        self._eager_steps = 0
        self._sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "val": {}}
        self._counts: dict[str, int] = {"train": 0, "val": 0}
        self.warmup_end = (
            schedules.warmup_finished_epoch(train_config, max_epochs)
            if model_config.is_variational
            else 0
        )

    # -- schedules ------------------------------------------------------------------------
    def kl_weight(self, epoch: float) -> float:
        if not self.model_config.is_variational:
            return 0.0
        return schedules.kl_weight_at(epoch, self.train_config, self.max_epochs)

    def mask_rate(self, step: int) -> float | None:
        cfg = self.model_config
        if cfg.noise != "dynamic_mask":
            return None
        return dynamic_mask_rate(
            step, low=cfg.mask_rate_min, high=cfg.mask_rate_max, seed=self.train_config.seed
        )

    # -- steps -------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        # Dropout, corruption and reparameterisation draw from torch's global generator;
        # seeding it from (seed, epoch) makes a resumed run replay the same draws as an
        # uninterrupted one (Lightning's checkpoints do not carry generator states).
        torch.manual_seed(self.train_config.seed * 1_000_003 + self.current_epoch + 1)

    def on_fit_start(self) -> None:
        off = None
        if self.device.type == "cuda":
            off = "on a GPU the steps are CUDA graphs (train.cuda_graph)"
        elif self.trainer.world_size > 1:
            off = "data-parallel training"
        self._loss_step = CompiledLoss(self.module, bool(self.train_config.compile), off)
        if self.device.type != "cuda":
            return
        why = why_no_graph(self.train_config, self.model_config, self.trainer.world_size)
        if why is None:
            self._graph = GraphedStep(self.module, self.train_config.gradient_clip)
        else:
            self._graph_note = f"off: {why}"

    def cuda_graph(self) -> str | None:
        """How the steps ran on a GPU (metrics.json ``model.cuda_graph``); None elsewhere."""
        return self._graph.summary() if self._graph is not None else self._graph_note

    def compiled(self) -> dict[str, Any] | None:
        """How ``train.compile`` ran (metrics.json ``model.compile``); None where it is off."""
        return self._loss_step.summary()

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        steps = max(1, self._steps_per_epoch())
        kl_weight = self.kl_weight(self.current_epoch + batch_idx / steps)
        mask_rate = self.mask_rate(self.global_step)
        optimizer = self.optimizers()
        out = self._graph_outputs(batch, kl_weight)
        if out is not None:
            assert self._graph is not None
            optimizer.step(closure=self._graph.replay)  # the graph's gradients, then Adam
        else:
            out = self._eager_step(batch, kl_weight, mask_rate, optimizer)
        self._accumulate("train", out, batch["x"].shape[0])
        self._last_schedule = (kl_weight, mask_rate)
        return out.loss.detach()

    def _eager_step(
        self, batch: Batch, kl_weight: float, mask_rate: float | None, optimizer: Any
    ) -> Any:
        def backward(out: Any) -> None:
            # Once a graph is captured, the gradients are the tensors it writes: keep them.
            keep = self._graph is not None and self._graph.captured
            optimizer.zero_grad(set_to_none=not keep)
            self.manual_backward(out.loss)

        out = self._loss_step.step(batch, backward, kl_weight=kl_weight, mask_rate=mask_rate)
        clip = self.train_config.gradient_clip
        if clip is not None:
            if not scales_gradients(self.train_config):
                # float32 or bfloat16: the gradients are not scaled, clip them as they are
                # (Lightning refuses to clip for the fused Adam under mixed precision).
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), clip)
            else:  # float16: Lightning unscales first (the optimizer is not fused then)
                self.clip_gradients(
                    optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm"
                )
        optimizer.step()
        self._eager_steps += 1
        return out

    def _graph_outputs(self, batch: Batch, kl_weight: float) -> Any:
        """The graph's outputs with ``batch`` loaded, or None where this step runs eagerly.

        The graph is captured on the first batch of the training batch size after
        :data:`EAGER_STEPS_BEFORE_GRAPH` eager steps; batches of other shapes run eagerly,
        and every step does once a capture has failed.
        """
        graph = self._graph
        if graph is None or not graph.usable:
            return None
        if not graph.captured:
            full = batch["x"].shape[0] == self.train_config.batch_size
            if self._eager_steps < EAGER_STEPS_BEFORE_GRAPH or not full:
                return None
            if not graph.capture(batch, kl_weight):
                return None
        elif not graph.matches(batch):
            return None
        return graph.load(batch, kl_weight)

    def on_validation_model_zero_grad(self) -> None:
        # Lightning drops the gradients before validating; a captured graph's must stay
        # (each replay overwrites them, so they need no zeroing either).
        if self._graph is None or not self._graph.captured:
            super().on_validation_model_zero_grad()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        # Validation always uses the final KL weight, so its loss is one fixed objective
        # across epochs (comparable for early stopping and LR scheduling during warm-up).
        final = self.train_config.kl_weight if self.model_config.is_variational else 0.0
        out = self.module.loss(batch, kl_weight=final)
        self._accumulate("val", out, batch["x"].shape[0])

    def _steps_per_epoch(self) -> int:
        trainer = self._trainer
        if trainer is None:
            return 1
        n = trainer.num_training_batches
        return int(n) if n not in (None, float("inf")) else 1

    # -- epoch-level logging -------------------------------------------------------------
    def _accumulate(self, split: str, out: Any, n: int) -> None:
        terms = {
            "loss": out.loss.detach() * n,
            "reconstruction": out.reconstruction.detach().sum(),
            "kl": out.kl.detach().sum(),
        }
        for key, value in out.metrics.items():
            terms[key] = value.detach() * n
        sums = self._sums[split]
        for key, value in terms.items():
            sums[key] = sums[key] + value if key in sums else value.clone()
        self._counts[split] += n

    def _flush(self, split: str) -> None:
        sums, count = self._sums[split], self._counts[split]
        if count == 0:
            return
        for key, value in sums.items():
            self.log(
                f"{split}_{key}",
                value / count,
                on_step=False,
                on_epoch=True,
                sync_dist=True,
                batch_size=count,
            )
        self._sums[split] = {}
        self._counts[split] = 0

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        # Flush at the last batch rather than in on_train_epoch_end: Lightning runs plain
        # callbacks' on_train_epoch_end (history, early stopping) before the module's.
        if batch_idx + 1 < self._steps_per_epoch():
            return
        self._flush("train")
        kl_weight, mask_rate = getattr(self, "_last_schedule", (0.0, None))
        self.log("kl_weight", float(kl_weight), on_step=False, on_epoch=True, batch_size=1)
        if mask_rate is not None:
            self.log("mask_rate", float(mask_rate), on_step=False, on_epoch=True, batch_size=1)
        lr = float(self.optimizers().param_groups[0]["lr"])
        self.log("lr", lr, on_step=False, on_epoch=True, batch_size=1)

    def on_validation_epoch_end(self) -> None:
        self._flush("val")

    def on_train_epoch_end(self) -> None:
        # Runs after this epoch's validation: step the plateau scheduler on its loss.
        scheduler = self.lr_schedulers()
        if scheduler is None:
            return
        monitor = "val_loss" if self.train_config.validation > 0 else "train_loss"
        value = self.trainer.callback_metrics.get(monitor)
        if value is not None:
            scheduler.step(float(value))

    # -- optimisation ----------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        cfg = self.train_config
        optimizer = adam(
            self.module.parameters(),
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            decoupled=cfg.optimizer == "adamw",
            # A fused Adam unscales float16 gradients itself, too late for clipping them.
            fused=not (cfg.gradient_clip is not None and scales_gradients(cfg)),
        )
        if not cfg.lr_scheduler:
            return optimizer
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience
        )
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
