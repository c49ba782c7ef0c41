"""``geneae compare``: train every combination of a small grid and tabulate the results.

A grid is written ``"latent_dim=10,50 model=ae,vae likelihood=mse,masked_mse"``: each
axis is a short name (see ``GRID_KEYS``) or a dotted config key, with comma-separated
values. One run directory per combination, one table (CSV and markdown) and one figure.

Each row of the table holds a run's metrics and those of its PCA baseline (the same
number of components on the same preprocessed matrix, columns prefixed ``pca_``). The
reconstruction error is given twice, both in the model's input space (the preprocessed
matrix): ``mse_all_entries`` averages the squared error over every entry,
``mse_nonzero_entries`` over the entries where that input is non-zero only, so that the
many zeros of single-cell data do not flatter a model that predicts zeros (the quantity
the zero-masked MSE, ``likelihood=masked_mse``, trains on).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from geneae._atomic import atomic_path, write_text
from geneae.config import RunConfig
from geneae.errors import ConfigError

GRID_KEYS = {
    "latent_dim": "model.latent_dim",
    "model": "model.family",
    "family": "model.family",
    "likelihood": "model.likelihood",
    "hidden": "model.hidden",
    "dropout": "model.dropout",
    "n_components": "model.n_components",
    "epochs": "train.max_epochs",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "beta": "train.kl_weight",
    "kl_schedule": "train.kl_schedule",
    "seed": "train.seed",
    "preprocess": "preprocess.preset",
    "n_top_genes": "preprocess.n_top_genes",
}
# metrics.json key (geneae.evaluate.compare_with_pca) -> column of the table.
TABLE_METRICS = {
    "ari": "ari",
    "nmi": "nmi",
    "acc": "acc",
    "silhouette": "silhouette",
    "knn_accuracy": "knn_accuracy",
    "mse": "mse_all_entries",
    "masked_mse": "mse_nonzero_entries",
}


def parse_grid(text: str) -> dict[str, list[Any]]:
    """``"a=1,2 b=x"`` → ``{"model.a": [1, 2], ...}`` with YAML-typed values."""
    axes: dict[str, list[Any]] = {}
    for part in text.split():
        key, sep, values = part.partition("=")
        if not sep or not values:
            raise ConfigError(f"--grid: {part!r} is not KEY=V1,V2; e.g. latent_dim=10,50.")
        dotted = GRID_KEYS.get(key, key)
        if "." not in dotted:
            raise ConfigError(
                f"--grid: unknown key {key!r}; use one of {', '.join(GRID_KEYS)} or a dotted "
                "config key such as model.dropout."
            )
        try:
            if dotted == "model.hidden":
                parsed = [[int(v) for v in item.split("-")] for item in values.split(",")]
            else:
                parsed = [yaml.safe_load(v) for v in values.split(",")]
        except (ValueError, yaml.YAMLError):
            raise ConfigError(
                f"--grid: cannot read the values of {part!r}; give comma-separated values, "
                "e.g. latent_dim=10,50 or hidden=256-128,64."
            ) from None
        axes[dotted] = parsed
    if not axes:
        raise ConfigError('--grid is empty; e.g. --grid "latent_dim=10,50 model=ae,vae".')
    return axes


def run_name(combo: dict[str, Any]) -> str:
    parts = []
    for key, value in combo.items():
        short = key.split(".")[-1]
        text = "-".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{short}={text}")
    return "_".join(parts)


def run_grid(
    data_path: str | Path,
    out_dir: str | Path,
    base: RunConfig,
    axes: dict[str, list[Any]],
    *,
    overwrite: bool = False,
    labels_file: str | Path | None = None,
    genes_file: str | Path | None = None,
    echo: Callable[[str], None] = print,
) -> Path:
    """Train every combination; return the path of the CSV table.

    ``labels_file`` / ``genes_file``: as for ``geneae train`` (labels for the evaluation;
    gene names for a matrix without them).
    """
    from geneae.run import load_data, train_run

    out_dir = Path(out_dir)
    combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    configs = [(run_name(c), c, base.updated(c, source=f"--grid {run_name(c)}")) for c in combos]
    check_outputs(out_dir, [name for name, _, _ in configs], overwrite=overwrite)
    adata = load_data(data_path, base, labels=labels_file, genes=genes_file)
    rows = []
    for name, combo, config in configs:
        # Each setting's report follows evaluate.report like `geneae train`'s (a grid of many
        # settings may skip them: the comparison figure needs only results.h5ad).
        echo(f"training {name}")
        result = train_run(data_path, out_dir / name, config, adata=adata, overwrite=overwrite)
        rows.append(table_row(name, combo, result.metrics))
    table = pd.DataFrame(rows)
    csv_path, md_path, png_path = (out_dir / name for name in COMPARISON_FILES)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    write_text(md_path, table.to_markdown(index=False, floatfmt=".4f") + "\n")
    _figure(out_dir, [name for name, _, _ in configs], png_path)
    return csv_path


COMPARISON_FILES = ("comparison.csv", "comparison.md", "comparison.png")
"""What ``geneae compare`` writes in ``--out`` beside the runs of its settings."""


def check_outputs(out_dir: Path, names: list[str], *, overwrite: bool) -> None:
    """Refuse, before anything is trained, a grid whose outputs would replace files.

    The comparison's own files (an earlier comparison's, or the user's under those names)
    and each setting's run folder are checked as ``geneae train`` checks its ``--out``:
    replaced only with ``overwrite``.
    """
    from geneae.errors import ModelFileError
    from geneae.run import RUN_FILES
    from geneae.rundir import check_target

    if out_dir.exists() and not out_dir.is_dir():
        raise ModelFileError(
            f"{out_dir}: exists and is a file, not a folder; choose another --out."
        )
    present = [name for name in COMPARISON_FILES if (out_dir / name).exists()]
    if present and not overwrite:
        raise ModelFileError(
            f"{out_dir}: already holds {', '.join(present)} (an earlier comparison, or files "
            "of yours); pass --overwrite to replace them, or choose another --out."
        )
    for name in names:
        check_target(out_dir / name, RUN_FILES, overwrite=overwrite)


def table_row(name: str, combo: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """One run's row of the table: its settings, then each metric beside PCA's.

    Parameters
    ----------
    name
        The run's name (its folder).
    combo
        The grid's values of this run (dotted key -> value); the column is the last part
        of the key.
    metrics
        The run's metrics (what metrics.json holds).

    Returns
    -------
    dict
        ``run``, the settings, then for every metric of :data:`TABLE_METRICS` that the run
        measured its column and ``pca_`` + column, then ``epochs`` and ``train_s``.
    """
    comparison = metrics["comparison"]
    row: dict[str, Any] = {"run": name, **{k.split(".")[-1]: _cell(v) for k, v in combo.items()}}
    for key, column in TABLE_METRICS.items():
        if key in comparison["geneae"]:
            row[column] = comparison["geneae"][key]
            row[f"pca_{column}"] = comparison["pca"].get(key)
    row["epochs"] = metrics["model"]["epochs_trained"]
    row["train_s"] = metrics["timings"]["train_s"]
    return row


def _cell(value: Any) -> Any:
    return "-".join(map(str, value)) if isinstance(value, list) else value


def _figure(out_dir: Path, names: list[str], path: Path) -> None:
    """Latent maps of every run side by side, and geneae-vs-PCA bars of ARI / NMI.

    Drawn by :func:`geneae.pl.compare_runs` from each run's ``results.h5ad`` (the stored PCA
    map of its latent space, its labels and its metrics); nothing is fitted here.
    """
    import anndata as ad

    from geneae import pl

    runs = {name: ad.read_h5ad(out_dir / name / "results.h5ad") for name in names}
    fig = pl.compare_runs(runs)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
