"""BENCHMARKS.md sections for data that are not raw counts: log-normalised and bulk sets.

Same scoring as the count sets (KMeans with k = labels, seeds 0-2); the peers are the four
PCA variants (scvi-tools needs counts), run on the same values: log-normalised values as
given, bulk TPM after log1p, scaled or not.
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import BULK_DATASETS, LOGNORM_DATASETS


def values_sections(agg: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The two sections, from :func:`benchmarks.report.aggregate` of every record."""
    from benchmarks.report import _cross_dataset, _dataset_table

    lines: list[str] = []
    parts = (
        (
            "Log-normalised input",
            LOGNORM_DATASETS,
            "Cells x genes holding log1p(normalize_total(1e4)) values and no counts — the "
            "shape of most public single-cell matrices and of the classic homework. The "
            "`*_lognorm` sets are the count sets above turned into that (their 2,000 "
            "seurat_v3 genes); `pbmc68k_lognorm` is scanpy's bundled pbmc68k_reduced "
            "(`raw.X`, 700 x 765, 10 labels). geneae gets the values with nothing said "
            "about them (`geneae train` defaults); PCA runs on the same values.",
        ),
        (
            "Bulk RNA-seq",
            BULK_DATASETS,
            "`bulk_tcga_like`: synthetic tumour types at TCGA scale in TPM (not logged; "
            "benchmarks.synthetic.synthetic_bulk: 600 samples x 20,000 genes, 8 types in 3 "
            "lineages, shared continuous programs, NB reads at ~30 M depth). geneae detects "
            "the unlogged values and log-transforms them; PCA gets log1p(TPM). No public bulk "
            "set ships in a PyPI package that this harness can use offline, so the real bulk "
            "test remains the held-out one.",
        ),
    )
    for title, names, text in parts:
        present = {d: agg[d] for d in names if d in agg}
        lines += [f"## {title}", ""]
        if not present:
            lines += [
                "Not run. Run `python -m benchmarks quality --datasets "
                + " ".join(names)
                + " --methods scanpy-pca10 scanpy-pca50 pca10-unscaled pca50-unscaled "
                "recommended`.",
                "",
            ]
            continue
        lines += [text, ""]
        for dataset, by_method in present.items():
            lines += _dataset_table(dataset, by_method)
        lines += _cross_dataset(
            present, f"{title}: across datasets", "Peers here: the four PCA variants. "
        )
    return lines
