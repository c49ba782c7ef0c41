"""The rich tables that ``geneae`` commands print: a run's metrics and a comparison grid."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd

SUMMARY_METRICS = (
    ("mse", "reconstruction MSE, all entries"),
    ("masked_mse", "reconstruction MSE, non-zero entries"),
    ("ari", "ARI"),
    ("nmi", "NMI"),
    ("acc", "accuracy (Hungarian)"),
    ("silhouette", "label silhouette"),
    ("knn_accuracy", "kNN label accuracy"),
    ("trustworthiness", "trustworthiness"),
)


def summary_table(metrics: dict[str, Any], title: str) -> Table:
    """Geneae vs the PCA baseline of the same dimension, the better value marked."""
    from geneae.evaluate import METRIC_DIRECTIONS

    comparison = metrics.get("comparison", {})
    ours, pca = comparison.get("geneae", {}), comparison.get("pca", {})
    d = comparison.get("n_components", "?")
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("geneae", justify="right")
    table.add_column(f"PCA ({d} components)", justify="right")
    for key, name in SUMMARY_METRICS:
        if key not in ours or key not in pca or ours[key] is None or pca[key] is None:
            continue
        if key == "masked_mse" and _no_zero_entries(ours, pca):
            continue
        if key == "silhouette" and not comparison.get("supervised", True):
            name = "cluster silhouette"  # no labels: the silhouette of its own clusters
        a, b = float(ours[key]), float(pca[key])
        higher = METRIC_DIRECTIONS.get(key, "higher") == "higher"
        a_wins = a > b if higher else a < b
        table.add_row(
            name,
            f"[bold]{a:.4g}[/bold]" if a_wins else f"{a:.4g}",
            f"{b:.4g}" if a_wins else f"[bold]{b:.4g}[/bold]",
        )
    return table


def _no_zero_entries(*sides: dict[str, Any]) -> bool:
    """Whether the non-zero-entry MSE is the all-entry MSE on every side.

    So it is when the model input has no zero entry (z-scored values): the row would only
    repeat the one above it.
    """
    return all(
        math.isclose(float(side["masked_mse"]), float(side["mse"]), rel_tol=1e-9, abs_tol=0.0)
        for side in sides
    )


# What `geneae compare` prints of each run (column of comparison.csv, header); each cell
# holds the run's value and its PCA baseline's (the column prefixed pca_).
COMPARE_COLUMNS = (
    ("ari", "ARI"),
    ("mse_all_entries", "MSE, all entries"),
    ("mse_nonzero_entries", "MSE, non-zero entries"),
)


def compare_table(table: pd.DataFrame, title: str) -> Table:
    """The runs of a grid (rows of comparison.csv) beside PCA: clusters and reconstruction.

    Columns the table lacks (no labels: no ARI) are left out; missing values print as -.
    """
    shown = [(column, header) for column, header in COMPARE_COLUMNS if column in table]
    out_table = Table(title=title)
    out_table.add_column("run", overflow="fold")
    for _, header in shown:
        out_table.add_column(f"{header}\ngeneae / PCA", justify="right")
    for _, row in table.iterrows():
        cells = (f"{_number(row[c])} / {_number(row[f'pca_{c}'])}" for c, _ in shown)
        out_table.add_row(str(row["run"]), *cells)
    return out_table


def _number(value: Any) -> str:
    value = float(value)
    return "-" if math.isnan(value) else f"{value:.4g}"
