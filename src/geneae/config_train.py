"""The ``train`` section of a run configuration: optimisation, schedules, hardware, seeds.

Part of :mod:`geneae.config`, where :class:`~geneae.config.RunConfig` gathers the
sections.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from geneae.config_base import Section
from geneae.data_defaults import (
    BATCH_SIZE,
    CLUSTER_EPOCHS,
    CLUSTER_SAMPLES_SEEN,
    COMPILE_MIN_ENTRIES,
    MIN_BATCH_SIZE,
)

__all__ = ["KLSchedule", "TrainConfig"]

KLSchedule = Literal["constant", "warmup", "cyclic"]


class TrainConfig(Section):
    """Optimisation, schedules, stopping, hardware and seeding."""

    max_epochs: int | None = Field(
        default=None,
        ge=1,
        description="maximum epochs; None: from the data size (geneae.resolve.default_epochs)",
    )
    # 256 at lr 2e-3 (linear scaling of 128 at 1e-3): the same clustering quality as 128
    # across the development datasets in ~55% of the training time (docs/design/default-model.md).
    batch_size: int | None = Field(
        default=None,
        ge=1,
        description=f"samples per training step; None: {BATCH_SIZE}, or for {BATCH_SIZE} "
        f"training samples or fewer a quarter of them (at least {MIN_BATCH_SIZE}; "
        "geneae.resolve.default_batch_size)",
    )
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(default=2e-3, gt=0.0, description="learning rate")
    weight_decay: float = Field(default=1e-6, ge=0.0)
    lr_scheduler: bool = True
    lr_patience: int = Field(default=8, ge=1)
    lr_factor: float = Field(default=0.5, gt=0.0, lt=1.0)
    early_stopping: bool = True
    patience: int = Field(default=20, ge=1)
    min_delta: float = Field(default=0.0, ge=0.0)
    gradient_clip: float | None = Field(default=None, gt=0.0)
    validation: float = Field(default=0.1, ge=0.0, lt=1.0)
    kl_weight: float = Field(
        default=0.3,
        ge=0.0,
        description="beta: the final KL weight (0.3 keeps more structure in the latent "
        "than the plain ELBO's 1.0: better clusters in geneae's benchmark)",
    )
    kl_schedule: KLSchedule = "warmup"
    kl_warmup_epochs: int | None = Field(
        default=None, ge=0, description="None: a third of the epochs (at most 400)"
    )
    kl_kappa: float | None = Field(
        default=None, gt=0.0, description="Tybalt warm-up: KL weight grows by kappa per epoch"
    )
    kl_cycles: int = Field(default=4, ge=1)
    kl_ramp_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    kl_cycle_decay: float = Field(default=1.0, gt=0.0, le=1.0)
    num_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for training; None: OMP_NUM_THREADS if set, else the cores "
        "that are idle when training starts (geneae.threads)",
    )
    members_side_by_side: bool = Field(
        default=True,
        description="train an ensemble's members at once, one process each, sharing the "
        "CPU threads (geneae.threads.member_waves); CPU training in memory only; false: "
        "one after the other on all the threads",
    )
    cluster_epochs: int | None = Field(
        default=None,
        ge=0,
        description="epochs of the clustering phase after training, which makes the "
        "latent's groups compact (geneae.train.cluster_phase); 0: off; None: at least "
        f"{CLUSTER_EPOCHS} and at least {CLUSTER_SAMPLES_SEEN:,.0f} samples seen "
        "(geneae.resolve.default_cluster_epochs), at most max_epochs where that is given; "
        "0 for genes as samples",
    )
    cluster_resolution: float = Field(
        default=1.0, gt=0.0, description="Leiden resolution that finds the phase's centroids"
    )
    cluster_weight: float = Field(
        default=1.0, ge=0.0, description="weight of the clustering term, per gene"
    )
    cluster_lr: float = Field(default=1e-4, gt=0.0, description="learning rate of the phase")
    cluster_batch_size: int = Field(default=256, ge=1, description="samples per phase step")
    checkpoint_interval_s: float = Field(
        default=10.0,
        ge=0.0,
        description="seconds between resume points (last.ckpt, history.csv) of a run "
        "directory; also written after the first and the last epoch; 0: after every epoch",
    )
    seed: int = Field(default=0, ge=0, description="random seed of every random step")
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = Field(
        default="auto",
        description="floating-point precision of training (auto: bf16-mixed on a CPU with "
        "native bfloat16, 32 elsewhere, on GPUs and out of core; see geneae.precision)",
    )
    accelerator: Literal["auto", "cpu", "cuda", "gpu", "mps"] = Field(
        default="auto", description="training device (auto: a GPU when there is one)"
    )
    cuda_graph: bool = Field(
        default=True,
        description="on a GPU, capture a training step's forward and backward once as a "
        "CUDA graph and replay it for every batch of that shape: one launch instead of "
        "hundreds (geneae.train.cuda_graph); false: launch them one by one",
    )
    compile: bool | None = Field(
        default=None,
        description="on a CPU, compile the training step's loss and its backward with "
        "torch.compile (a C++ compiler needed; geneae.train.compiled): steps ~1.2x as fast "
        "after a compile of ~40 s (7-8 s with inductor's cache warm), eager where compiling "
        f"fails; None: on when the planned training reaches {COMPILE_MIN_ENTRIES:.1e} batch "
        "entries (steps x batch x genes; "
        "geneae.resolve.default_compile)",
    )
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = Field(default=1, ge=1)
    memory_budget_gb: float = Field(
        default=2.0,
        gt=0.0,
        description="most memory the data may take on the training device; an .h5ad / .zarr "
        "file that would take more in memory (its dense model input plus its stored "
        "matrix, geneae.ondisk.in_memory_nbytes) is trained on out of core "
        "(train.out_of_core)",
    )
    out_of_core: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="read an .h5ad / .zarr file from disk in chunks of rows instead of "
        "loading it (docs/scaling.md); auto: when its matrix exceeds memory_budget_gb",
    )
    chunk_rows: int = Field(
        default=1024, ge=1, description="out of core: rows per contiguous read from disk"
    )
    buffer_chunks: int = Field(
        default=8,
        ge=1,
        description="out of core: chunks read and shuffled together (chunk_rows x "
        "buffer_chunks rows in memory at a time)",
    )
    quiet: bool = Field(default=False, description="no progress bar")

    @property
    def one_device(self) -> bool:
        """Whether these settings ask for one device (the CPU, or ``auto``'s choice).

        On one node, with Lightning's default strategy.
        """
        return (
            self.accelerator in ("auto", "cpu")
            and str(self.devices) in ("1", "auto")
            and self.strategy == "auto"
            and self.num_nodes == 1
        )
