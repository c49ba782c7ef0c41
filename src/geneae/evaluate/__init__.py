"""Metrics as pure functions on arrays: reconstruction, latent usage, clustering, baseline.

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
    leiden,
    match_clusters,
    separation_scores,
)
from geneae.evaluate.genes import cosine_neighbours, top_genes, top_similar_genes
from geneae.evaluate.latent import kl_per_dimension, latent_usage
from geneae.evaluate.neighbourhood import knn_accuracy, nearest_neighbours, trustworthiness
from geneae.evaluate.reconstruction import reconstruction_errors

__all__ = [
    "METRIC_DIRECTIONS",
    "Comparison",
    "cluster",
    "clustering_scores",
    "compare_with_pca",
    "cosine_neighbours",
    "hungarian_accuracy",
    "kl_per_dimension",
    "knn_accuracy",
    "latent_usage",
    "leiden",
    "match_clusters",
    "nearest_neighbours",
    "pca_embedding",
    "reconstruction_errors",
    "separation_scores",
    "top_genes",
    "top_similar_genes",
    "trustworthiness",
]
