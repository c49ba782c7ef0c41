"""Run a study: create or continue it, run its workers, write what it found.

:func:`tune` is ``geneae tune``: it checks the search space and the settings, opens (or
continues) the study in its storage, runs ``workers`` local worker processes (or the trials
in this process for one worker) until the study holds ``trials`` finished trials, and
writes the outputs (:mod:`geneae.tune.outputs`).

Every worker, here or on another machine sharing the storage, runs the same loop
(:func:`work`): give a dead worker's running trial back to the queue, stop when finished
plus running trials reach the target, else ask Optuna for a trial, train and score it, and
tell the result. Trial numbers come from the storage, so no two workers run the same
trial; a worker that asks for a trial beyond the target (two workers asked at once) hands
it back as failed without running it. Re-running the command continues the study.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from geneae.config import RunConfig, TuneConfig
from geneae.errors import ConfigError, GeneaeError, TuneWarning
from geneae.tune import storage as st
from geneae.tune.objective import OBJECTIVES, DataCache, comparability_notes, run_trial
from geneae.tune.space import Space, build_space

logger = logging.getLogger(__name__)

LOGS = "logs"
# A worker stops after this many failed trials in a row (a setting that cannot work).
MAX_FAILURES_IN_A_ROW = 3
SURPLUS = "surplus"


@dataclass
class TuneResult:
    """What :func:`tune` wrote and found."""

    out_dir: Path
    storage: str
    study_name: str
    n_complete: int
    n_pruned: int
    n_failed: int
    best_value: float | None
    best_params: dict[str, Any]
    best_number: int | None
    files: list[Path]
    notes: list[str]


@dataclass
class Job:
    """Everything a worker needs, as plain values (it may run in another process)."""

    data_path: str
    labels_file: str | None
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


def tune(
    data_path: str | Path,
    out_dir: str | Path,
    base: RunConfig,
    settings: TuneConfig,
    *,
    labels_file: str | Path | None = None,
    echo: Callable[[str], None] = print,
) -> TuneResult:
    """Run (or continue) a study; see the module docstring.

    Parameters
    ----------
    data_path
        The expression file every trial trains on.
    out_dir
        Where the study's outputs go (and its SQLite file, without ``settings.storage``).
    base
        The configuration every trial starts from; ``train.max_epochs`` is each trial's
        maximum.
    settings
        Search space, number of trials, objective, storage, workers, pruning, sampler.
    labels_file
        Known labels, one per sample (for ``--objective ari`` / ``nmi``).
    echo
        Where progress lines go.

    Raises
    ------
    ConfigError
        A bad search space or setting, or a study in the storage that was started with
        other settings.
    """
    from geneae.facts import describe
    from geneae.resolve import resolve
    from geneae.run import load_data

    out = Path(out_dir)
    space = build_space(settings.space, base)
    _check_settings(space, settings, base)
    notes = comparability_notes(space, settings.objective)
    for note in notes:
        warnings.warn(note, TuneWarning, stacklevel=2)
    adata = load_data(data_path, base, labels=labels_file)
    facts = describe(adata if base.data.layer is None else _layer(adata, base.data.layer))
    resolved_epochs = int(resolve(base, facts).train.max_epochs or 1)
    out.mkdir(parents=True, exist_ok=True)
    url = st.storage_url(settings.storage, out)
    study = _open_study(url, settings, space, base, data_identity(adata, settings.objective))
    target = settings.trials
    if settings.sampler == "grid":
        size = grid_size(space)
        if size < target:
            notes.append(f"the grid has {size} points: the study runs {size} trials, not {target}")
            target = size
    job = Job(
        data_path=str(data_path),
        labels_file=None if labels_file is None else str(labels_file),
        base_yaml=base.to_yaml(),
        space=space.to_dict(),
        tune=settings.model_dump(),
        url=url,
        out_dir=str(out),
        seed=base.train.seed,
        target=target,
        warmup=max(1, resolved_epochs // 4),
    )
    direction, meaning = OBJECTIVES[settings.objective]
    echo(f"study {settings.study_name!r} in {_shown(url)}: {len(study.trials)} trials so far")
    echo(f"objective: {settings.objective} = {meaning}")
    echo(f"search space: {space.describe()}")
    recovered = recover_stale(study, settings.stale_after)
    if recovered:
        echo(f"trials {', '.join(map(str, recovered))} lost their worker: queued to run again")
    if settings.workers == 1:
        work(job, study=study, adata=adata, echo=echo)
    else:
        run_processes(job, settings.workers, echo)
    from geneae.tune.outputs import write_outputs

    study = _load(url, settings.study_name)
    written = write_outputs(study, out, space, settings.objective, data_path=str(data_path))
    return _result(study, out, url, settings, written, notes)


def _check_settings(space: Space, settings: TuneConfig, base: RunConfig) -> None:
    if settings.objective == "loss":
        if "train.validation" in space.keys:
            raise ConfigError(
                "search space: 'train.validation' cannot be tuned with --objective loss: it "
                "changes the held-out cells the loss is measured on."
            )
        if base.train.validation <= 0:
            raise ConfigError(
                "--objective loss is measured on held-out cells, but train.validation is 0; "
                "set it above 0 (e.g. 0.1)."
            )
    if settings.sampler == "grid":
        continuous = [d.key for d in space.dimensions if d.kind in ("float", "log")]
        if continuous:
            raise ConfigError(
                f"--sampler grid needs a finite grid, but {', '.join(continuous)} is "
                "continuous; give it as choices (e.g. 0.1,0.3) or use --sampler tpe."
            )


def _layer(adata: Any, layer: str) -> Any:
    import anndata as ad

    return ad.AnnData(X=adata.layers[layer], obs=adata.obs, var=adata.var)


def data_identity(adata: Any, objective: str) -> dict[str, Any]:
    """What identifies the data of a study: size and the names (and labels when scored)."""
    from geneae.pp.selection import names_sha256

    ident: dict[str, Any] = {
        "n_obs": int(adata.n_obs),
        "n_vars": int(adata.n_vars),
        "obs_names": names_sha256(adata.obs_names),
        "var_names": names_sha256(adata.var_names),
    }
    if objective != "loss" and "label" in adata.obs:
        labels = "\n".join(adata.obs["label"].astype(str))
        ident["labels"] = hashlib.sha256(labels.encode()).hexdigest()
    return ident


def _open_study(
    url: str, settings: TuneConfig, space: Space, base: RunConfig, data: dict[str, Any]
) -> Any:
    import optuna

    direction = OBJECTIVES[settings.objective][0]
    with _optuna_quiet():
        study = optuna.create_study(
            storage=st.open_storage(url),
            study_name=settings.study_name,
            direction=direction,
            load_if_exists=True,
        )
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"study {settings.study_name!r} in {_shown(url)} {study.direction.name.lower()}s, "
            f"but --objective {settings.objective} {direction}s; use another --study-name."
        )
    ident = st.identity(space.to_dict(), _identity_yaml(base), settings.objective, data)
    st.check_identity(study, ident, _shown(url))
    return study


def _identity_yaml(base: RunConfig) -> str:
    """``base`` without the settings that do not change what a trial computes."""
    values = base.model_dump(mode="json")
    for key in ("quiet", "accelerator", "devices", "strategy", "num_nodes", "memory_budget_gb"):
        values["train"].pop(key, None)
    for key in ("tsne", "umap", "max_plot_cells", "report"):
        values["evaluate"].pop(key, None)
    return yaml.safe_dump(values, sort_keys=True)


def _load(url: str, name: str) -> Any:
    import optuna

    with _optuna_quiet():
        return optuna.load_study(study_name=name, storage=st.open_storage(url))


def grid_size(space: Space) -> int:
    """Points of the grid of a space of integer ranges and choices."""
    return math.prod(len(grid_values(d)) for d in space.dimensions)


def grid_values(dimension: Any) -> list[Any]:
    if dimension.kind == "int":
        return list(range(int(dimension.low), int(dimension.high) + 1))
    return list(dimension.choices)


# -- the worker loop ----------------------------------------------------------------------
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
        adata = load_data(job.data_path, base, labels=job.labels_file)
    if study is None:
        study = _load(job.url, settings.study_name)
    study.sampler = make_sampler(settings.sampler, space, _sampler_seed(job, study, index))
    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=job.warmup)
    cache = DataCache(adata, layer=base.data.layer)
    log = _Log(Path(job.out_dir) / LOGS, echo)
    failures = 0
    while True:
        recover_stale(study, settings.stale_after)
        finished, running = count_trials(study)
        if finished + running >= job.target:
            break
        with _optuna_quiet():
            trial = study.ask()
        if is_surplus(study, trial.number, job.target):
            trial.set_user_attr(SURPLUS, True)
            study.tell(trial, state=TrialState.FAIL)
            log.write(f"trial {trial.number}: not run (the study has its {job.target} trials)")
            break
        for key, value in st.worker_attrs().items():
            trial.set_user_attr(key, value)
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
        if not st.is_stale(t.user_attrs, stale_after):
            continue
        if _give_back(study, t.number, t.params, "its worker stopped"):
            recovered.append(t.number)
    return recovered


def _give_back(study: Any, number: int, params: dict[str, Any], why: str) -> bool:
    """Mark trial ``number`` failed and queue the same parameters; False if already done."""
    from optuna.trial import TrialState

    try:
        with _optuna_quiet():
            study.tell(number, state=TrialState.FAIL)
    except Exception:  # noqa: BLE001 - another worker finished or recovered it first
        return False
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
    with _optuna_quiet():
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
    import torch

    torch.set_num_threads(threads)
    log = _Log(Path(job.out_dir) / LOGS, None)
    try:
        work(job, index=index)
    except Exception as exc:
        log.write(f"worker stopped: {type(exc).__name__}: {exc}")
        raise


@contextlib.contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Optuna's own info lines (trial finished, study created) are ours to print."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def _shown(url: str) -> str:
    """A storage URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _result(
    study: Any, out: Path, url: str, settings: TuneConfig, files: list[Path], notes: list[str]
) -> TuneResult:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    failed = sum(t.state == TrialState.FAIL and not t.user_attrs.get(SURPLUS) for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    return TuneResult(
        out_dir=out,
        storage=_shown(url),
        study_name=settings.study_name,
        n_complete=len(complete),
        n_pruned=states.count(TrialState.PRUNED),
        n_failed=failed,
        best_value=None if best is None else float(best.value),
        best_params={} if best is None else dict(best.params),
        best_number=None if best is None else best.number,
        files=files,
        notes=notes,
    )
