"""Readers and writers: expression files in, AnnData out; results out, atomically.

``read`` detects the format (content first, extension second) and returns a samples x
genes AnnData with the same conventions whatever the source; ``summarize`` and
``format_summary`` describe it for ``geneae info``; ``write_h5ad`` and ``write_matrix``
write results without ever leaving half-written files.
"""

from geneae.io.detect import FORMATS
from geneae.io.dispatch import read
from geneae.io.finalize import LABEL_KEYS
from geneae.io.labels_file import LabelsSheet
from geneae.io.summary import format_summary, summarize
from geneae.io.write import WRITE_SUFFIXES, write_h5ad, write_matrix
from geneae.matrix_values import value_type

__all__ = [
    "FORMATS",
    "LABEL_KEYS",
    "LabelsSheet",
    "WRITE_SUFFIXES",
    "format_summary",
    "read",
    "summarize",
    "value_type",
    "write_h5ad",
    "write_matrix",
]
