"""What a data set looks like at a glance: the facts behind ``geneae info PATH``.

:func:`summarize` returns plain Python values (JSON-ready, testable); :func:`format_summary`
only lays them out, so the CLI and the HTML report can present the same facts.
"""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from rich.table import Table

from geneae.facts import describe
from geneae.io.finalize import LABEL_KEYS
from geneae.labels import labelled_rows

_BACKED_ROWS = 2000  # rows read from disk to describe a backed matrix
_CLASSES_SHOWN = 8
_ANNOTATIONS_SHOWN = 8


def _label_key(adata: ad.AnnData) -> str | None:
    by_lower = {str(c).lower(): str(c) for c in reversed(list(adata.obs.columns))}
    return next((by_lower[k] for k in LABEL_KEYS if k in by_lower), None)


def _number(value: float) -> int | float:
    """An int when the value is whole (library sizes of counts), else a float."""
    value = float(value)
    return int(value) if value.is_integer() else value


def summarize(adata: ad.AnnData) -> dict[str, Any]:
    """Describe an expression matrix.

    Parameters
    ----------
    adata
        Samples x genes data, as returned by :func:`geneae.io.read` (backed allowed: the
        value statistics then come from the first rows only, flagged by ``"sampled"``).

    Returns
    -------
    dict
        ``n_cells``, ``n_genes``, ``value_type`` (raw counts / log-normalised /
        standardised / other), ``log_scale`` (the log with a pseudo-count whose floor
        ``other`` values have, e.g. ``log2(x+0.001)``, or the log2(x+1) of counts that
        carry each sample's depth; else None), ``sparsity``
        (fraction of zeros), ``storage`` ("sparse" / "dense"), ``dtype``,
        ``library_size`` ({"min", "median", "max"} for counts, else None),
        ``label_key``, ``label_source``, ``n_classes``, ``class_sizes`` (label -> count,
        largest first), ``n_unlabelled`` (samples without a label), ``annotations`` (the
        other obs columns), ``obsm``, ``layers``, ``format``, ``sampled``.
    """
    x = adata.X
    sampled = bool(adata.isbacked) and adata.n_obs > _BACKED_ROWS
    if adata.isbacked:
        x = x[: min(adata.n_obs, _BACKED_ROWS)]
    sparse = sp.issparse(x)
    if not sparse:
        x = np.asarray(x)
    n_values = x.shape[0] * x.shape[1]
    nonzero = int(np.count_nonzero(x.data)) if sparse else int(np.count_nonzero(x))
    facts = describe(ad.AnnData(X=x))  # the values as a run sees them (no layers)
    kind, scale = facts.value_type, facts.log_scale
    library = None
    if kind == "raw counts" and x.shape[0]:
        sizes = np.asarray(x.sum(axis=1)).ravel()
        library = {
            "min": _number(sizes.min()),
            "median": _number(np.median(sizes)),
            "max": _number(sizes.max()),
        }
    key = _label_key(adata)
    class_sizes: dict[str, int] = {}
    unlabelled = 0
    if key is not None:
        values, labelled = labelled_rows(adata.obs[key].to_numpy(), adata.n_obs, key)
        counts = pd.Series(values[labelled].astype(str)).value_counts(sort=True)
        class_sizes = {str(k): int(v) for k, v in counts.items()}
        unlabelled = int((~labelled).sum())
    source = adata.uns.get("geneae_source", {})
    label_source = source.get("label_key", key) if key is not None else None
    annotations = [str(c) for c in adata.obs.columns if c not in (key, label_source)]
    return {
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "value_type": kind,
        "log_scale": str(scale) if scale else None,
        "sparsity": 1.0 - nonzero / n_values if n_values else 0.0,
        "storage": "sparse" if sparse else "dense",
        "dtype": str(x.dtype),
        "library_size": library,
        "label_key": key,
        "label_source": label_source,
        "n_classes": len(class_sizes),
        "class_sizes": class_sizes,
        "n_unlabelled": unlabelled,
        "annotations": annotations,
        "obsm": [str(k) for k in adata.obsm.keys()],
        "layers": [str(k) for k in adata.layers.keys()],
        "counts_from": source.get("counts_from"),
        "format": source.get("format"),
        "sampled": sampled,
    }


def _classes_text(summary: dict[str, Any]) -> str:
    sizes = list(summary["class_sizes"].items())
    shown = ", ".join(f"{name}: {n:,}" for name, n in sizes[:_CLASSES_SHOWN])
    more = len(sizes) - _CLASSES_SHOWN
    unlabelled = summary.get("n_unlabelled", 0)
    return (
        shown
        + (f", ... ({more} more)" if more > 0 else "")
        + (f"; {unlabelled:,} without a label" if unlabelled else "")
    )


def format_summary(summary: dict[str, Any], title: str) -> Table:
    """Lay out :func:`summarize`'s result as a two-column rich table.

    Parameters
    ----------
    summary
        The dict from :func:`summarize`.
    title
        Shown above the table (usually the file path).

    Returns
    -------
    rich.table.Table
        Print it with ``rich.console.Console().print(table)``.
    """
    table = Table(title=str(title), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("shape", f"{summary['n_cells']:,} samples x {summary['n_genes']:,} genes")
    if summary.get("format"):
        table.add_row("format", str(summary["format"]))
    sampled = f" (first {_BACKED_ROWS:,} rows)" if summary.get("sampled") else ""
    scale = summary.get("log_scale")
    named = f": {scale}, undone by default" if scale else ""
    table.add_row("values", f"{summary['value_type']}{named}{sampled}")
    table.add_row(
        "storage",
        f"{summary['storage']} {summary['dtype']}, {summary['sparsity']:.1%} zeros",
    )
    library = summary.get("library_size")
    if library:
        table.add_row(
            "library size",
            f"min {library['min']:,}, median {library['median']:,}, max {library['max']:,}",
        )
    if summary.get("label_key"):
        source = summary.get("label_source")
        origin = f" (from {source})" if source and source != summary["label_key"] else ""
        table.add_row(
            f"labels: {summary['label_key']}{origin}",
            f"{summary['n_classes']} classes - {_classes_text(summary)}",
        )
    else:
        table.add_row("labels", "none")
    annotations = summary.get("annotations")
    if annotations:
        more = len(annotations) - _ANNOTATIONS_SHOWN
        shown = ", ".join(annotations[:_ANNOTATIONS_SHOWN])
        table.add_row("annotations (obs)", shown + (f", ... ({more} more)" if more > 0 else ""))
    if summary.get("obsm"):
        table.add_row("obsm", ", ".join(summary["obsm"]))
    if summary.get("layers"):
        table.add_row("layers", ", ".join(summary["layers"]))
    if summary.get("counts_from"):
        table.add_row("raw counts", f"{summary['counts_from']} (the count models use them)")
    return table
