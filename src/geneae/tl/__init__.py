"""Compute what the report shows, once, into a run's results AnnData (scanpy's ``tl`` idea).

Every function takes the results AnnData first (rows: the evaluated cells, columns: the
model's genes; see ``docs/results.md``), writes its slots in place and returns None. Nothing
here draws: :mod:`geneae.pl` draws from these slots, :mod:`geneae.report` renders them.

- :func:`maps`: seeded subsample (``obs["plotted"]``) and 2-D maps (PCA, t-SNE, UMAP) of
  several spaces (``obsm["map_<method>_<space>"]``, ``uns["geneae"]["maps"]``).
- :func:`histograms`: the value distributions of the raw and preprocessed matrices.
- :func:`profiles`: observed vs reconstructed values of a few cells, most variable genes.
- :func:`gene_embedding`: a gene embedding, its map and the neighbours of the most variable
  genes (``uns["geneae"]["genes"]``).
- :func:`cluster_stability`: how reproducible each side's clusters are
  (``obs["<side>_stability"]``, ``uns["geneae"]["stability"]``).
- :func:`embed_2d`: the 2-D map of one matrix by one method (returns the coordinates).
- :func:`encode`: a model's latent space and denoised values stored in any AnnData.
"""

from geneae.tl._encode import encode
from geneae.tl._genes import gene_embedding
from geneae.tl._maps import METHOD_NAMES, METHODS, MapMethod, embed_2d, map_key, maps
from geneae.tl._stability import cluster_stability
from geneae.tl._summaries import histograms, profiles

__all__ = [
    "METHODS",
    "METHOD_NAMES",
    "MapMethod",
    "cluster_stability",
    "embed_2d",
    "encode",
    "gene_embedding",
    "histograms",
    "map_key",
    "maps",
    "profiles",
]
