"""The main job in one pass: read, preprocess once, train, encode once, evaluate, report.

``geneae train``, ``geneae demo`` and ``geneae compare`` all run :func:`train_run`. A run
directory holds the saved model (see :mod:`geneae.saved_model`) plus ``results.h5ad``
(everything computed about the cells, see docs/results.md), ``report.html`` and
``figures/``. Every file is written once. An existing run directory is never modified
unless ``overwrite`` or ``resume`` is given.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad

from geneae._atomic import write_text
from geneae.config import RunConfig
from geneae.errors import InputError, ModelFileError
from geneae.io import read, write_h5ad
from geneae.model import GeneAE
from geneae.results import evaluate_model, results_anndata, set_metrics
from geneae.saved_model import MODEL_FILES

logger = logging.getLogger(__name__)

# Files a run writes; ``overwrite`` replaces exactly these and nothing else in the folder.
RESULTS = "results.h5ad"
RUN_FILES = (*MODEL_FILES, RESULTS, "report.html")


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    model: GeneAE
    metrics: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def check_run_dir(run_dir: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse to touch an existing run directory unless asked to (overwrite / resume)."""
    if resume:
        if not (run_dir / "checkpoints" / "last.ckpt").is_file():
            raise ModelFileError(
                f"{run_dir}: nothing to resume (no checkpoints/last.ckpt); start a new run "
                "without --resume."
            )
        return
    existing = [f for f in RUN_FILES if (run_dir / f).exists()] + (
        ["checkpoints/"] if (run_dir / "checkpoints").exists() else []
    )
    if existing and not overwrite:
        raise ModelFileError(
            f"{run_dir}: already holds a run ({', '.join(existing[:4])}); pass --overwrite to "
            "replace it, --resume to continue it, or choose another --out."
        )
    if overwrite:
        for name in ("checkpoints/last.ckpt", "checkpoints/best.ckpt"):
            (run_dir / name).unlink(missing_ok=True)


def load_data(
    path: str | Path,
    config: RunConfig,
    *,
    labels: str | Path | None = None,
    with_labels: bool = True,
) -> ad.AnnData:
    """Read ``path`` as the data section of ``config`` says.

    ``labels`` (a column or a labels file) overrides ``data.label_column``. With
    ``with_labels=False`` labels are optional: encoding and reconstructing never need them,
    so a label column named at training that the new file lacks is no error (a table's
    label column is still taken out of the matrix when it is there).

    With ``data.genes_as_samples`` the label column names a column of the genes (var),
    which the model's preprocessing takes (see :func:`geneae.pp.orientation.genes_as_rows`).
    """
    if config.data.genes_as_samples:
        if labels is not None:
            raise InputError(
                f"{labels}: a labels file gives one label per sample, but with "
                "genes_as_samples the model's rows are genes; name a column of the genes "
                "(var) with --labels instead."
            )
        return read(
            path, fmt=config.data.format, transpose=config.data.transpose, labels_required=False
        )
    if not with_labels:
        return read(
            path,
            fmt=config.data.format,
            labels=config.data.label_column,
            transpose=config.data.transpose,
            labels_required=False,
        )
    return read(
        path,
        fmt=config.data.format,
        labels=labels or config.data.label_column,
        transpose=config.data.transpose,
    )


def train_run(
    data_path: str | Path,
    run_dir: str | Path,
    config: RunConfig,
    *,
    adata: ad.AnnData | None = None,
    overwrite: bool = False,
    resume: bool = False,
    labels_file: str | Path | None = None,
) -> RunResult:
    """Train on ``data_path`` and write a complete run directory; see the module docstring.

    ``labels_file``: known labels for the evaluation, one per sample (not part of the
    configuration: the model never uses labels).
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, overwrite=overwrite, resume=resume)
    if resume and (run_dir / "config.yaml").is_file():
        config = RunConfig.from_yaml(run_dir / "config.yaml")
    t0 = time.perf_counter()
    if adata is None:
        adata = load_data(data_path, config, labels=labels_file)
    read_s = time.perf_counter() - t0

    model = GeneAE(config)
    prepared = model.preprocess_for_training(adata, layer=config.data.layer)
    run_dir.mkdir(parents=True, exist_ok=True)
    # The resolved configuration, before training: --resume continues with exactly it.
    write_text(run_dir / "config.yaml", model.config.to_yaml())
    model.train(prepared, run_dir=run_dir, resume=resume)
    if not model.is_global_zero:
        # A helper process of data-parallel training: process 0 writes the run.
        return RunResult(run_dir=run_dir, model=model, metrics=model.metrics)
    model.metrics["timings"]["read_s"] = read_s
    model.metrics["data"]["path"] = str(data_path)

    t1 = time.perf_counter()
    evaluation = evaluate_model(model, prepared)
    results = results_anndata(model, evaluation)
    metrics = evaluation.metrics
    metrics["timings"]["evaluate_s"] = time.perf_counter() - t1
    set_metrics(results, metrics)
    write_h5ad(results, run_dir / RESULTS)
    files = [run_dir / RESULTS]
    if config.evaluate.report:
        from geneae.report import write_report

        t2 = time.perf_counter()
        files.append(write_report(run_dir))
        metrics["timings"]["report_s"] = time.perf_counter() - t2
    model.metrics = metrics
    model.save(run_dir, overwrite=True)
    files += [run_dir / f for f in MODEL_FILES]
    return RunResult(run_dir=run_dir, model=model, metrics=metrics, files=sorted(set(files)))


def evaluate_file(model: GeneAE, adata: ad.AnnData) -> dict[str, Any]:
    """Every metric of ``model`` on new data, beside PCA (``geneae evaluate``)."""
    prepared = model.preprocess(adata, layer=model.config.data.layer)
    return evaluate_model(model, prepared).metrics
