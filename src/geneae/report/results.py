"""Read a run's results file (``results.h5ad``, see ``docs/results.md``) for the report.

The file itself must be there and readable: otherwise :func:`load_results` raises a
:class:`~geneae.errors.ModelFileError` that names the file and the fix. Pieces inside it
that are absent or unreadable (configuration, metrics, history, maps, ...) become notes in
:attr:`Results.missing` that the report prints in place of the section's content.
"""

from __future__ import annotations

import io
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

RESULTS = "results.h5ad"
_FIX = "re-run `geneae train` on this run's data to write it"


@dataclass
class Results:
    """Everything the report draws from, read from one ``results.h5ad``."""

    run_dir: Path
    adata: Any  # anndata.AnnData
    config_text: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    history: pd.DataFrame | None = None
    missing: dict[str, str] = field(default_factory=dict)

    # -- convenient views --------------------------------------------------------------
    @property
    def geneae(self) -> dict[str, Any]:
        """``uns["geneae"]`` (``{}`` when absent)."""
        value = self.adata.uns.get("geneae")
        return value if isinstance(value, dict) else {}

    def stored(self, key: str) -> dict[str, Any] | None:
        """A dict of ``uns["geneae"]`` (``maps``, ``histograms``, ``profiles``) or None."""
        value = self.geneae.get(key)
        return value if isinstance(value, dict) else None

    @property
    def comparison(self) -> dict[str, Any]:
        return self.section("comparison")

    def section(self, name: str) -> dict[str, Any]:
        """A sub-dict of the metrics (``{}`` when absent or not a mapping)."""
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
        """``obs["label"]``, or None when there are no labels."""
        labels = self.obs("label")
        return None if labels is None or labels.isna().all() else labels

    def obs(self, key: str) -> pd.Series | None:
        return self.adata.obs[key] if key in self.adata.obs else None

    def obsm(self, key: str) -> np.ndarray | None:
        return np.asarray(self.adata.obsm[key]) if key in self.adata.obsm else None

    def varm(self, key: str) -> np.ndarray | None:
        return np.asarray(self.adata.varm[key]) if key in self.adata.varm else None


def load_results(run_dir: str | Path) -> Results:
    """Read ``run_dir/results.h5ad``; raise :class:`ModelFileError` if it cannot be read."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelFileError(
            f"{run_dir}: not a run directory; pass the folder written by `geneae train --out`."
        )
    path = run_dir / RESULTS
    if not path.is_file():
        raise ModelFileError(f"{path}: not found, so there is nothing to report; {_FIX}.")
    import anndata

    try:
        adata = anndata.read_h5ad(path)
    except Exception as exc:  # noqa: BLE001 - h5py, anndata and OS errors alike
        raise ModelFileError(
            f"{path}: could not be read ({type(exc).__name__}: {exc}); the file is damaged or "
            f"not an h5ad file: {_FIX}."
        ) from None
    results = Results(run_dir=run_dir, adata=adata)
    _load_config(results)
    _load_metrics(results)
    _load_history(results)
    return results


def _note(results: Results, key: str, message: str) -> None:
    logger.warning("report: %s", message)
    results.missing[key] = message


def _text(results: Results, key: str) -> str | None:
    value = results.geneae.get(key)
    if value is None:
        results.missing[key] = f"{RESULTS} has no uns['geneae']['{key}']."
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        _note(results, key, f"uns['geneae']['{key}'] of {RESULTS} is not text.")
        return None
    return value


def _load_config(results: Results) -> None:
    text = _text(results, "config")
    if text is None:
        return
    results.config_text = text
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        _note(results, "config", f"the configuration is not valid YAML ({exc}); shown as text.")
        return
    results.config = values if isinstance(values, dict) else {}


def _load_metrics(results: Results) -> None:
    text = _text(results, "metrics")
    if text is None:
        return
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        _note(results, "metrics", f"the metrics could not be read ({exc}).")
        return
    if isinstance(values, dict):
        results.metrics = values
    else:
        _note(results, "metrics", "the metrics are not a JSON object.")


def _load_history(results: Results) -> None:
    text = _text(results, "history")
    if text is None:
        return
    try:
        results.history = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        _note(results, "history", f"the training history could not be read ({exc}).")
