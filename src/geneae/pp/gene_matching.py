"""Find a model's genes in new data: by name, then by Ensembl ID without its version.

Ensembl gene IDs carry a version (``ENSG00000141510.17``) that changes between annotation
releases while the gene stays the same; data quantified against another GENCODE release
then name every gene slightly differently. Genes not found by name are looked up by their
unversioned ID when that ID names exactly one gene on each side, as most tools compare
them; the match is said in a warning.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from geneae.errors import DataWarning
from geneae.io.identifiers import ENSEMBL_GENE_ID

__all__ = ["gene_columns"]

#: A versioned Ensembl ID: the stable ID, then ``.version`` (and nothing after it).
_VERSIONED = re.compile(rf"^({ENSEMBL_GENE_ID})\.\d+$", re.IGNORECASE)


def gene_columns(genes: pd.Index, names: pd.Index) -> np.ndarray:
    """Column of each of ``genes`` in ``names`` (-1 where absent), see the module docstring."""
    cols = names.get_indexer(genes)
    missing = np.flatnonzero(cols < 0)
    if not missing.size:
        return cols
    stable_names = _unique_stable(names)
    if not stable_names:
        return cols
    stable_genes = _unique_stable(genes)
    found = 0
    example = None
    for i in missing:
        stable = _stable(str(genes[i]))
        if stable is None or stable not in stable_genes or stable not in stable_names:
            continue
        cols[i] = stable_names[stable]
        found += 1
        example = example or f"{genes[i]} as {names[cols[i]]}"
    if found:
        warnings.warn(
            f"{found:,} genes matched by their Ensembl ID without its version (e.g. "
            f"{example}): the data come from another annotation release.",
            DataWarning,
            stacklevel=4,
        )
    return cols


def _stable(name: str) -> str | None:
    match = _VERSIONED.match(name)
    return match.group(1).upper() if match else None


def _unique_stable(names: pd.Index) -> dict[str, int]:
    """Unversioned ID -> position, for the IDs only one of ``names`` has."""
    positions: dict[str, int] = {}
    repeated: set[str] = set()
    for pos, name in enumerate(names):
        stable = _stable(str(name))
        if stable is None:
            continue
        if stable in positions:
            repeated.add(stable)
        positions[stable] = pos
    return {k: v for k, v in positions.items() if k not in repeated}
