"""How values are shown in the report: numbers, durations, which side is better.

Shared by the section modules (:mod:`geneae.report.overview`,
:mod:`geneae.report.comparison`, :mod:`geneae.report.gene_tables`); plain strings, no HTML.
"""

from __future__ import annotations

import math
from typing import Any

from geneae.evaluate import METRIC_DIRECTIONS

__all__ = ["fmt", "formatted_rows", "pretty_key", "seconds", "winner"]


def fmt(value: Any) -> str:
    """A number as shown in the report; anything missing or undefined is "n/a"."""
    if value is None or isinstance(value, bool):
        return "n/a" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.1f}"
        if abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.3f}"
    return str(value)


def seconds(value: Any) -> str:
    """A duration as shown in the report ("n/a" when missing)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "n/a"
    if value >= 60:
        minutes, secs = divmod(float(value), 60)
        return f"{int(minutes)} min {secs:.0f} s"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def winner(metric: str, ours: Any, theirs: Any) -> str | None:
    """``"geneae"``, ``"pca"``, ``"tie"`` or None (no direction or a value missing)."""
    direction = METRIC_DIRECTIONS.get(metric)
    try:
        a, b = float(ours), float(theirs)
    except (TypeError, ValueError):
        return None
    if direction is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    if a == b:
        return "tie"
    return "geneae" if (a > b) == (direction == "higher") else "pca"


def formatted_rows(pairs: Any) -> list[tuple[str, str]]:
    """``(label, value)`` pairs with each value formatted by :func:`fmt`."""
    return [(str(k), fmt(v)) for k, v in pairs]


def pretty_key(key: str) -> str:
    """``val_elbo`` -> ``validation ELBO``: readable names for metric keys."""
    words = {"val": "validation", "train": "training", "elbo": "ELBO", "kl": "KL", "nll": "NLL"}
    return " ".join(words.get(w, w) for w in str(key).split("_"))


def row_nouns(data: Any) -> tuple[str, str, str]:
    """What the results' rows are (singular, plural) and what their columns are.

    ``data``: the metrics' ``data`` section. Samples and genes (geneae's words, for cells
    and bulk samples alike); a model of genes (``genes_as_samples``) has genes for rows and
    samples for columns.
    """
    if isinstance(data, dict) and data.get("genes_as_samples"):
        return "gene", "genes", "samples"
    return "sample", "samples", "genes"
