"""Which model genes a member of an ensemble reads and reconstructs, and on what scale.

An ensemble of two kinds (``model.wide_members``, :mod:`geneae.module.ensemble`) trains
members that see the model input differently:

- a *narrow* member reads and reconstructs only the first ``model.narrow_genes`` model
  genes (the preprocessing's most variable, which come first), as they are;
- a *wide* member reads every model gene, each z-scored (centred on its mean, divided by
  its standard deviation on the training data, clipped at :data:`CLIP`), and reconstructs
  those z-scores with squared error: every gene weighs alike, as in z-scored PCA. Where the
  model input is log1p of expression scaled per sample over the narrow genes
  (:func:`geneae.pp.steps.library_genes`), it first rescales each sample to a total over
  every model gene (``model.wide_target_sum``): each kind reads its genes as a run of them
  alone would.

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
    target_sum
        Rescale each sample's log1p values so that their expression totals this over the
        genes the member reads, before z-scoring (0: as given).
    """

    def __init__(
        self, n_model_genes: int, width: int, standardize: bool, target_sum: float = 0.0
    ) -> None:
        super().__init__()
        if not 0 < width <= n_model_genes:
            raise ValueError(f"a view reads 1 to {n_model_genes} genes, not {width}")
        self.n_model_genes = n_model_genes
        self.width = width
        self.standardize = standardize
        self.target_sum = float(target_sum)
        if standardize:  # identity until set from the data (start_at), saved with weights
            self.register_buffer("mean", torch.zeros(width))
            self.register_buffer("std", torch.ones(width))

    @torch.no_grad()
    def start_at(self, mean: Tensor, var: Tensor) -> None:
        """Set the z-scoring from the model genes' means and (population) variances."""
        if self.standardize:
            self.mean.copy_(mean[: self.width])
            self.std.copy_(var[: self.width].clamp_min(0).sqrt().clamp_min(STD_FLOOR))

    def rescaled(self, x: Tensor) -> Tensor:
        """Log1p values ``x`` of the member's genes rescaled to :attr:`target_sum` over them."""
        if not self.target_sum:
            return x
        # One expm1 for the total and the values: in every training step of a wide member
        # these element-wise logs cost as much as its layers (5,000 genes).
        expression = torch.expm1(x.clamp_min(0))
        return torch.log1p(expression / self._per_target(expression))

    def _factor(self, x: Tensor) -> Tensor:
        """(n, 1) each sample's total expression over the member's genes per target_sum."""
        return self._per_target(torch.expm1(self._own_genes(x).clamp_min(0)))

    def _own_genes(self, x: Tensor) -> Tensor:
        """The member's genes of model inputs ``x``."""
        return x[..., : self.width] if self.width < self.n_model_genes else x

    def _per_target(self, expression: Tensor) -> Tensor:
        """(n, 1) the total of each row of ``expression`` per target_sum."""
        return (expression.sum(-1, keepdim=True) / self.target_sum).clamp_min(1e-12)

    def unscaled(self, x: Tensor) -> Tensor:
        """(n, width) the member's genes of model inputs ``x``, rescaled: what it z-scores."""
        return self.rescaled(self._own_genes(x))

    def inputs(self, x: Tensor) -> Tensor:
        """(n, width) the member's input from model inputs ``x`` (n, model genes)."""
        x = self.unscaled(x)
        if self.standardize:
            x = ((x - self.mean) / self.std).clamp(-CLIP, CLIP)
        return x

    def outputs(self, values: Tensor, x: Tensor | None = None) -> Tensor:
        """The member's reconstruction (..., width) in the model input's units.

        Of a member that rescales its samples, ``x`` (the model inputs the values are of)
        gives each sample's scale back; without it the values stay on the member's scale.
        """
        if self.standardize:
            values = values * self.std + self.mean
        if self.target_sum and x is not None:
            values = torch.log1p(torch.expm1(values.clamp_min(0)) * self._factor(x))
        return values

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

    A wide model (``wide_members: 1``) z-scores every gene (rescaled to
    ``wide_target_sum`` first, where it is set); a narrow one
    (``narrow_genes`` below the model genes) reads the first ``narrow_genes``, as they are
    or, with a count likelihood, z-scored (the counts preset's scaling, which the
    preprocessing leaves to each kind of member beside wide ones); any other reads the
    model input as it is (None).
    """
    if cfg.n_wide:
        return GeneView(n_model_genes, n_model_genes, True, cfg.wide_target_sum or 0.0)
    narrow = min(cfg.narrow_genes or 0, n_model_genes)
    if narrow and cfg.models_counts:  # beside wide members (geneae.resolve)
        return GeneView(n_model_genes, narrow, standardize=True)
    if 0 < narrow < n_model_genes:
        return GeneView(n_model_genes, narrow, standardize=False)
    return None
