"""Metrics as pure functions on arrays: reconstruction, latent usage, clustering, baseline.

Clustering stability (:func:`cluster_stability`) repeats a run's clustering on subsets of
the cells and summarises how often cells stay with their cluster's members.

Inputs are numpy arrays or scipy sparse matrices (computed by the model code); outputs are
plain Python floats, dicts and pandas tables, so they serialise straight to JSON / CSV. No
torch here.
"""

from geneae.evaluate.baseline import (
    METRIC_DIRECTIONS,
    Comparison,
    compare_with_pca,
    pca_embedding,
)
from geneae.evaluate.clustering import (
    cluster,
    clustering_scores,
    hungarian_accuracy,
    match_clusters,
    separation_scores,
)
from geneae.evaluate.genes import cosine_neighbours, top_genes, top_similar_genes
from geneae.evaluate.latent import kl_per_dimension, latent_usage
from geneae.evaluate.leiden_clustering import leiden, leiden_resolution
from geneae.evaluate.neighbourhood import knn_accuracy, nearest_neighbours, trustworthiness
from geneae.evaluate.reconstruction import reconstruction_errors
from geneae.evaluate.stability import (
    Repeat,
    Stability,
    cluster_stability,
    co_clustering,
    repeat_clustering,
)

__all__ = [
    "METRIC_DIRECTIONS",
    "Comparison",
    "Repeat",
    "Stability",
    "cluster",
    "cluster_stability",
    "clustering_scores",
    "co_clustering",
    "compare_with_pca",
    "cosine_neighbours",
    "hungarian_accuracy",
    "kl_per_dimension",
    "knn_accuracy",
    "latent_usage",
    "leiden",
    "leiden_resolution",
    "match_clusters",
    "nearest_neighbours",
    "pca_embedding",
    "reconstruction_errors",
    "repeat_clustering",
    "separation_scores",
    "top_genes",
    "top_similar_genes",
    "trustworthiness",
]
