"""Which model genes a member of an ensemble reads and reconstructs, and on what scale.

An ensemble of two kinds (``model.wide_members``, :mod:`geneae.module.ensemble`) trains
members that see the model input differently:

- a *narrow* member reads and reconstructs only the first ``model.narrow_genes`` model
  genes (the preprocessing's most variable, which come first), as they are;
- a *wide* member reads every model gene, each z-scored (centred on its mean, divided by
  its standard deviation on the training data, clipped at :data:`CLIP`), and reconstructs
  those z-scores with squared error: every gene weighs alike, as in z-scored PCA.

On bulk tables the two see different signals: a tumour type's genes among the 2,000 most
variable (where the extra genes of a wider input bury it), and a cell type's signal spread
over thousands of genes (docs/design/default-model.md, rounds 72-73). :class:`GeneView`
maps the model input to a member's own input (:meth:`GeneView.inputs`) and its
reconstruction back to model genes' units (:meth:`GeneView.outputs`); the ensemble places
each member's genes among the model genes (:meth:`GeneView.columns`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geneae.config import ModelConfig

__all__ = ["CLIP", "GeneView", "gene_view"]

# A wide member's z-scores are clipped here, as the standardize preset clips its own.
CLIP = 10.0
# Standard deviations are floored here: a gene constant on the training data is 0 after
# centring, whatever it reads elsewhere.
STD_FLOOR = 1e-6


class GeneView(nn.Module):
    """The model genes one member reads (a leading slice, or all) and their scaling.

    Parameters
    ----------
    n_model_genes
        The model's input width.
    width
        The genes this member reads: the first ``width`` model genes.
    standardize
        Whether the member z-scores them (from :meth:`start_at`'s moments).
    """

    def __init__(self, n_model_genes: int, width: int, standardize: bool) -> None:
        super().__init__()
        if not 0 < width <= n_model_genes:
            raise ValueError(f"a view reads 1 to {n_model_genes} genes, not {width}")
        self.n_model_genes = n_model_genes
        self.width = width
        self.standardize = standardize
        if standardize:  # identity until set from the data (start_at), saved with weights
            self.register_buffer("mean", torch.zeros(width))
            self.register_buffer("std", torch.ones(width))

    @torch.no_grad()
    def start_at(self, mean: Tensor, var: Tensor) -> None:
        """Set the z-scoring from the model genes' means and (population) variances."""
        if self.standardize:
            self.mean.copy_(mean[: self.width])
            self.std.copy_(var[: self.width].clamp_min(0).sqrt().clamp_min(STD_FLOOR))

    def inputs(self, x: Tensor) -> Tensor:
        """(n, width) the member's input from model inputs ``x`` (n, model genes)."""
        if self.width < self.n_model_genes:
            x = x[..., : self.width]
        if self.standardize:
            x = ((x - self.mean) / self.std).clamp(-CLIP, CLIP)
        return x

    def outputs(self, values: Tensor) -> Tensor:
        """The member's reconstruction (..., width) in the model input's units."""
        return values * self.std + self.mean if self.standardize else values

    def gene_means(self, mean: Tensor) -> Tensor:
        """Where the member's input stands on average: its heads start there."""
        return torch.zeros(self.width) if self.standardize else mean[: self.width]

    def unit(self) -> Tensor | float:
        """Model-input units per unit of the member's input, per gene (for loadings)."""
        return self.std if self.standardize else 1.0

    @property
    def columns(self) -> slice:
        """The model genes the member reads and reconstructs."""
        return slice(0, self.width)


def gene_view(cfg: ModelConfig, n_model_genes: int) -> GeneView | None:
    """The view of a single model of ``cfg`` (an ensemble's member) on ``n_model_genes``.

    A wide model (``wide_members: 1``) z-scores every gene; a narrow one
    (``narrow_genes`` below the model genes) reads the first ``narrow_genes``; any other
    reads the model input as it is (None).
    """
    if cfg.n_wide:
        return GeneView(n_model_genes, n_model_genes, standardize=True)
    narrow = cfg.narrow_genes or 0
    if 0 < narrow < n_model_genes:
        return GeneView(n_model_genes, narrow, standardize=False)
    return None
