"""BENCHMARKS.md sections beside the count sets: log-normalised, CPM and bulk values, synthetic
counts that probe one property, and small draws of the count sets.

Same scoring as the count sets (KMeans with k = labels, seeds 0-2). On values the peers are
the four PCA variants (scvi-tools needs counts), run on the same values: log-normalised
values as given, single cells' CPM and bulk TPM after log1p, scaled or not; on the
synthetic counts every peer and the small draws every peer runs, as on the count sets.
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import (
    BULK_DATASETS,
    CPM_DATASETS,
    LOGNORM_DATASETS,
    SMALL_CELLS,
    SMALL_COUNT_DATASETS,
    SYNTHETIC_COUNT_DATASETS,
)

# Who the values' sections compare with: scvi-tools needs counts.
PCA_PEERS = "Peers here: the four PCA variants. "


def values_sections(agg: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The three sections, from :func:`benchmarks.report.aggregate` of every record."""
    from benchmarks.report import _cross_dataset, _dataset_table

    lines: list[str] = []
    parts = (
        (
            "Log-normalised input",
            LOGNORM_DATASETS,
            "Cells x genes holding log1p(normalize_total) values and no counts — the "
            "shape of most public single-cell matrices and of the classic homework. The "
            "`*_lognorm` sets are the count sets above at 1e4 per cell (their 2,000 "
            "seurat_v3 genes; the `*_allgenes_lognorm` sets every gene of the whole-genome "
            "files); `pbmc68k_lognorm` is scanpy's bundled pbmc68k_reduced (`raw.X`, 700 x "
            "765, 10 labels); the `*_lnmedian` sets are the same cells as "
            "log1p(normalize_total()) at scanpy's default total, the median of the cells' "
            "totals (895 UMIs of 10x PBMC's 2,000 genes, 35 of worm neurons', 315 of mouse "
            "bladder's), the form of the newer scanpy tutorials; the `*_lncounts` sets "
            "are log1p of the counts themselves, never normalised (`sc.pp.log1p` with "
            "`normalize_total` skipped: geneae takes the counts back, every value being "
            "the log of a whole number). geneae gets the values "
            "with nothing said about them (`geneae train` defaults); PCA runs on the same "
            "values (of a table of more than 2,000 "
            "genes, scaled PCA on scanpy's 2,000 seurat HVGs, unscaled PCA on every gene: "
            "each its stronger form there).",
            PCA_PEERS,
        ),
        (
            "Single cells in counts per million",
            CPM_DATASETS,
            "Cells x genes in CPM, not logged — the form of many studies' supplementary "
            "tables, and of counts after ambient-RNA removal (not integers, not logged). "
            "The `*_cpm` sets are the count sets above as normalize_total(1e6) of their "
            "2,000 seurat_v3 genes, with no counts anywhere. geneae gets the values with "
            "nothing said about them; PCA gets scanpy's single-cell log of them, "
            "log1p(normalize_total(1e4)) — the input of its peers on the `*_lognorm` sets.",
            PCA_PEERS,
        ),
        (
            "Bulk RNA-seq",
            BULK_DATASETS,
            "`bulk_tcga_like`: synthetic tumour types at TCGA scale in TPM (not logged; "
            "benchmarks.synthetic.synthetic_bulk: 600 samples x 20,000 genes, 8 types in 3 "
            "lineages, shared continuous programs, NB reads at ~30 M depth). "
            "`bulk_estimated_counts`: the same tumours as RSEM expected counts (reads "
            "not divided by the depth, which varies wider, log sd 0.5; each scaled by "
            "U(0.9, 1.1) and rounded to two decimals, as an EM leaves them). "
            "`bulk_log2_centred`: the same tumours as UCSC Xena's pan-cancer tables hold "
            "them, log2(TPM + 1) minus each gene's mean (log values, centred, not scaled); "
            "geneae reads them as centred values and keeps the 2,000 of largest variance, "
            "PCA gets the values as given (scaled: scanpy's 2,000 seurat HVGs of them). "
            "`bulk_small`: a small study with a weak signal, 120 samples x 3,000 genes in TPM "
            "from the same generator (seed 41; its types move few genes, and two of them have "
            "6 and 9 samples). `bulk_tiny`: a cohort of the size of many GEO studies, 80 "
            "samples x 2,000 genes in TPM, 6 types in 3 lineages (seed 20; two types of 5 "
            "samples). `bulk_pseudo_bladder` and `bulk_pseudo_worm`: bulk samples built from "
            "real cells (benchmarks.pseudobulk: 400 samples in TPM, 20,670 and 13,488 genes), "
            "each a mixture of the cell types of the whole-genome count set of that name — "
            "20-60% of it the sample's own type, one of the set's 8 largest, the rest every "
            "other type in shares of its own, as a tumour sample holds its malignant cells "
            "among other cells — with the types' profiles from the real cells' counts "
            "(shrunk towards all cells' profile), log-normal biological noise (sd 0.3) and "
            "Poisson reads at ~30 M. They carry real genes' abundances and real types' "
            "differences where the synthetic sets draw them. `bulk_pseudo_bladder_counts` "
            "and `bulk_pseudo_worm_counts` are the same samples as integer read counts "
            "(each sample's depth left in, as featureCounts or HTSeq give them), "
            "`bulk_read_counts` the synthetic tumours of `bulk_tcga_like` so (depth log sd "
            "0.5). geneae detects "
            "the unlogged values, log-transforms them and keeps its 2,000 seurat HVGs for "
            "half its members, each sample scaled to 1e4 over them, and 5,000 for the other "
            "half, scaled to a million over those (wide members: every gene z-scored, "
            "squared error; TPM keeps its values, estimated counts become CPM; "
            "docs/design/default-model.md, rounds 73-77); "
            "read counts take the single-cell counts path (log1p per 1e4, the narrow half "
            "modelling the counts of its 2,000 genes with the NB likelihood) with the same "
            "two kinds of members (round 75); PCA gets log1p of TPM / CPM (unscaled: every "
            "gene; "
            "scaled: scanpy's 2,000 seurat HVGs). "
            "`bulk_vst` and `bulk_pseudo_bladder_vst`: the read counts of `bulk_read_counts` "
            "and `bulk_pseudo_bladder_counts` as DESeq2's `vst()` gives them, the input of "
            "its plotPCA and of many GEO tables (benchmarks.vst: genes of 10 reads or more, "
            "median-of-ratios size factors, the blind parametric dispersion trend and its "
            "closed-form transformation): log2-like values with a floor of 3.4 on the "
            "bladder samples and of -0.58 on the tumours, whose eight types widen the blind "
            "trend. geneae keeps them as log values with squared error (the tumours' "
            "negative floor reads as other values, their genes ranked by variance); PCA "
            "takes them as given (scaled: scanpy's 2,000 seurat HVGs of them). "
            "`bulk_logcpm` and `bulk_pseudo_bladder_logcpm`: the same genes' reads as "
            "edgeR's `cpm(log = TRUE, prior.count = 2)` after `calcNormFactors` (TMM) gives "
            "them, the input of limma and of many more GEO tables (benchmarks.logcpm): every "
            "sample's zero at one floor (-4.3 and -3.9), the samples' totals as uneven as "
            "the TMM factors. geneae keeps them as other values with squared error, their "
            "genes ranked by variance, as the tumours' VST; PCA takes them as given. "
            "`bulk_pseudo_bladder_ntd` and `bulk_pseudo_worm_ntd`: the bladder and worm "
            "samples' reads as DESeq2's `normTransform`, log2(normalised counts + 1), which "
            "geneae reads as log values (seurat genes) and keeps. "
            "The one public bulk set a PyPI package ships (inmoose's airway: 8 samples) is "
            "too small to cluster, so the real bulk test remains the held-out one.",
            PCA_PEERS,
        ),
        (
            "Fine subtypes within lineages",
            SYNTHETIC_COUNT_DATASETS,
            "`fine_subtypes`: synthetic UMI-like counts of an atlas's two levels "
            "(benchmarks.synthetic.synthetic_hierarchy: 8,000 cells x 2,000 genes, 5 lineages "
            "that each move 10% of the genes strongly, 8 subtypes per lineage that each move "
            "25 genes a little; labels are the 40 subtypes). Every method gets the counts, as "
            "on the count sets. It asks what happens when the labels are finer than the groups "
            "a clustering finds first — geneae's clustering phase sharpens the groups Leiden "
            "finds at resolution 1 (on this set, the 5 lineages). The table scores the 40 "
            "subtypes. Which of the default's parts costs here, and what to set instead "
            "(`--preset scvi-like`, or the default without its clustering phase and "
            "standardised term): docs/design/default-model.md, round 29.",
            "",
        ),
        (
            "Small sets",
            SMALL_COUNT_DATASETS,
            f"`<set>_n{SMALL_CELLS}`: {SMALL_CELLS} cells of each shared count set, drawn at "
            "random without replacement (one fixed draw for every method and seed; all of "
            "the set's genes; its rare types keep a handful of cells or none) — the size of "
            "plate-based studies and pilots, where a model has few samples to learn from and "
            "PCA nothing to lose. Every method gets the counts, as on the count sets.",
            "",
        ),
    )
    for title, names, text, peers in parts:
        present = {d: agg[d] for d in names if d in agg}
        lines += [f"## {title}", ""]
        if not present:
            lines += [
                "Not run. Run `python -m benchmarks quality --datasets "
                + " ".join(names)
                + " --methods scanpy-pca10 scanpy-pca50 pca10-unscaled pca50-unscaled "
                + ("scvi " if names in (SYNTHETIC_COUNT_DATASETS, SMALL_COUNT_DATASETS) else "")
                + "recommended`.",
                "",
            ]
            continue
        lines += [text, ""]
        for dataset, by_method in present.items():
            lines += _dataset_table(dataset, by_method)
        lines += _cross_dataset(present, f"{title}: across datasets", peers)
    return lines
