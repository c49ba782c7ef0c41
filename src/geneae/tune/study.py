"""Run a study: create or continue it, run its workers, write what it found.

:func:`tune` is ``geneae tune``: it checks the search space and the settings, opens (or
continues) the study in its storage, runs ``workers`` local worker processes (or the trials
in this process for one worker; :mod:`geneae.tune.worker`) until the study holds ``trials``
finished trials, and writes the outputs (:mod:`geneae.tune.outputs`). Re-running the
command continues the study.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from geneae.config import RunConfig, TuneConfig
from geneae.errors import ConfigError, InputError, TuneWarning
from geneae.tune import storage as st
from geneae.tune.objective import OBJECTIVES, comparability_notes
from geneae.tune.space import Space, build_space
from geneae.tune.worker import SURPLUS, Job, grid_values, recover_stale, run_processes, work


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


def tune(
    data_path: str | Path,
    out_dir: str | Path,
    base: RunConfig,
    settings: TuneConfig,
    *,
    labels_file: str | Path | None = None,
    genes_file: str | Path | None = None,
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
    genes_file
        A genes file, as for ``geneae train`` (:func:`geneae.run.load_data`).
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
    from geneae.results import labels_of
    from geneae.run import load_data
    from geneae.tune.objective import no_labels

    if not isinstance(data_path, str | os.PathLike):
        raise InputError(
            f"data_path must be the path of a data file (each trial's process reads it), "
            f"got {type(data_path).__name__}; save an AnnData first: adata.write_h5ad(path)."
        )
    out = Path(out_dir)
    space = build_space(settings.space, base)
    _check_settings(space, settings, base)
    notes = comparability_notes(space, settings.objective)
    for note in notes:
        warnings.warn(note, TuneWarning, stacklevel=2)
    adata = load_data(data_path, base, labels=labels_file, genes=genes_file)
    if settings.objective != "loss" and labels_of(adata) is None:
        raise no_labels(settings.objective)  # before a study is made and trials fail
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
        genes_file=None if genes_file is None else str(genes_file),
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

    study = st.load_study(url, settings.study_name)
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
    with st.quiet_optuna():
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
    # What a run draws and measures beyond the objective (trials never measure stability).
    drawn = ("tsne", "umap", "max_plot_cells", "report", "stability_repeats", "stability_fraction")
    for key in drawn:
        values["evaluate"].pop(key, None)
    return yaml.safe_dump(values, sort_keys=True)


def grid_size(space: Space) -> int:
    """Points of the grid of a space of integer ranges and choices."""
    return math.prod(len(grid_values(d)) for d in space.dimensions)


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
