"""Read the pieces of a run directory that the report uses, noting what is missing.

Only the run directory's own files are read. Anything absent or unreadable becomes a
note in :attr:`RunData.missing` that the report prints in place of the section's content,
so a partial run still gets a report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from geneae.errors import ModelFileError

logger = logging.getLogger(__name__)

CONFIG = "config.yaml"
METRICS = "metrics.json"
HISTORY = "history.csv"
REPORT_DATA = "report_data.h5ad"
TOP_GENES = "top_genes.csv"


@dataclass
class RunData:
    """Everything the report draws from, loaded from one run directory."""

    run_dir: Path
    config_text: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    history: pd.DataFrame | None = None
    adata: Any = None  # anndata.AnnData, imported lazily
    top_genes: pd.DataFrame | None = None
    missing: dict[str, str] = field(default_factory=dict)

    # -- convenient views --------------------------------------------------------------
    @property
    def comparison(self) -> dict[str, Any]:
        value = self.metrics.get("comparison")
        return value if isinstance(value, dict) else {}

    def section(self, name: str) -> dict[str, Any]:
        """A sub-dict of metrics.json (``{}`` when absent or not a mapping)."""
        value = self.metrics.get(name)
        return value if isinstance(value, dict) else {}

    def evaluate_option(self, key: str, default: Any) -> Any:
        section = self.config.get("evaluate")
        return section.get(key, default) if isinstance(section, dict) else default

    @property
    def seed(self) -> int:
        train = self.config.get("train")
        seed = train.get("seed", 0) if isinstance(train, dict) else 0
        return int(seed) if isinstance(seed, int) else 0

    @property
    def labels(self) -> pd.Series | None:
        """``obs["label"]`` of the report data, or None when there are no labels."""
        if self.adata is None or "label" not in self.adata.obs:
            return None
        labels = self.adata.obs["label"]
        return None if labels.isna().all() else labels

    def obs(self, key: str) -> pd.Series | None:
        if self.adata is None or key not in self.adata.obs:
            return None
        return self.adata.obs[key]

    def obsm(self, key: str) -> np.ndarray | None:
        if self.adata is None or key not in self.adata.obsm:
            return None
        return np.asarray(self.adata.obsm[key])

    def layer(self, key: str) -> Any:
        if self.adata is None or key not in self.adata.layers:
            return None
        return self.adata.layers[key]


def load_run(run_dir: str | Path) -> RunData:
    """Load a run directory; raise only when the directory itself does not exist."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelFileError(
            f"{run_dir}: not a run directory; pass the folder written by `geneae train --out`."
        )
    run = RunData(run_dir=run_dir)
    _load_config(run)
    _load_metrics(run)
    _load_history(run)
    _load_adata(run)
    _load_top_genes(run)
    return run


def _note(run: RunData, key: str, message: str) -> None:
    logger.warning("report: %s", message)
    run.missing[key] = message


def _load_config(run: RunData) -> None:
    path = run.run_dir / CONFIG
    if not path.is_file():
        run.missing["config"] = f"{CONFIG} not found in the run directory."
        return
    run.config_text = path.read_text(encoding="utf-8")
    try:
        values = yaml.safe_load(run.config_text)
    except yaml.YAMLError as exc:
        _note(run, "config", f"{CONFIG} is not valid YAML ({exc}); shown as text only.")
        return
    run.config = values if isinstance(values, dict) else {}


def _load_metrics(run: RunData) -> None:
    path = run.run_dir / METRICS
    if not path.is_file():
        run.missing["metrics"] = f"{METRICS} not found in the run directory."
        return
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        _note(run, "metrics", f"{METRICS} could not be read ({exc}).")
        return
    if isinstance(values, dict):
        run.metrics = values
    else:
        _note(run, "metrics", f"{METRICS} does not hold a JSON object.")


def _load_history(run: RunData) -> None:
    path = run.run_dir / HISTORY
    if not path.is_file():
        run.missing["history"] = f"{HISTORY} not found in the run directory."
        return
    try:
        run.history = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        _note(run, "history", f"{HISTORY} could not be read ({exc}).")


def _load_adata(run: RunData) -> None:
    path = run.run_dir / REPORT_DATA
    if not path.is_file():
        run.missing["adata"] = f"{REPORT_DATA} not found in the run directory."
        return
    import anndata

    try:
        run.adata = anndata.read_h5ad(path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        _note(run, "adata", f"{REPORT_DATA} could not be read ({type(exc).__name__}: {exc}).")


def _load_top_genes(run: RunData) -> None:
    path = run.run_dir / TOP_GENES
    if path.is_file():
        try:
            table = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            _note(run, "top_genes", f"{TOP_GENES} could not be read ({exc}).")
            return
        if {"dim", "gene", "loading"} <= set(table.columns):
            run.top_genes = table
            return
        _note(run, "top_genes", f"{TOP_GENES} lacks the columns dim, gene, loading.")
    loadings = None
    if run.adata is not None and "geneae_loadings" in run.adata.varm:
        loadings = np.asarray(run.adata.varm["geneae_loadings"])
    if loadings is None:
        run.missing.setdefault(
            "top_genes",
            f"no {TOP_GENES} and no varm['geneae_loadings'] in {REPORT_DATA}: the model did "
            "not export gene loadings.",
        )
        return
    from geneae.evaluate import top_genes

    run.top_genes = top_genes(loadings, list(map(str, run.adata.var_names)), n=10)
