"""The worker loop of a study, and local worker processes.

Every worker, here or on another machine sharing the storage, runs :func:`work`: give a
dead worker's running trial back to the queue, stop when finished plus running trials
reach the target (once no running trial is still waiting for its worker's stamp), else ask
Optuna for a trial, stamp it, train and score it, and tell the result.
Trial numbers come from the storage, so no two workers run the same trial; a worker that
asks for a trial beyond the target (two workers asked at once) hands it back as failed
(``surplus``) without running it. :func:`run_processes` starts local workers.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from geneae.config import RunConfig, TuneConfig
from geneae.errors import ConfigError, GeneaeError
from geneae.tune import storage as st
from geneae.tune.objective import DataCache, run_trial
from geneae.tune.space import Space, build_space

LOGS = "logs"
# A worker stops after this many failed trials in a row (a setting that cannot work).
MAX_FAILURES_IN_A_ROW = 3
SURPLUS = "surplus"
# Seconds between looks at a trial that was created but not stamped yet.
UNSTAMPED_POLL_S = 1.0


@dataclass
class Job:
    """Everything a worker needs, as plain values (it may run in another process)."""

    data_path: str
    labels_file: str | None
    genes_file: str | None
    base_yaml: str
    space: dict[str, Any]
    tune: dict[str, Any]
    url: str
    out_dir: str
    seed: int
    target: int
    warmup: int

    @property
    def settings(self) -> TuneConfig:
        return TuneConfig(**self.tune)


def grid_values(dimension: Any) -> list[Any]:
    """Every value of an integer range or a choice dimension (for the grid sampler)."""
    if dimension.kind == "int":
        return list(range(int(dimension.low), int(dimension.high) + 1))
    return list(dimension.choices)


def work(
    job: Job, *, study: Any = None, adata: Any = None, index: int = 0, echo: Any = None
) -> None:
    """Run trials until the study holds ``job.target`` finished (complete or pruned) ones."""
    import optuna
    from optuna.trial import TrialState

    from geneae.run import load_data

    base = RunConfig.from_dict(yaml.safe_load(job.base_yaml), source="study base configuration")
    settings = job.settings
    space = build_space(job.space, base)
    if adata is None:
        adata = load_data(job.data_path, base, labels=job.labels_file, genes=job.genes_file)
    if study is None:
        study = st.load_study(job.url, settings.study_name)
    study.sampler = make_sampler(settings.sampler, space, _sampler_seed(job, study, index))
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=job.warmup)
    cache = DataCache(adata, layer=base.data.layer)
    log = _Log(Path(job.out_dir) / LOGS, echo)
    failures = 0
    awaited: set[int] = set()
    while True:
        recover_stale(study, settings.stale_after)
        finished, running = count_trials(study)
        if finished + running >= job.target:
            # A trial not stamped yet may have lost its worker before the stamp: wait until
            # it is stamped or recovered (UNSTAMPED_GRACE_S), or the study ends short.
            unstamped = set(unstamped_trials(study))
            if not unstamped:
                break
            for number in sorted(unstamped - awaited):
                log.write(f"trial {number}: created but not started yet; waiting for it")
            awaited |= unstamped
            time.sleep(UNSTAMPED_POLL_S)
            continue
        with st.quiet_optuna():
            trial = study.ask()
        if is_surplus(study, trial.number, job.target):
            trial.set_user_attr(SURPLUS, True)
            study.tell(trial, state=TrialState.FAIL)
            log.write(f"trial {trial.number}: not run (the study has its {job.target} trials)")
            break
        try:
            for key, value in st.worker_attrs().items():
                trial.set_user_attr(key, value)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker took it for orphaned before the stamp arrived (see is_stale).
            log.write(f"trial {trial.number}: recovered by another worker before it started")
            continue
        log.write(f"trial {trial.number}: started")
        try:
            value = run_trial(
                trial,
                base=base,
                space=space,
                objective=settings.objective,
                cache=cache,
                prune=settings.pruning,
            )
        except optuna.TrialPruned as exc:
            study.tell(trial, state=TrialState.PRUNED)
            log.write(f"trial {trial.number}: PRUNED ({exc}) {_params(trial)}")
            failures = 0
            continue
        except KeyboardInterrupt:
            _give_back(study, trial.number, trial.params, "interrupted")
            log.write(f"trial {trial.number}: interrupted; queued to run again")
            raise
        except (GeneaeError, ValueError, RuntimeError, FloatingPointError) as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            study.tell(trial, state=TrialState.FAIL)
            log.write(f"trial {trial.number}: FAILED ({type(exc).__name__}: {exc})")
            failures += 1
            if failures >= MAX_FAILURES_IN_A_ROW:
                raise ConfigError(
                    f"{failures} trials in a row failed; the last one with "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            continue
        if not math.isfinite(value):
            trial.set_user_attr("error", f"objective is {value}")
            study.tell(trial, state=TrialState.FAIL)
            log.write(f"trial {trial.number}: FAILED (objective {value}) {_params(trial)}")
            failures += 1
            continue
        study.tell(trial, value)
        failures = 0
        log.write(f"trial {trial.number}: COMPLETE value {value:.6g} {_params(trial)}")


def count_trials(study: Any) -> tuple[int, int]:
    """(finished: complete or pruned, running) trials of ``study``."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return finished, running


def unstamped_trials(study: Any) -> list[int]:
    """Running trials that carry no heartbeat yet (see :func:`geneae.tune.storage.is_stale`)."""
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t.number for t in running if st.is_unstamped(t.user_attrs)]


def is_surplus(study: Any, number: int, target: int) -> bool:
    """Whether trial ``number`` is beyond the target, counting finished and earlier running."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    earlier = sum(t.state == TrialState.RUNNING and t.number < number for t in trials)
    return finished + earlier >= target


def recover_stale(study: Any, stale_after: float) -> list[int]:
    """Fail the running trials whose worker is gone and queue their parameters again."""
    from optuna.trial import TrialState

    recovered = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not st.is_stale(t.user_attrs, stale_after, started=st.started_at(t)):
            continue
        # A queued trial holds its parameters as fixed ones until it draws them.
        params = t.params or t.system_attrs.get("fixed_params") or {}
        if _give_back(study, t.number, params, "its worker stopped"):
            recovered.append(t.number)
    return recovered


def _give_back(study: Any, number: int, params: dict[str, Any], why: str) -> bool:
    """Mark trial ``number`` failed and queue the same parameters; False if already done.

    A trial stopped before it drew any parameters has none to run again: it is only
    failed, and the next trial a worker asks for takes its place.
    """
    from optuna.trial import TrialState

    try:
        with st.quiet_optuna():
            study.tell(number, state=TrialState.FAIL)
    except Exception:  # noqa: BLE001 - another worker finished or recovered it first
        return False
    if params:
        study.enqueue_trial(params, user_attrs={"retry_of": number, "retry_reason": why})
    return True


def make_sampler(kind: str, space: Space, seed: int) -> Any:
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":

        class Grid(optuna.samplers.GridSampler):
            def after_trial(self, *args: Any) -> None:
                """Do not stop the study when the grid is done: workers stop by count."""

        grid = {d.key: grid_values(d) for d in space.dimensions}
        return Grid(grid, seed=seed)
    with st.quiet_optuna():
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def _sampler_seed(job: Job, study: Any, index: int) -> int:
    """Distinct per worker and per continuation, reproducible for a new study."""
    text = f"{job.seed}:{len(study.trials)}:{index}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _params(trial: Any) -> str:
    return " ".join(f"{k}={v}" for k, v in trial.params.items())


class _Log:
    """One line per trial event, in ``logs/worker-HOST-PID.log`` (and echoed)."""

    def __init__(self, folder: Path, echo: Any) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        attrs = st.worker_attrs()
        self.path = folder / f"worker-{attrs['host']}-{attrs['pid']}.log"
        self.echo = echo

    def write(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {line}\n")
        if self.echo is not None:
            self.echo(line)


# -- local worker processes ---------------------------------------------------------------
def run_processes(job: Job, workers: int, echo: Callable[[str], None]) -> None:
    """Run ``workers`` worker processes on this machine and wait for them."""
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [
        ctx.Process(target=_worker_main, args=(job, i, threads), name=f"geneae-tune-{i}")
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    echo(f"{workers} workers started (pids {', '.join(str(p.pid) for p in procs)})")
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        raise
    failed = [p for p in procs if p.exitcode != 0]
    if failed:
        raise ConfigError(
            f"{len(failed)} of {workers} workers failed (exit codes "
            f"{', '.join(str(p.exitcode) for p in failed)}); see {Path(job.out_dir) / LOGS}."
        )


def _worker_main(job: Job, index: int, threads: int) -> None:
    import os

    import torch

    # Training reads OMP_NUM_THREADS (geneae.threads): each worker keeps to its share.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    log = _Log(Path(job.out_dir) / LOGS, None)
    try:
        work(job, index=index)
    except Exception as exc:
        log.write(f"worker stopped: {type(exc).__name__}: {exc}")
        raise
