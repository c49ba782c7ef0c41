"""Preprocessing: fit on training data, re-apply identically to new data.

- :class:`Preprocessor` (``preprocessor.py``): the estimator, its JSON state.
- ``checks.py``: reading X or a layer, value checks with messages that say where.
- ``blocks.py``: working a block of rows at a time, dense or CSR.
- ``transforms.py``: normalisation, log1p, per-gene statistics, HVG scores.
- ``selection.py``: filters, empty cells and genes, gene lists.
- ``grouping.py``: :func:`pseudobulk`, :func:`transpose`.

What ``auto`` means for a dataset is decided in :mod:`geneae.resolve`, not here.
"""

from geneae.pp.grouping import pseudobulk, transpose
from geneae.pp.preprocessor import Preprocessor
from geneae.pp.selection import read_gene_list

__all__ = ["Preprocessor", "pseudobulk", "read_gene_list", "transpose"]
