"""Figures of a run, drawn from arrays or from a results AnnData; nothing is computed here.

Every function returns a :class:`matplotlib.figure.Figure` and writes no file. Figures are
built with the object-oriented API (``Figure(...)``), not pyplot, so nothing is registered
in pyplot's global figure list, nothing needs closing, and the package works with any
backend (Agg included). Single-panel functions take ``ax=`` to draw into a caller's axes and
then return that axes' figure. Maps, histograms and profiles are computed beforehand by
:mod:`geneae.tl` (no PCA, t-SNE, UMAP or clustering is fitted while drawing).

Modules: ``maps`` (2-D maps), ``training`` (curves), ``reconstruction`` (profiles and value
histograms), ``latent`` (latent usage), ``clusters`` (confusion, stability, responsibilities),
``metrics`` (geneae vs PCA bars), ``compare`` (the figure of ``geneae compare``), ``genes``
(the map of a gene embedding), ``tune`` (a study's history and parameter importances).
"""

from geneae.pl._style import (
    GENEAE_COLOR,
    METHOD_NAMES,
    METRIC_LABELS,
    PCA_COLOR,
    palette,
)
from geneae.pl.clusters import cluster_stability, confusion, responsibilities
from geneae.pl.compare import compare_runs, latent_coordinates
from geneae.pl.genes import gene_map
from geneae.pl.latent import latent_variance
from geneae.pl.maps import embedding, embedding_map, map_pair
from geneae.pl.metrics import metrics_bars
from geneae.pl.reconstruction import expression_histograms, reconstruction_profiles
from geneae.pl.training import training_curves
from geneae.pl.tune import optimization_history, param_importances

__all__ = [
    "GENEAE_COLOR",
    "METHOD_NAMES",
    "METRIC_LABELS",
    "PCA_COLOR",
    "cluster_stability",
    "compare_runs",
    "confusion",
    "embedding",
    "embedding_map",
    "expression_histograms",
    "gene_map",
    "latent_coordinates",
    "latent_variance",
    "map_pair",
    "metrics_bars",
    "optimization_history",
    "palette",
    "param_importances",
    "reconstruction_profiles",
    "responsibilities",
    "training_curves",
]
