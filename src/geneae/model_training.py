"""Training a model's module on prepared data: the work behind :meth:`GeneAE.train`.

:func:`build_for_training` builds the module once the training threads and torch's seed
are set. :func:`train_module` sets the freshly built module up from the data
(:func:`data_start`, computed once for all members, then :func:`start_from_data`), runs
the Lightning fit and the optional clustering phase, and returns the trained module with
its history and the ``model`` section of metrics.json (a :class:`TrainedModule`). With
``model.members > 1`` each member is trained exactly as a single model of its own seed
(:func:`member_seed`: its own initial weights, validation split, batch order and early
stopping) — side by side in processes of their own where the CPU threads allow
(:func:`geneae.threads.member_waves`, :mod:`geneae.train.member_process`), else one after
the other — then the ensemble's latent blocks are calibrated on the training cells
(:class:`~geneae.module.Ensemble`). The facade (:mod:`geneae.model`) keeps
the state; this module does the work and holds none.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from geneae.batches import split_indices
from geneae.config import RunConfig
from geneae.data_start import DataStart, data_start, start_from_data
from geneae.errors import ModelFileError
from geneae.module import Ensemble, build_module, members_of
from geneae.module.ensemble import PCA_FIT_ROWS
from geneae.precision import choose_precision, training_device_type
from geneae.prepared import Prepared
from geneae.threads import apply_threads, member_waves
from geneae.train.member_folders import folder_prefix, sweep_folders
from geneae.train.member_metrics import mean_of, merge_member_metrics
from geneae.train.member_process import (
    MemberJob,
    MemberProcess,
    allows_side_by_side,
    delegates_all,
    end_spares,
    processes_for,
    send_wave,
    train_here,
)

if TYPE_CHECKING:
    from geneae.ondisk import OnDisk

logger = logging.getLogger(__name__)

__all__ = [
    "MEMBER_SEED_STRIDE",
    "DataStart",
    "TrainedModule",
    "build_for_training",
    "data_start",
    "member_seed",
    "start_from_data",
    "train_module",
]

# Member i > 0 of a run with seed s trains with seed s + i * stride: distinct from every
# other run's members for seeds below the stride, so that two runs of different seeds
# share no member (their agreement is the ensemble's, not a shared model's).
MEMBER_SEED_STRIDE = 1_000_003


def member_seed(seed: int, member: int) -> int:
    """The seed of member ``member`` of a run with ``seed`` (member 0: the run's own).

    Member 0 is the single model of the run's seed, so ``model.members: 1`` is the first
    member of any ensemble of the same seed.
    """
    return seed + member * MEMBER_SEED_STRIDE


def member_config(config: RunConfig, member: int) -> RunConfig:
    """``config`` for training member ``member`` alone: one model, the member's seed.

    Its model section is the member's (:meth:`~geneae.config.ModelConfig.member`: a wide
    member's squared error without the standardised term); its seed is that of its place
    among the members of its kind (:meth:`~geneae.config.ModelConfig.rank_in_kind`).
    """
    model = config.model
    return config.updated(
        {
            "model": model.member(member).model_dump(mode="json"),
            "train.seed": member_seed(config.train.seed, model.rank_in_kind(member)),
        },
        source=f"member {member}",
    )


@dataclass
class TrainedModule:
    """What one training gives the facade.

    Attributes
    ----------
    module
        The trained module (the one given), best weights loaded, on the CPU in eval mode.
    history
        One row per epoch (``history.csv``).
    is_global_zero
        False in the helper processes of data-parallel training (they must not write).
    model_metrics
        The ``model`` section of metrics.json.
    train_s
        Seconds spent training (wall time, with the clustering phase, if any).
    epoch_s
        Seconds per training epoch, the clustering phase left out (its 20 or more epochs
        would otherwise read as the cost of a short run's few); an ensemble: its members' mean;
        None where this call trained no epoch (a run resumed after its last).
    """

    module: torch.nn.Module
    history: pd.DataFrame
    is_global_zero: bool
    model_metrics: dict[str, Any]
    train_s: float
    epoch_s: float | None

    @property
    def timings(self) -> dict[str, float]:
        """The training's entries in metrics.json's ``timings``: seconds, and per epoch."""
        per_epoch = {} if self.epoch_s is None else {"seconds_per_epoch": self.epoch_s}
        return {"train_s": self.train_s, **per_epoch}


def build_for_training(
    config: RunConfig, n_genes: int, n_covariates: int
) -> tuple[torch.nn.Module, int]:
    """A fresh module for ``config`` and the CPU threads of training.

    The threads (:func:`geneae.threads.apply_threads`) and torch's seed are set first, so
    the seed fixes the module's initial weights; each member of an ensemble is built under
    its own seed (:func:`member_seed`).

    Parameters
    ----------
    config
        The resolved configuration.
    n_genes
        Number of model genes (the module's input width).
    n_covariates
        Number of covariate levels (0: no covariate).

    Returns
    -------
    tuple of torch.nn.Module and int
        The module, for :func:`train_module`, and the threads.
    """
    threads = apply_threads(config.train.num_threads)
    members = []
    for i in range(config.model.members or 1):
        one = member_config(config, i)
        torch.manual_seed(one.train.seed)
        members.append(build_module(one.model, n_genes, n_covariates))
    return (members[0] if len(members) == 1 else Ensemble(members)), threads


def check_resumable(run_dir: str | Path | None) -> None:
    """Refuse ``resume`` where ``run_dir`` holds no resume point of a single model or members."""
    if run_dir is None:
        raise ModelFileError("resume=True continues a fit in run_dir: give its run_dir.")
    checkpoints = Path(run_dir) / "checkpoints"  # as train_module lays them out
    if not (checkpoints / "last.ckpt").is_file() and not any(checkpoints.glob("member*")):
        raise ModelFileError(
            f"{run_dir}: nothing to resume (no {checkpoints.name}/last.ckpt); fit without "
            "resume, or give the run_dir of the interrupted fit."
        )


def train_module(
    module: torch.nn.Module,
    config: RunConfig,
    prepared: Prepared | OnDisk,
    *,
    threads: int,
    run_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
) -> TrainedModule:
    """Train ``module`` on ``prepared`` and keep its best weights.

    An :class:`~geneae.module.Ensemble`'s members are trained each as the single model of
    its seed, side by side where :func:`side_by_side` allows, with their resume points in
    ``run_dir/checkpoints/member<i>/``; ``callbacks`` follow the first member (a tuning
    trial is pruned on it). The history stacks the members' rows (column ``member``).

    Parameters
    ----------
    module
        Built from ``config.model`` by :func:`build_for_training`.
    config
        The resolved configuration (its ``train.validation`` already final).
    prepared
        Data from :meth:`GeneAE.preprocess_for_training` (in memory, or on disk).
    threads
        The CPU threads of training (from :func:`geneae.threads.apply_threads`).
    run_dir
        Keep checkpoints and ``history.csv`` there while training.
    resume
        Continue from ``run_dir/checkpoints/last.ckpt``.
    callbacks
        Extra Lightning callbacks.

    Returns
    -------
    TrainedModule
        The trained module, its history and the ``model`` metrics.
    """
    members = members_of(module)
    model = config.model
    views = [m.view for m in members]
    start = data_start(members[0], model.likelihood, prepared.in_memory, views)
    if len(members) == 1:
        return train_one(
            module,
            config,
            prepared,
            start,
            n_genes=members[0].n_genes,  # the genes it reconstructs (its view's)
            threads=threads,
            run_dir=run_dir,
            resume=resume,
            callbacks=callbacks,
        )
    assert isinstance(module, Ensemble)
    jobs = []
    for i, member in enumerate(members):
        where = None if run_dir is None else Path(run_dir) / "checkpoints" / f"member{i}"
        job = MemberJob(
            member=i,
            module=member,
            config=member_config(config, i),
            prepared=prepared,
            start=start,
            n_genes=member.n_genes,  # the genes it reconstructs (its view's)
            threads=threads,
            run_dir=where,
            resume=resume and where is not None and where.exists(),
        )
        jobs.append(job)
    if side_by_side(config, prepared, len(members)):
        waves = member_waves(len(members), threads)
    else:
        waves = [([i], threads) for i in range(len(members))]
    if all(len(wave) == 1 for wave, _ in waves):
        end_spares()  # started ahead for nothing: free their memory now
    trained: dict[int, TrainedModule] = {}
    t0 = time.perf_counter()
    for wave, each in waves:
        trained.update(_train_wave([jobs[i] for i in wave], each, callbacks))
    parts = [trained[i] for i in range(len(members))]
    if not parts[0].is_global_zero:
        return TrainedModule(module, parts[0].history, False, {}, 0.0, None)
    from geneae.train.cluster_phase import latent_means

    # Data on disk: calibrated on the cells held in memory (OnDisk.hold_sample).
    held = prepared.in_memory.tensors
    inputs = held.dense_inputs(PCA_FIT_ROWS, config.train.seed) if module.pca_genes else None
    module.calibrate([latent_means(member, held) for member in members], inputs)
    module.eval()
    history = pd.concat(
        [part.history.assign(member=i) for i, part in enumerate(parts)], ignore_index=True
    )
    return TrainedModule(
        module,
        history,
        True,
        merge_member_metrics([part.model_metrics for part in parts], module),
        time.perf_counter() - t0,  # wall time: members may train side by side
        mean_of([part.epoch_s for part in parts]),
    )


def side_by_side(config: RunConfig, prepared: Prepared | OnDisk, members: int) -> bool:
    """Whether an ensemble's ``members`` may train at once, in processes of their own.

    Only on the CPU, in one process, with the data in memory, and unless
    ``train.members_side_by_side`` is off; each member process holds a copy of the data
    (one in all where it forks, :func:`~geneae.train.member_process.processes_for`), and the
    copies together stay within ``train.memory_budget_gb``. A GPU, data-parallel training or
    data on disk keep one member at a time on everything.
    """
    train = config.train
    copies = processes_for(members - 1)
    return (
        allows_side_by_side(train)
        and training_device_type(train.accelerator) == "cpu"
        and prepared is prepared.in_memory
        and prepared.tensors.nbytes * copies <= train.memory_budget_gb * 2**30
    )


def _train_wave(
    jobs: list[MemberJob], threads: int, callbacks: Sequence[Any]
) -> dict[int, TrainedModule]:
    """Train ``jobs`` at once with ``threads`` each: the first here, the others in children.

    Every one in children where a member process was started for them ahead
    (:func:`~geneae.train.member_process.delegates_all`). ``callbacks`` follow member 0. On
    any error (or a signal) the children are ended.
    """
    first_callbacks = callbacks if jobs[0].member == 0 else ()
    if len(jobs) == 1:
        return {jobs[0].member: train_here(jobs[0], first_callbacks)}
    here, away = (None, jobs) if delegates_all(first_callbacks) else (jobs[0], jobs[1:])
    previous = torch.get_num_threads()
    children: list[MemberProcess] = []
    sweep_folders()  # what killed runs left
    by_member = {job.member: job for job in away}
    with tempfile.TemporaryDirectory(prefix=folder_prefix()) as folder:
        try:
            children = send_wave(away, Path(folder), threads)
            done = {}
            if here is not None:
                torch.set_num_threads(threads)
                done[here.member] = train_here(here, first_callbacks)
            for child in children:
                for member in child.members:
                    result, job = child.result(member), by_member[member]
                    job.module.load_state_dict(result.state)
                    job.module.to("cpu").eval()
                    done[member] = TrainedModule(
                        job.module,
                        result.history,
                        True,
                        result.model_metrics,
                        result.train_s,
                        result.epoch_s,
                    )
        finally:
            for child in children:
                child.stop()
            torch.set_num_threads(previous)
    return done


def train_one(
    module: torch.nn.Module,
    config: RunConfig,
    prepared: Prepared | OnDisk,
    start: DataStart,
    *,
    n_genes: int,
    threads: int,
    run_dir: str | Path | None,
    resume: bool,
    callbacks: Sequence[Any],
) -> TrainedModule:
    """Train one model (see :func:`train_module`), set up from ``start``.

    ``n_genes``: the genes the model reconstructs (a member's view's), the scale of its
    clustering phase.
    """
    from geneae.train.plan import TrainingPlan
    from geneae.train.trainer import fit_module

    out_of_core = prepared is not prepared.in_memory  # OnDisk holds a sample in memory
    precision, why = choose_precision(
        config.train.precision, config.train.accelerator, out_of_core=out_of_core
    )
    logger.info("precision: %s (%s)", precision, why)
    train_cfg = config.train.model_copy(update={"precision": precision})
    max_epochs = int(train_cfg.max_epochs or 1)
    balance = start_from_data(module, start)
    plan = TrainingPlan(module, config.model, train_cfg, max_epochs)
    train_rows, val_rows = split_indices(prepared.n_obs, train_cfg.validation, train_cfg.seed)
    datamodule = prepared.data_module(train_rows, val_rows, train_cfg)
    t1 = time.perf_counter()
    result = fit_module(
        plan,
        datamodule,
        train_cfg,
        max_epochs,
        run_dir=Path(run_dir) if run_dir is not None else None,
        resume=resume,
        extra_callbacks=callbacks,
    )
    train_s = time.perf_counter() - t1
    epoch_s = train_s / result.epochs_run if result.epochs_run else None
    module.load_state_dict(result.best_state)
    phase = None
    if train_cfg.cluster_epochs and result.is_global_zero:
        from geneae.train.cluster_phase import refine_where_trained

        final_kl = train_cfg.kl_weight if config.model.is_variational else 0.0
        # Where training's data were: on its device (a GPU's phase runs there), else the
        # host; data on disk, on the cells held in memory (geneae.ondisk.OnDisk.hold_sample).
        host = prepared.in_memory.tensors
        on_device = datamodule.on_device()
        held = host if on_device is None else on_device
        phase = refine_where_trained(
            module, held, host, result.best_state, train_cfg, n_genes, final_kl
        )
        train_s += phase["seconds"]
    module.to("cpu").eval()
    history = result.history
    model_metrics: dict[str, Any] = {
        "family": config.model.family,
        "likelihood": config.model.likelihood,
        "latent_dim": config.model.latent_dim,
        "n_parameters": int(sum(p.numel() for p in module.parameters())),
        "epochs_trained": int(len(history)),
        "max_epochs": max_epochs,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "device": result.device,
        "data_resident_on_device": datamodule.resident,
        "cpu_threads": threads,
        "precision": precision,
    }
    graph = plan.cuda_graph()
    if graph is not None:  # a GPU run: how its steps ran
        model_metrics["cuda_graph"] = graph
    compiled = plan.compiled()
    if compiled is not None:  # train.compile: how the steps ran
        model_metrics["compile"] = compiled
    if balance is not None:
        model_metrics["standardized_scale"] = balance
    if phase is not None:
        model_metrics["cluster_phase"] = phase
    return TrainedModule(module, history, result.is_global_zero, model_metrics, train_s, epoch_s)
