"""The main job in one pass: read, preprocess once, train, encode once, evaluate, report.

``geneae train``, ``geneae demo`` and ``geneae compare`` all run :func:`train_run`. A run
directory holds the saved model (see :mod:`geneae.saved_model`) plus ``fingerprint.json``
(what it was trained on, see :mod:`geneae.fingerprint`), ``results.h5ad`` (everything
computed about the cells, see docs/results.md), ``report.html`` and ``figures/``.

Nothing is written until the data, the settings and the device have been checked. The run
is then written under a lock into a staging directory and moved into place when complete
(see :mod:`geneae.rundir`): a failed or killed run leaves no half-written run directory,
only the staging directory that ``--resume`` continues. An existing run, or a folder of
the user's files, is never written into unless ``overwrite`` is given, and even then only
geneae's own files are replaced.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad

from geneae._atomic import write_text
from geneae.config import RunConfig
from geneae.errors import InputError, ModelFileError
from geneae.fingerprint import FILE as FINGERPRINT
from geneae.fingerprint import (
    RESUME_MAY_CHANGE,
    backed_fingerprint,
    check_config_text,
    data_differences,
    data_fingerprint,
    read_fingerprint,
    settings_differences,
    write_fingerprint,
)
from geneae.io import LabelsSheet, read, write_h5ad
from geneae.io.backed import BackedData, is_store
from geneae.model import GeneAE
from geneae.ondisk import OnDisk, open_for_training
from geneae.preflight import check_hardware, check_trainable
from geneae.prepared import Prepared
from geneae.results import evaluate_model, results_anndata, set_metrics
from geneae.rundir import RunPaths, check_target, is_staging, new_staging, publish
from geneae.runlock import RunLock, is_helper_process, terminate_as_exit
from geneae.saved_model import CHECKSUMS, MODEL_FILES
from geneae.threads import library_threads

logger = logging.getLogger(__name__)

# Files a run writes; ``overwrite`` replaces exactly these (and figures/*.png it drew).
RESULTS = "results.h5ad"
RUN_FILES = (*MODEL_FILES, CHECKSUMS, FINGERPRINT, RESULTS, "report.html")
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    model: GeneAE
    metrics: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def load_data(
    path: str | Path,
    config: RunConfig,
    *,
    labels: str | Path | LabelsSheet | None = None,
    with_labels: bool = True,
    genes: str | Path | None = None,
) -> ad.AnnData | BackedData:
    """Read ``path`` as the data section of ``config`` says.

    An ``.h5ad`` / ``.zarr`` whose matrix goes out of core (see
    :func:`geneae.ondisk.use_out_of_core`) is opened for reading by rows instead.

    ``labels`` (a column or a labels file) overrides ``data.label_column`` and must exist;
    a labels file with several columns besides the sample names takes its labels from the
    column ``data.label_column`` names.
    With ``with_labels=False`` the configured label column is optional: encoding,
    reconstructing and evaluating without explicit labels never need it, so a column named
    at training that the new file lacks is no error (a table's label column is still taken
    out of the matrix when it is there), and a labels file is never read.

    ``genes``: a genes file (:mod:`geneae.io.genes_file`): names, one per line in column
    order, for files that have none (npy, npz, tables without gene identifiers), or an
    annotation table keyed by the file's gene IDs (GEO's ``GPLxxx.txt``); a store (.h5ad,
    .zarr) names its own genes and is refused with one.

    With ``data.genes_as_samples`` the label column names a column of the genes (var),
    which the model's preprocessing takes (see :func:`geneae.pp.orientation.genes_as_rows`).
    """
    if genes is not None and is_store(path):
        raise InputError(
            f"{path}: an .h5ad / .zarr names its genes itself (var_names), so --genes-file "
            f"{genes} is not used; set var_names in the file instead, or leave the flag out."
        )
    sheet_column = None if config.data.genes_as_samples else config.data.label_column
    if sheet_column is not None and labels is not None and Path(labels).is_file():
        labels = LabelsSheet(Path(labels), sheet_column)
    if not config.data.genes_as_samples:  # a large .h5ad / .zarr stays on disk
        column = labels if labels is not None else config.data.label_column
        on_disk = open_for_training(
            path, config, labels=column, labels_required=with_labels or labels is not None
        )
        if on_disk is not None:
            return on_disk
    common = dict(
        fmt=config.data.format,
        transpose=config.data.transpose,
        genes=genes,
        use_raw=config.data.use_raw,
    )
    if config.data.genes_as_samples:
        if labels is not None:
            raise InputError(
                f"{labels}: a labels file gives one label per sample, but with "
                "genes_as_samples the model's rows are genes; name a column of the genes "
                "(var) with --labels instead."
            )
        return read(path, labels_required=False, **common)
    if labels is not None:
        return read(path, labels=labels, **common)
    if not with_labels:
        return read(path, labels=config.data.label_column, labels_required=False, **common)
    return read(path, labels=config.data.label_column, **common)


def train_run(
    data_path: str | Path,
    run_dir: str | Path,
    config: RunConfig,
    *,
    adata: ad.AnnData | BackedData | None = None,
    overwrite: bool = False,
    resume: bool = False,
    labels_file: str | Path | None = None,
    genes_file: str | Path | None = None,
    given: dict[str, Any] | None = None,
    keep_checkpoints: bool = False,
) -> RunResult:
    """Train on ``data_path`` and write a complete run directory; see the module docstring.

    Parameters
    ----------
    labels_file
        Known labels for the evaluation, one per sample (not part of the configuration:
        the model never uses labels). ``config.data.label_column`` naming an existing file
        is taken as a labels file too, so no file path is stored in config.yaml.
    genes_file
        A genes file for data files without gene names, or an annotation table keyed by
        their IDs (see :func:`load_data`).
    resume
        Continue the interrupted run of ``run_dir`` with its own configuration; the data
        must have the fingerprint it was trained on.
    given
        With ``resume``: the settings the user gave (dotted key -> value, from flags or a
        YAML file); any that differs from the interrupted run's is refused.
    keep_checkpoints
        Keep ``checkpoints/`` in the finished run (by default they are deleted on success).
    """
    paths = RunPaths.of(run_dir)
    lock = RunLock(paths.lock, paths.out)
    helper = is_helper_process()
    given = dict(given or {})
    if not helper:
        lock.check_free()  # a live writer refuses us; a killed one's lock is cleared
    config, labels_file = _labels_file(config, labels_file, given)
    record: dict[str, Any] = {}
    if resume:
        config, record = _resume_state(paths, given)
    else:
        check_target(paths.out, RUN_FILES, overwrite=overwrite)
    check_hardware(config.train)

    t0 = time.perf_counter()
    if adata is None:
        adata = load_data(data_path, config, labels=labels_file, genes=genes_file)
    read_s = time.perf_counter() - t0
    if isinstance(adata, BackedData):
        fingerprint = backed_fingerprint(adata)
    else:
        fingerprint = data_fingerprint(adata, config.data.layer)
    if resume:
        differences = data_differences(record["data"], fingerprint)
        if differences:
            raise InputError(
                f"{data_path}: not the data the interrupted run in {paths.staging} was trained "
                f"on ({', '.join(differences)}); resume with that file, or start again "
                "without --resume."
            )

    model = GeneAE(config)
    try:
        prepared = model.preprocess_for_training(adata, layer=config.data.layer)
    except InputError as exc:
        raise _naming(exc, data_path) from None
    check_trainable(prepared.n_obs, len(model.genes), model.config, str(data_path))

    if helper:  # a helper process of data-parallel training: process 0 owns the directory
        from_checkpoint = resume and (paths.staging / LAST_CHECKPOINT).is_file()
        model.train(prepared, run_dir=paths.staging, resume=from_checkpoint)
        return RunResult(run_dir=Path(run_dir), model=model, metrics=model.metrics)
    with lock, terminate_as_exit():
        staging = _open_staging(paths, model.config.to_yaml(), fingerprint, resume, overwrite)
        from_checkpoint = resume and (staging / LAST_CHECKPOINT).is_file()
        model.train(prepared, run_dir=staging, resume=from_checkpoint)
        if not model.is_global_zero:
            return RunResult(run_dir=Path(run_dir), model=model, metrics=model.metrics)
        model.metrics["timings"]["read_s"] = read_s
        model.metrics["data"]["path"] = str(data_path)
        metrics = _evaluate_and_report(model, prepared, staging, paths.out)
        model.metrics = metrics
        model.save(staging, overwrite=True)
        figures = {p.stem for p in (staging / "figures").glob("*.png")}
        publish(staging, paths.out, RUN_FILES, keep_checkpoints=keep_checkpoints)
        if (paths.out / "figures").is_dir():  # an earlier run's figures may be left there
            from geneae.report import remove_stale  # matplotlib: ~0.4 s, only when needed

            remove_stale(paths.out / "figures", keep=figures)
    out = Path(run_dir)
    files = [out / f for f in RUN_FILES if (paths.out / f).exists()]
    return RunResult(run_dir=out, model=model, metrics=metrics, files=sorted(files))


def _labels_file(
    config: RunConfig, labels_file: str | Path | None, given: dict[str, Any]
) -> tuple[RunConfig, str | Path | None]:
    """A label "column" that names an existing file is a labels file, kept out of config."""
    column = config.data.label_column
    if column is None or not Path(column).is_file():
        return config, labels_file
    given.pop("data.label_column", None)
    return config.updated({"data.label_column": None}), labels_file or column


def _resume_state(paths: RunPaths, given: dict[str, Any]) -> tuple[RunConfig, dict[str, Any]]:
    """The configuration and fingerprint of the interrupted run, checked against ``given``."""
    staging = paths.staging
    if not is_staging(staging):
        done = (paths.out / "config.yaml").is_file()
        state = "it is complete" if done else "no run was interrupted there"
        raise ModelFileError(
            f"{paths.out}: nothing to resume ({state}; no {staging.name}); start a new run "
            "without --resume (with --overwrite to replace a run)."
        )
    record = read_fingerprint(staging)
    check_config_text(staging, record)
    config = RunConfig.from_yaml(staging / "config.yaml")
    differences = settings_differences(config, given)
    if differences:
        raise ModelFileError(
            f"{paths.out}: --resume continues the interrupted run with its own settings, but "
            f"these differ: {'; '.join(differences)}. Drop them, or start again without "
            "--resume."
        )
    how = {k: v for k, v in given.items() if k in RESUME_MAY_CHANGE}
    return (config.updated(how, source="--resume") if how else config), record


def _open_staging(
    paths: RunPaths, config_text: str, fingerprint: dict[str, Any], resume: bool, overwrite: bool
) -> Path:
    """The staging directory, under the lock: the interrupted run's, or a new one."""
    if resume:
        if not is_staging(paths.staging):
            raise ModelFileError(f"{paths.staging}: gone while preparing to resume; run again.")
        check_config_text(paths.staging, read_fingerprint(paths.staging))
        return paths.staging
    check_target(paths.out, RUN_FILES, overwrite=overwrite)
    if is_staging(paths.staging):
        logger.warning(
            "discarding the interrupted run in %s (a new run; --resume continues one)",
            paths.staging,
        )
    staging = new_staging(paths)
    # The resolved configuration, before training: --resume continues with exactly it.
    write_text(staging / "config.yaml", config_text)
    write_fingerprint(staging, fingerprint, config_text)
    return staging


def _evaluate_and_report(
    model: GeneAE, prepared: Prepared | OnDisk, staging: Path, out: Path
) -> dict[str, Any]:
    """Measure the model beside PCA; write results.h5ad and the report into ``staging``."""
    t1 = time.perf_counter()
    with library_threads(model.config.train.num_threads):
        # Data on disk: the seeded subsample held in memory (geneae.ondisk), logged there.
        evaluation = evaluate_model(model, prepared.in_memory)
        results = results_anndata(model, evaluation)
    metrics = evaluation.metrics
    metrics["timings"]["evaluate_s"] = time.perf_counter() - t1
    set_metrics(results, metrics)
    write_h5ad(results, staging / RESULTS)
    if model.config.evaluate.report:
        from geneae.report import write_report

        t2 = time.perf_counter()
        write_report(staging, location=out)
        metrics["timings"]["report_s"] = time.perf_counter() - t2
    return metrics


def _naming(exc: InputError, path: str | Path) -> InputError:
    """``exc`` with the data file's name in front, unless the message names it already."""
    text = str(exc)
    return exc if str(path) in text else InputError(f"{path}: {text}")


@contextlib.contextmanager
def naming_file(path: str | Path) -> Iterator[None]:
    """Bad input found inside (a model given data it cannot use) names the file ``path``."""
    try:
        yield
    except InputError as exc:
        raise _naming(exc, path) from None


def evaluate_file(model: GeneAE, adata: ad.AnnData | BackedData) -> dict[str, Any]:
    """Every metric of ``model`` on new data, beside PCA (``geneae evaluate``).

    Data left on disk are evaluated on a seeded subsample held in memory, as a run trained
    on them is (:meth:`geneae.ondisk.OnDisk.hold_sample`).
    """
    prepared = model.preprocess(adata, layer=model.config.data.layer)
    if isinstance(prepared, OnDisk):
        prepared = prepared.hold_sample(model.config.train.seed)
    with library_threads(model.config.train.num_threads):
        return evaluate_model(model, prepared).metrics
