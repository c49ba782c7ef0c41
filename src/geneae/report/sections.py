"""What each report section says: plain values for the template, no HTML here.

This module lists the sections in page order and gathers their bodies from one module
per group: :mod:`geneae.report.overview` (summary, configuration, data, timings),
:mod:`geneae.report.comparison` (metrics beside PCA, cluster stability) and
:mod:`geneae.report.gene_tables` (top genes, gene embedding); the figures of each come
from :mod:`geneae.report.blocks`, and :mod:`geneae.report.formatting` formats values.

Every value shown comes from the results file; where a piece is missing, the section
carries a note saying which slot is missing instead of a number. The template escapes
everything (Jinja2 autoescape), so text from files can never become markup.
"""

from __future__ import annotations

from typing import Any

from geneae.report.blocks import figure_blocks
from geneae.report.comparison import clusters_body, metrics_body
from geneae.report.figures import FigureSet
from geneae.report.formatting import fmt, seconds, winner
from geneae.report.gene_tables import (
    DIMS_PER_TABLE,
    GENES_PER_DIM,
    gene_embedding_body,
    genes_body,
)
from geneae.report.overview import (
    TIMING_NAMES,
    config_body,
    data_body,
    summary_body,
    timings_body,
)
from geneae.report.results import Results

__all__ = [
    "DIMS_PER_TABLE",
    "GENES_PER_DIM",
    "SECTIONS",
    "TIMING_NAMES",
    "fmt",
    "seconds",
    "sections",
    "winner",
]

#: (id, heading) of every section, in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("config", "Configuration"),
    ("data", "Data and model"),
    ("metrics", "geneae vs PCA: metrics"),
    ("training", "Training curves"),
    ("maps", "Maps"),
    ("reconstruction", "Reconstruction"),
    ("latent", "Latent space usage"),
    ("clusters", "Clusters"),
    ("expression", "Expression values"),
    ("genes", "Top genes per latent dimension"),
    ("gene_embedding", "Gene embedding"),
    ("timings", "Timings"),
)


def sections(results: Results, figs: FigureSet) -> list[dict[str, Any]]:
    """One dict per section, in page order: ``id``, ``heading``, ``body``, ``blocks``."""
    bodies = {
        "summary": summary_body(results),
        "config": config_body(results),
        "data": data_body(results),
        "metrics": metrics_body(results),
        "clusters": clusters_body(results),
        "genes": genes_body(results),
        "gene_embedding": gene_embedding_body(results),
        "timings": timings_body(results),
    }
    return [
        {
            "id": sid,
            "heading": heading,
            "body": bodies.get(sid, {}),
            "blocks": figure_blocks(figs, sid),
        }
        for sid, heading in SECTIONS
    ]
