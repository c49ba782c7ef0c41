"""Several models of one family, each trained alone; their latents side by side.

Two models of the same data and settings that differ only in their initial weights find
clusters that agree at ARI 0.65-0.96 (docs/design/default-model.md, round 7): the seed
moves the latent more than any setting does. Three members with their latents
concatenated, each block centred and put on one scale, bring the seed-to-seed spread of
the clusters under 0.01 ARI and keep or raise their quality.

:class:`Ensemble` holds ``model.members`` modules of ``model.family``. Each is trained as
the single model of its own seed (:func:`geneae.model_training.train_module`: its own
initial weights, validation split, batch order and early stopping; members trained on
the same batches in one loop agree more with each other and average out less). The
ensemble offers the outputs of :class:`~geneae.module.ExpressionModule`:

- ``encode`` / ``predict``: the members' latent means, each block centred and scaled so
  that its dimensions have unit mean variance on the training data (:meth:`calibrate`),
  concatenated: ``members x latent_dim`` dimensions (and a PCA block's, below);
  posterior variances on the same scale; the reconstruction is the mean of the members'
  reconstructions.
- ``generative``: decodes a concatenated code as the mean of the members' decoded
  parameters (each from its own block, scale undone), so that the loadings of any latent
  dimension are well defined.

Members may see the model genes differently (``model.wide_members``,
:mod:`geneae.module.views`): narrow ones read the leading most variable genes as they are,
wide ones every gene z-scored. Each member's reconstruction is in the model input's units,
and the ensemble's is, for each gene, the mean of the members that reconstruct it.

With ``model.pca_block`` (the default below 800 samples) the embedding
ends with one more block of ``latent_dim`` dimensions: the principal components of the
model input on the training data (as a wide member reads it, where there is one),
centred and scaled as a member's block. With few samples
the members learn a noisier map than PCA's (docs/design/default-model.md, round 54); the
block carries no posterior variance, so an ensemble with it gives none, and it decodes
nothing (``generative`` reads the members' blocks only).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geneae.config import ModelConfig
from geneae.module.base import ExpressionModule
from geneae.module.views import GeneView

__all__ = ["PCA_FIT_ROWS", "Ensemble", "member_codes_of", "members_of"]

# The most samples a PCA block is fitted on: by default it is for fewer than 800 and sees
# them all; one asked for on more data gets a seeded draw, so that its dense input stays
# bounded (20,000 samples x 2,000 genes: 160 MB).
PCA_FIT_ROWS = 20_000


class Ensemble(nn.Module):
    """``len(members)`` trained modules; their latents concatenated.

    Parameters
    ----------
    members
        Freshly built modules of one configuration (their initial weights differ); its
        ``pca_block`` gives the embedding a PCA block of the members' input width.
    """

    def __init__(self, members: list[ExpressionModule]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
        self.members = nn.ModuleList(members)
        first = members[0]
        self.cfg: ModelConfig = first.cfg
        self.n_genes = first.n_model_genes
        self.n_covariates = first.n_covariates
        self.learned_library = first.learned_library
        d = self.cfg.latent_dim
        # Identity until calibrated: training never reads them.
        self.register_buffer("centres", torch.zeros(len(members), d))
        self.register_buffer("scales", torch.ones(len(members)))
        # Width of the PCA block's input (0: no block); its buffers are set by calibrate and
        # saved with the weights (a model saved before the block has none).
        self.pca_genes = self.n_genes if self.cfg.pca_block else 0
        # Where members see the genes differently, the block reads the wide members' view
        # (an index: a module attribute would save the view's buffers twice).
        wide = [i for i, m in enumerate(members) if m.cfg.n_wide]
        self._pca_member = wide[0] if wide else None
        if self.pca_genes:
            self.register_buffer("pca_mean", torch.zeros(self.pca_genes))
            self.register_buffer("pca_components", torch.zeros(d, self.pca_genes))
            self.register_buffer("pca_scale", torch.ones(()))

    @torch.no_grad()
    def calibrate(self, member_latents: list[Tensor], inputs: Tensor | None = None) -> None:
        """Set each block's centre and scale from the members' latent means of the data.

        Each block is centred and divided by the root of its mean variance per dimension,
        so that every member weighs alike in the concatenation whatever scale its latent
        took, and the whole keeps the scale of one model's latent (about 1 per dimension).
        With a PCA block, ``inputs`` (the model input of the same samples, dense) give its
        components and scale.
        """
        if len(member_latents) != len(self.members):
            raise ValueError(
                f"calibrate needs one latent per member ({len(self.members)}), "
                f"got {len(member_latents)}"
            )
        for i, z in enumerate(member_latents):
            centre = z.mean(0)
            self.centres[i] = centre
            self.scales[i] = _root_mean_variance(z - centre)
        if self.pca_genes:
            if inputs is None:
                raise ValueError("calibrate needs the model inputs for the PCA block")
            self._fit_pca(self.pca_input(inputs.float()))

    def _fit_pca(self, x: Tensor) -> None:
        """The block's mean, ``latent_dim`` principal axes and scale from inputs ``x``."""
        mean = x.mean(0)
        centred = x - mean
        # float64: the axes of a few hundred samples must not depend on rounding.
        _, _, vt = torch.linalg.svd(centred.double(), full_matrices=False)
        axes = vt[: self.cfg.latent_dim]
        # Each axis's sign is fixed (its largest loading positive), as scikit-learn's PCA.
        largest = axes.gather(1, axes.abs().argmax(1, keepdim=True))
        axes = torch.where(largest < 0, -axes, axes).to(x.dtype)
        self.pca_mean.copy_(mean)
        self.pca_components.copy_(axes)
        self.pca_scale.copy_(_root_mean_variance(centred @ axes.T))

    @property
    def pca_view(self) -> GeneView | None:
        """The view the PCA block reads the model input through (None: as it is)."""
        if self._pca_member is None:
            return None
        return self.members[self._pca_member].view

    def pca_input(self, x: Tensor) -> Tensor:
        """What the PCA block reads of model inputs ``x``: as a wide member does, if any."""
        return x if self.pca_view is None else self.pca_view.inputs(x)

    def pca_codes(self, x: Tensor) -> Tensor:
        """(n, latent_dim) the PCA block of model inputs ``x``, scaled as a member's block."""
        centred = self.pca_input(x.float()) - self.pca_mean
        return centred @ self.pca_components.T / self.pca_scale

    def pca_loadings(self) -> Tensor:
        """(genes, latent_dim) the PCA block's axes times its scale.

        The change of the model input per unit of the block's dimensions (it decodes
        nothing); a block of z-scores, times each gene's standard deviation.
        """
        unit = 1.0 if self.pca_view is None else self.pca_view.unit()
        return self.pca_components.T * self.pca_scale * torch.as_tensor(unit).reshape(-1, 1)

    # -- outputs ---------------------------------------------------------------------------
    def member_codes(self, z: Tensor) -> list[tuple[ExpressionModule, Tensor, Tensor]]:
        """``(member, its code, its scale)`` for each block of a concatenated code ``z``.

        The code is on the member's own scale (``block * scale + centre``), so a unit
        change of a calibrated dimension is ``scale`` units of the member's latent.
        """
        d = self.cfg.latent_dim
        return [
            (member, z[..., i * d : (i + 1) * d] * self.scales[i] + self.centres[i], self.scales[i])
            for i, member in enumerate(self.members)
        ]

    def _normalise(self, i: int, latent: Tensor) -> Tensor:
        return (latent - self.centres[i]) / self.scales[i]

    def predict(
        self,
        x: Tensor,
        library: Tensor | None = None,
        covariate: Tensor | None = None,
        *,
        decode: bool = True,
    ) -> dict[str, Tensor]:
        """Every output of uncorrupted ``x`` (see :meth:`ExpressionModule.predict`).

        ``"latent"`` (n, K d): the calibrated blocks side by side; ``"latent_var"`` on the
        same scale where the family has one; ``"reconstruction"``: the members' mean.
        """
        outs = [m.predict(x, library, covariate, decode=decode) for m in self.members]
        blocks = [self._normalise(i, o["latent"]) for i, o in enumerate(outs)]
        if self.pca_genes:
            blocks.append(self.pca_codes(x))
        result = {"latent": torch.cat(blocks, dim=-1)}
        if not self.pca_genes and all("latent_var" in o for o in outs):
            result["latent_var"] = torch.cat(
                [o["latent_var"] / self.scales[i].square() for i, o in enumerate(outs)], dim=-1
            )
        if decode:
            result["reconstruction"] = self.gene_mean(
                [
                    self.in_target_units(m, o["reconstruction"], library)
                    for m, o in zip(self.members, outs, strict=True)
                ]
            )
        return result

    @property
    def reconstructs_counts(self) -> bool:
        """Whether the ensemble reconstructs counts: its first (narrow) member models them."""
        return bool(self.members[0].cfg.models_counts)

    def in_target_units(
        self, member: ExpressionModule, values: Tensor, library: Tensor | None
    ) -> Tensor:
        """A member's reconstruction (..., its genes) in the units of the ensemble's.

        Beside a count likelihood, a wide member's values (log1p of expression normalised
        to its view's ``target_sum`` over the narrow members' genes, the model input's
        units) become expected counts at each sample's ``library`` (those genes' counts:
        :func:`geneae.prepared.to_tensors`; None: 1, proportions as the count members give
        them); every other member's are already so.
        """
        if not self.reconstructs_counts or member.cfg.models_counts:
            return values
        assert member.view is not None and member.view.target_sum  # geneae.resolve
        per_unit = 1.0 / member.view.target_sum
        if library is not None:
            per_unit = library.reshape(*library.shape, 1) * per_unit
        return torch.expm1(values.clamp_min(0)) * per_unit

    @property
    def has_views(self) -> bool:
        """Whether some member reads the model genes through a view of its own."""
        return any(m.view is not None for m in self.members)

    def gene_mean(self, values: list[Tensor]) -> Tensor:
        """(..., model genes) per gene, the mean of the members' ``values`` that cover it.

        ``values[i]`` is member ``i``'s (..., its genes), in the model input's units.
        """
        if not self.has_views:
            return sum(values) / len(values)
        total = values[0].new_zeros((*values[0].shape[:-1], self.n_genes))
        for member, v in zip(self.members, values, strict=True):
            total[..., : member.n_genes] += v
        return total / self.coverage().to(total)

    def coverage(self) -> Tensor:
        """(model genes,) how many members reconstruct each gene."""
        cover = torch.zeros(self.n_genes)
        for member in self.members:
            cover[: member.n_genes] += 1
        return cover

    def encode(self, x: Tensor, covariate: Tensor | None = None) -> Tensor:
        """(n, K d) calibrated latent means of uncorrupted ``x``, members side by side."""
        return self.predict(x, covariate=covariate, decode=False)["latent"]

    def reconstruct(
        self, x: Tensor, library: Tensor | None = None, covariate: Tensor | None = None
    ) -> Tensor:
        """The members' mean reconstruction of uncorrupted ``x``."""
        return self.predict(x, library, covariate)["reconstruction"]

    def generative(
        self,
        z: Tensor,
        library: Tensor | None = None,
        covariate: Tensor | None = None,
        *,
        standardized: bool = True,
    ) -> dict[str, Tensor]:
        """The members' mean decoded parameters of a concatenated code ``z`` (n, K d).

        Members that see the genes differently share only their ``"mean"``, in the model
        input's units, averaged per gene over the members that decode it.
        """
        if self.has_views:
            means = [
                self.in_target_units(m, m.decoded_mean(code, library, covariate), library)
                for m, code, _ in self.member_codes(z)
            ]
            return {"mean": self.gene_mean(means)}
        params = [
            m.generative(code, library, covariate, standardized=standardized)
            for m, code, _ in self.member_codes(z)
        ]
        shared = set.intersection(*(set(p) for p in params))
        return {key: sum(p[key] for p in params) / len(params) for key in shared}

    def loadings(self) -> Tensor:
        """(genes, K d) linear decoders' weights per calibrated dimension, members in order.

        A member's weight times its block's scale: the change of that member's decoded
        value per unit of the calibrated dimension. A PCA block adds its axes times its
        scale: the change of the model input per unit of its dimension. A member that reads
        some of the genes has loadings of 0 on the others; one that z-scores them, its
        weights times each gene's standard deviation (the model input's units).
        """
        blocks = [
            _in_model_genes(m, m.loadings() * self.scales[i]) for i, m in enumerate(self.members)
        ]
        if self.pca_genes:
            blocks.append(self.pca_loadings())
        return torch.cat(blocks, dim=1)


def _in_model_genes(member: ExpressionModule, loadings: Tensor) -> Tensor:
    """A member's (its genes, d) loadings as (model genes, d), in model-input units."""
    if member.view is None:
        return loadings
    # A count member's weights are of its log rates, in no view's scale.
    unit = torch.as_tensor(1.0 if member.cfg.models_counts else member.view.unit())
    unit = unit.reshape(-1, 1)
    full = loadings.new_zeros((member.n_model_genes, loadings.shape[1]))
    full[: member.n_genes] = loadings * unit
    return full


def _root_mean_variance(centred: Tensor) -> Tensor:
    """The root of the mean variance per dimension of centred codes (n, d)."""
    return (centred.square().sum(1).mean() / centred.shape[1]).sqrt().clamp_min(1e-8)


def members_of(module: nn.Module) -> list[ExpressionModule]:
    """The modules trained inside ``module``: its members, or the module itself."""
    if isinstance(module, Ensemble):
        return list(module.members)
    return [module]  # type: ignore[list-item]


def member_codes_of(module: nn.Module, z: Tensor) -> list[tuple[nn.Module, Tensor, Tensor | float]]:
    """``(member, its code, its scale)`` for a code ``z`` of ``module``.

    An ensemble's blocks (:meth:`Ensemble.member_codes`); a single model is its own
    member, at scale 1.
    """
    if isinstance(module, Ensemble):
        return list(module.member_codes(z))
    return [(module, z, 1.0)]
