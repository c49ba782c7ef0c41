"""Draw every report figure from a loaded run into ``figures/*.png``.

Each figure is drawn by one call to :mod:`geneae.pl`, written atomically, and kept in memory
(PNG bytes) for embedding. A figure whose inputs are missing becomes a note saying what is
missing; a figure that fails to draw becomes a note with the error (and a logged warning),
so one bad piece never costs the whole report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from geneae import pl
from geneae._atomic import atomic_path
from geneae.report.rundata import REPORT_DATA, RunData

logger = logging.getLogger(__name__)

DPI = 110
MAP_METHODS: tuple[pl.MapMethod, ...] = ("pca", "tsne", "umap")


@dataclass
class FigureItem:
    """One drawn figure: file name, PNG bytes, alt text and a one-line reading guide."""

    name: str
    png: bytes
    alt: str
    caption: str
    heading: str | None = None
    half: bool = False  # shown at half width, beside its neighbour


@dataclass
class FigureSet:
    """Figures and notes per report section, in drawing order, saved into ``figures_dir``."""

    figures_dir: Path
    blocks: dict[str, list[FigureItem | str]] = field(default_factory=dict)

    def note(self, section: str, text: str) -> None:
        self.blocks.setdefault(section, []).append(text)

    def draw(
        self,
        section: str,
        name: str,
        make: Callable[[], Figure],
        *,
        alt: str,
        caption: str,
        heading: str | None = None,
        half: bool = False,
    ) -> None:
        """Draw one figure with ``make`` and save it as ``figures/<name>.png``."""
        try:
            fig = make()
            with atomic_path(self.figures_dir / f"{name}.png") as tmp:
                fig.savefig(tmp, format="png", dpi=DPI)
                png = tmp.read_bytes()
        except Exception as exc:  # noqa: BLE001 - a report shows what it can
            logger.warning("report: figure %s failed", name, exc_info=True)
            self.note(
                section, f"The figure “{alt}” could not be drawn ({type(exc).__name__}: {exc})."
            )
            return
        item = FigureItem(name, png, alt, caption, heading, half)
        self.blocks.setdefault(section, []).append(item)

    @property
    def names(self) -> set[str]:
        return {
            b.name for blocks in self.blocks.values() for b in blocks if isinstance(b, FigureItem)
        }


def draw_figures(run: RunData, figures_dir: Path) -> FigureSet:
    """Draw every figure the run's files allow; see the module docstring."""
    figs = FigureSet(figures_dir)
    _metrics(run, figs)
    _training(run, figs)
    _maps(run, figs)
    _reconstruction(run, figs)
    _latent(run, figs)
    _clusters(run, figs)
    _expression(run, figs)
    return figs


def _no_adata(run: RunData) -> str:
    return run.missing.get("adata", f"{REPORT_DATA} not found") + " No figure from it."


def _labels(run: RunData) -> tuple[Any, str]:
    """Colouring of the maps: the labels, else geneae's clusters, else nothing."""
    if run.labels is not None:
        return run.labels, "known labels"
    clusters = run.obs("geneae_cluster")
    if clusters is not None:
        return clusters.astype(str), "geneae clusters (no labels given)"
    return None, "nothing (no labels and no clusters in the report data)"


def _metrics(run: RunData, figs: FigureSet) -> None:
    comparison = run.comparison
    if "geneae" in comparison and "pca" in comparison:
        figs.draw(
            "metrics",
            "metrics_bars",
            lambda: pl.metrics_bars(comparison),
            alt="Bar charts of every metric for geneae and the PCA baseline",
            caption="One panel per metric: blue geneae, grey PCA of the same dimension; the "
            "arrow says whether higher or lower is better and the better bar is outlined.",
        )


def _training(run: RunData, figs: FigureSet) -> None:
    if run.history is None:
        figs.note("training", run.missing.get("history", "No training history."))
        return
    history = run.history
    figs.draw(
        "training",
        "training_curves",
        lambda: pl.training_curves(history),
        alt="Training and validation curves per epoch",
        caption="Solid: training, dashed: validation, per epoch. Validation flattening while "
        "training keeps falling means over-fitting; the dotted line marks the best epoch.",
    )


def _maps(run: RunData, figs: FigureSet) -> None:
    if run.adata is None:
        figs.note("maps", _no_adata(run))
        return
    adata = run.adata
    labels, coloured_by = _labels(run)
    matrices: dict[str, Any] = {"original": adata.X}
    missing = []
    for key, getter, what in (
        ("reconstruction", lambda: run.layer("geneae_denoised"), "layers['geneae_denoised']"),
        ("geneae", lambda: run.obsm("X_geneae"), "obsm['X_geneae']"),
        ("pca", lambda: run.obsm("X_pca"), "obsm['X_pca']"),
    ):
        value = getter()
        if value is None:
            missing.append(what)
        else:
            matrices[key] = value
    if missing:
        figs.note("maps", f"{REPORT_DATA} lacks {', '.join(missing)}: maps using them are skipped.")
    methods = [
        m
        for m in MAP_METHODS
        if m == "pca" or bool(run.evaluate_option("tsne" if m == "tsne" else "umap", True))
    ]
    skipped = [pl.METHOD_NAMES[m] for m in MAP_METHODS if m not in methods]
    if skipped:
        figs.note("maps", f"{' and '.join(skipped)} maps are turned off in the configuration.")
    cache: dict[tuple[str, str], np.ndarray] = {}

    def coords(key: str, method: pl.MapMethod) -> np.ndarray:
        if (key, method) not in cache:
            cache[key, method] = pl.embed_2d(matrices[key], method, seed=run.seed)
        return cache[key, method]

    d = matrices["geneae"].shape[1] if "geneae" in matrices else "?"
    pairs = [
        (
            "original",
            "reconstruction",
            "reconstruction",
            "original data",
            "geneae reconstruction",
            "the reconstruction keeps the structure of the data if both maps show the same groups",
        ),
        (
            "original",
            "geneae",
            "latent",
            "original data",
            f"geneae latent space ({d} dims)",
            "groups that separate on the right but not on the left were pulled apart by the model",
        ),
        (
            "pca",
            "geneae",
            "baseline",
            f"PCA baseline ({d} components)",
            f"geneae latent ({d} dims)",
            "the better representation shows the known groups as tighter, better-separated islands",
        ),
    ]
    n = adata.n_obs
    for method in methods:
        name = pl.METHOD_NAMES[method]
        for left, right, tag, t_left, t_right, reading in pairs:
            if left not in matrices or right not in matrices:
                continue
            figs.draw(
                "maps",
                f"map_{method}_{tag}",
                lambda m=method, a=left, b=right, tl=t_left, tr=t_right: pl.map_pair(
                    coords(a, m),
                    coords(b, m),
                    labels,
                    method=m,
                    titles=(tl, tr),
                    seed=run.seed,
                    precomputed=True,
                ),
                alt=f"{name} maps of the {t_left} and the {t_right}, coloured by {coloured_by}",
                caption=f"{name} of {n:,} cells, coloured by {coloured_by}: {reading}."
                + (
                    " Distances between far-apart groups mean little here."
                    if method != "pca"
                    else ""
                ),
                heading=f"{name} maps",
            )


def _reconstruction(run: RunData, figs: FigureSet) -> None:
    if run.adata is None:
        figs.note("reconstruction", _no_adata(run))
        return
    recon = run.layer("geneae_denoised")
    if recon is None:
        figs.note("reconstruction", f"{REPORT_DATA} has no layers['geneae_denoised'].")
        return
    adata = run.adata
    genes = list(map(str, adata.var_names))
    names = list(map(str, adata.obs_names))
    figs.draw(
        "reconstruction",
        "reconstruction_profiles",
        lambda: pl.reconstruction_profiles(
            adata.X, recon, genes, n_samples=4, n_genes=50, seed=run.seed, sample_names=names
        ),
        alt="Observed and reconstructed values of four cells over the 50 most variable genes",
        caption="Grey bars: observed values of one cell (model input space); blue line: "
        "geneae's reconstruction. The closer the line follows the bars, the better.",
    )


def _latent(run: RunData, figs: FigureSet) -> None:
    usage = dict(run.section("latent_usage"))
    source = "metrics.json"
    if "variance" not in usage:
        variance = _uns_array(run, "geneae_latent_var")
        latent = run.obsm("X_geneae")
        if variance is None and latent is not None:
            variance, source = latent.var(axis=0), f"the {run.adata.n_obs:,} cells of {REPORT_DATA}"
        if variance is None:
            figs.note(
                "latent", f"No latent usage in metrics.json and no latent space in {REPORT_DATA}."
            )
            return
        usage = {"variance": list(variance)}
        kl = _uns_array(run, "geneae_latent_kl")
        if kl is not None:
            usage["kl"] = list(kl)
    has_kl = usage.get("kl") is not None
    figs.draw(
        "latent",
        "latent_usage",
        lambda: pl.latent_variance(usage),
        alt="Variance" + (" and KL divergence" if has_kl else "") + " per latent dimension",
        caption=f"Per latent dimension (from {source}): variance of the codes across cells"
        + (
            " (blue, left axis) and KL to the prior (red, right axis); dimensions near zero on "
            "both are unused (posterior collapse)."
            if has_kl
            else "; pale bars are inactive dimensions. No KL values were given (deterministic "
            "models have none)."
        ),
    )


def _uns_array(run: RunData, key: str) -> np.ndarray | None:
    if run.adata is None or key not in run.adata.uns:
        return None
    return np.asarray(run.adata.uns[key], dtype=np.float64).ravel()


def _clusters(run: RunData, figs: FigureSet) -> None:
    if run.adata is None:
        figs.note("clusters", _no_adata(run))
        return
    labels = run.labels
    ours, theirs = run.obs("geneae_cluster"), run.obs("pca_cluster")
    if ours is None:
        figs.note("clusters", f"{REPORT_DATA} has no obs['geneae_cluster'].")
    if labels is None:
        figs.note(
            "clusters",
            "No labels: a confusion matrix against known groups is not "
            "possible. Shown instead: how geneae's clusters overlap PCA's.",
        )
        if ours is not None and theirs is not None:
            figs.draw(
                "clusters",
                "clusters_geneae_vs_pca",
                lambda: pl.confusion(
                    theirs.astype(str),
                    ours.astype(str),
                    row_title="PCA cluster",
                    col_title="geneae cluster",
                    title="geneae vs PCA clusters",
                ),
                alt="Cross-tabulation of geneae clusters against PCA clusters",
                caption="Rows: PCA-baseline clusters; columns: geneae clusters (matched order); "
                "colour: fraction of the row. A diagonal means both found the same groups.",
            )
    else:
        for key, series, who in (("geneae", ours, "geneae"), ("pca", theirs, "PCA baseline")):
            if series is None:
                continue
            figs.draw(
                "clusters",
                f"confusion_{key}",
                lambda s=series, w=who: pl.confusion(labels, s.astype(str), title=f"{w} clusters"),
                alt=f"Confusion matrix of {who} clusters against the known labels",
                caption=f"Rows: known labels; columns: {who} clusters, matched to labels "
                "(Hungarian) so that a perfect clustering is a diagonal; numbers are cells, "
                "colour the fraction of the label.",
                half=True,
            )
    probs = run.obsm("geneae_responsibilities")
    if probs is None:
        figs.note(
            "clusters",
            "No mixture responsibilities (obsm['geneae_responsibilities']): "
            "only GMVAE runs have them.",
        )
        return
    figs.draw(
        "clusters",
        "responsibilities",
        lambda: pl.responsibilities(probs, labels),
        alt="Heatmap of GMVAE mixture-component probabilities per cell",
        caption="q(y|x) of each cell (columns, grouped by "
        + ("label" if labels is not None else "most likely component")
        + ") for each mixture component (rows); one dark row per group means the mixture "
        "found that group.",
    )


def _expression(run: RunData, figs: FigureSet) -> None:
    if run.adata is None:
        figs.note("expression", _no_adata(run))
        return
    raw = run.layer("raw")
    if raw is None:
        figs.note(
            "expression",
            f"{REPORT_DATA} has no layers['raw']: only the preprocessed values are shown.",
        )
    adata = run.adata
    figs.draw(
        "expression",
        "expression_histograms",
        lambda: pl.expression_histograms(raw, adata.X),
        alt="Histograms of expression values before and after preprocessing"
        if raw is not None
        else "Histogram of the preprocessed expression values",
        caption="Distribution of every matrix entry (zeros included), counts on a log axis: "
        "preprocessing should tame the long tail of raw counts.",
    )
