"""The user facade: ``GeneAE(config).fit(adata)``, encode, reconstruct, save, load.

The one module that knows both AnnData and torch. A fitted model carries its fitted
:class:`~geneae.pp.Preprocessor`, so new data is preprocessed exactly as the training data
was, genes aligned by name. A dataset is preprocessed once (:meth:`GeneAE.preprocess`, a
:class:`Prepared`) and everything about it computed in one forward pass
(:meth:`GeneAE.predict`, an :class:`Outputs`); ``encode``, ``reconstruct`` and the others
are views of that. A saved model is a directory of plain files (:mod:`geneae.saved_model`).

The facade holds a model's state; the work lives beside it: :mod:`geneae.model_inputs`
(layers, the input's tensors, the gene route's rows, the data's summary),
:mod:`geneae.model_training` (the module's build, set-up from the data, the fit, the
model's metrics), :mod:`geneae.model_outputs` (the batched forward pass, the decoder's
loadings) and :mod:`geneae.reconstruction_file` (reconstructions written to a file).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch

from geneae.config import RunConfig
from geneae.errors import InputError, NotFittedError
from geneae.facts import describe
from geneae.global_state import caller_state_kept
from geneae.io.backed import BackedData
from geneae.likelihoods import COUNT_LIKELIHOODS
from geneae.model_inputs import (
    as_the_model_reads,
    gene_rows_for,
    prepare_training_input,
    prepared_input,
    same_preprocessing,
    with_layer,
)
from geneae.model_outputs import check_space, decoder_loadings, in_space, units_of_space
from geneae.model_training import build_for_training, check_resumable, train_module
from geneae.ondisk import OnDisk, open_for_training, predict_on_disk, training_data
from geneae.pp import Preprocessor
from geneae.prepared import Outputs, Prepared
from geneae.presets import preset_config
from geneae.reconstruction_file import Source, write_reconstruction
from geneae.resolve import embedding_width, resolve
from geneae.saved_model import MODEL_FILES, check_overwrite, read_model, saved_module, write_model

logger = logging.getLogger(__name__)

__all__ = ["MODEL_FILES", "GeneAE", "Outputs", "Prepared"]


class GeneAE:
    """An autoencoder for expression data, configured by a :class:`RunConfig`.

    Parameters
    ----------
    config
        The run configuration (model, preprocessing, training), or its dotted keys
        (``{"model.latent_dim": 16}``). ``None``: the defaults, which follow the data at
        :meth:`fit` — a negative-binomial VAE on raw counts, a Gaussian VAE on
        standardised data otherwise. A model fitted again decides them again from the new
        data, unless ``config`` was changed since.

    Examples
    --------
    >>> import geneae
    >>> adata = geneae.datasets.pbmc_10x()
    >>> model = geneae.GeneAE.from_preset("scvi-like").fit(adata)  # doctest: +SKIP
    >>> latent = model.encode(adata)  # doctest: +SKIP
    """

    def __init__(self, config: RunConfig | Mapping[str, Any] | None = None) -> None:
        self.config = RunConfig.of(config)
        # What was asked before the data decided (resolve), and what they decided: a second
        # fit of an unchanged configuration decides again from its own data.
        self._asked: RunConfig | None = None
        self._resolved: RunConfig | None = None
        self.module: torch.nn.Module | None = None
        self.preprocessor: Preprocessor | None = None
        self.genes: list[str] = []
        self.covariate_categories: list[str] = []
        self.history: pd.DataFrame = pd.DataFrame()
        self.metrics: dict[str, Any] = {}
        # False in the helper processes of data-parallel training: they must not write.
        self.is_global_zero = True

    @classmethod
    def from_preset(cls, name: str, overrides: dict[str, Any] | None = None) -> GeneAE:
        """A model configured by preset ``name``, with optional dotted-key overrides."""
        config = preset_config(name)
        if overrides:
            config = config.updated(overrides)
        return cls(config)

    # -- properties ------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self.module is not None and self.preprocessor is not None

    @property
    def counts_model(self) -> bool:
        return self.config.model.likelihood in COUNT_LIKELIHOODS

    def _require_fitted(self) -> torch.nn.Module:
        if self.module is None or self.preprocessor is None:
            raise NotFittedError(
                "this GeneAE is not fitted yet; call .fit(adata) or GeneAE.load(dir)."
            )
        return self.module

    # -- preprocessing (once per dataset) ----------------------------------------------------
    def preprocess(
        self, adata: ad.AnnData | BackedData, *, layer: str | None = None
    ) -> Prepared | OnDisk:
        """New data preprocessed as in training, genes aligned by name: a model's input.

        Data on disk beyond the memory budget (see :func:`geneae.ondisk.use_out_of_core`)
        stay there and are preprocessed a chunk at a time when used.

        Labels and other obs columns are neither needed nor used. For the training data
        itself use :meth:`fit` (or :meth:`preprocess_for_training`).
        """
        self._require_fitted()
        assert self.preprocessor is not None
        on_disk = open_for_training(adata, self.config, labels_required=False)
        if on_disk is not None:
            return predict_on_disk(
                on_disk, self.preprocessor, self.config, self.covariate_categories
            )
        data = as_the_model_reads(adata, layer, self.config.data.use_raw)
        facts = describe(data)
        if self.config.data.genes_as_samples:
            return gene_rows_for(self.config, self.genes, data, facts)
        pre = self.preprocessor.transform(data, facts=facts, copy=False)
        return prepared_input(self.config, pre, facts, self.covariate_categories)

    def preprocess_for_training(
        self, adata: ad.AnnData | BackedData, *, layer: str | None = None
    ) -> Prepared | OnDisk:
        """Resolve the configuration for ``adata``, fit the preprocessor, preprocess once.

        Data left on disk (:func:`geneae.io.backed.open_backed`) are described and
        preprocessed chunk by chunk and come back as :class:`~geneae.ondisk.OnDisk`.

        After this, ``self.config`` is the resolved configuration (see
        :func:`geneae.resolve.resolve`): what a run writes to config.yaml.
        """
        t0 = time.perf_counter()
        asked = self.config
        if self._asked is not None and self.config == self._resolved:
            asked = self._asked  # fitted before, settings untouched since: decide again
        given = prepare_training_input(asked, adata, layer)
        self._asked, self._resolved = (
            asked.model_copy(deep=True),
            given.config.model_copy(deep=True),
        )
        self.config, self.preprocessor = given.config, given.preprocessor
        self.genes, self.covariate_categories = given.genes, given.covariate_categories
        self.metrics.setdefault("timings", {})["preprocess_s"] = time.perf_counter() - t0
        self.metrics["data"] = given.summary
        return given.data

    def share_preprocessing(self, donor: GeneAE, prepared: Prepared) -> None:
        """Take the fitted preprocessing of ``donor``, which prepared ``prepared``.

        For many models of one dataset (``geneae tune``'s trials): this model's configuration
        is resolved for the same data, and where its preprocessing, data section and kind of
        target equal the donor's, the data need not be preprocessed again. Raises
        ``ValueError`` otherwise.
        """
        config = resolve(self.config, prepared.facts)
        if not same_preprocessing(config, donor.config) or donor.preprocessor is None:
            raise ValueError("the donor model was prepared with other preprocessing")
        self.config = config
        self.preprocessor = donor.preprocessor
        self.genes = list(donor.genes)
        self.covariate_categories = list(donor.covariate_categories)
        self.metrics = {"timings": {"preprocess_s": 0.0}, "data": dict(donor.metrics["data"])}

    # -- fitting ------------------------------------------------------------------------------
    def fit(
        self,
        adata: ad.AnnData | str | Path | BackedData,
        *,
        layer: str | None = None,
        validation: float | None = None,
        run_dir: str | Path | None = None,
        resume: bool = False,
    ) -> GeneAE:
        """Preprocess ``adata``, train, and keep the best weights.

        Parameters
        ----------
        adata
            Samples x genes. Raw counts in ``X`` or ``layers["counts"]`` for count models.
            Or a file: an ``.h5ad`` / ``.zarr`` whose matrix exceeds
            ``train.memory_budget_gb`` (or a backed AnnData of one) is trained on out of
            core, read from disk a chunk of rows at a time (docs/scaling.md).
        layer
            Use ``adata.layers[layer]`` instead of ``X`` as the data.
        validation
            Fraction of samples held out for validation (default: ``train.validation``).
        run_dir
            Keep checkpoints and ``history.csv`` there while training.
        resume
            Continue from ``run_dir/checkpoints/last.ckpt``.
        """
        data = training_data(adata, self.config)
        if isinstance(data, ad.AnnData) and layer is None:  # the layer is taken later
            data = as_the_model_reads(data, None, self.config.data.use_raw)
        prepared = self.preprocess_for_training(data, layer=layer)
        return self.train(prepared, validation=validation, run_dir=run_dir, resume=resume)

    @caller_state_kept()
    def train(
        self,
        prepared: Prepared | OnDisk,
        *,
        validation: float | None = None,
        run_dir: str | Path | None = None,
        resume: bool = False,
        callbacks: Sequence[Any] = (),
    ) -> GeneAE:
        """Train on data from :meth:`preprocess_for_training`; see :meth:`fit`.

        ``callbacks``: extra Lightning callbacks (e.g. :mod:`geneae.tune`'s trial reporter).
        The caller's random generators and torch threads are as they were afterwards.
        """
        if validation is not None:
            checked = self.config.updated({"train.validation": validation}, source="validation")
            self.config.train.validation = checked.train.validation
            if self._resolved is not None:
                self._resolved.train.validation = checked.train.validation
        if resume:
            check_resumable(run_dir)
        self.module, threads = build_for_training(
            self.config, len(self.genes), len(self.covariate_categories)
        )
        trained = train_module(
            self.module,
            self.config,
            prepared,
            threads=threads,
            run_dir=run_dir,
            resume=resume,
            callbacks=callbacks,
        )
        self.history = trained.history
        self.is_global_zero = trained.is_global_zero
        self.metrics["model"] = trained.model_metrics
        self.metrics.setdefault("timings", {}).update(trained.timings)
        return self

    # -- outputs (one forward pass) -----------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        prepared: Prepared | OnDisk | ad.AnnData | BackedData,
        *,
        layer: str | None = None,
        reconstruction_rows: np.ndarray | None = None,
        batch_size: int = 4096,
    ) -> Outputs:
        """Every output of the model for preprocessed data, from one forward pass.

        Parameters
        ----------
        prepared
            From :meth:`preprocess` / :meth:`preprocess_for_training`, or an AnnData
            (preprocessed here first).
        layer
            With an AnnData: use this layer as the data.
        reconstruction_rows
            Sorted row indices whose reconstruction to keep (None: all rows). The latent
            space of every row is always kept; reconstructions are cells x genes, which
            for millions of cells is more than memory holds.
        batch_size
            Rows per forward pass.
        """
        module = self._require_fitted()
        if not isinstance(prepared, Prepared | OnDisk):
            prepared = self.preprocess(prepared, layer=layer)
        if reconstruction_rows is not None:
            from geneae.evaluate._arrays import check_subset

            reconstruction_rows = check_subset(
                reconstruction_rows, prepared.n_obs, "reconstruction_rows"
            )
        return prepared.outputs(
            module,
            n_genes=len(self.genes),
            likelihood=self.config.model.likelihood,
            reconstruction_rows=reconstruction_rows,
            batch_size=batch_size,
        )

    def encode(self, adata: ad.AnnData, *, layer: str | None = None) -> np.ndarray:
        """Latent means of ``adata``, preprocessed as in training.

        ``n_samples x latent_dim`` for one model, ``n_samples x (members x latent_dim)``
        for an ensemble (its members' calibrated latents side by side), and ``latent_dim``
        more with a PCA block (``model.pca_block``).
        """
        return self.predict(adata, layer=layer, reconstruction_rows=np.zeros(0, int)).latent

    def reconstruct(
        self, adata: ad.AnnData, *, layer: str | None = None, space: str = "target"
    ) -> np.ndarray:
        """Expected values of the reconstruction: the denoised matrix (modelled genes).

        ``space="target"``: what the model reconstructs — counts for count likelihoods
        (library x proportions), the preprocessed values otherwise. ``space="input"``: the
        same values mapped into the preprocessed input space (log-normalised and scaled as
        fitted), comparable with ``X`` after preprocessing and with a PCA reconstruction.
        ``space="values"``: in the units of the data given — expected counts for count
        likelihoods; otherwise the fitted scaling and log1p undone and, where the data were
        library-size normalised, each cell put back on its own library size.
        :meth:`reconstruction_units` says in words what the values are.
        """
        check_space(space)
        mean = self.predict(adata, layer=layer).reconstruction
        assert mean is not None and self.preprocessor is not None
        data = with_layer(adata, layer)
        return in_space(self.preprocessor, mean, space, data, counts_model=self.counts_model)

    def reconstruct_to(
        self, data: Source, out_file: str | Path, *, layer: str | None = None, space: str = "target"
    ) -> tuple[int, int]:
        """Write :meth:`reconstruct` of ``data`` to ``out_file`` atomically; its shape.

        Data read out of core are streamed a chunk of cells at a time (.h5ad / .npy).
        """
        return write_reconstruction(self, data, out_file, layer=layer, space=space)

    def reconstruction_units(self, space: str = "target") -> str:
        """What :meth:`reconstruct` returns in ``space``, in words (for output files)."""
        self._require_fitted()
        assert self.preprocessor is not None
        check_space(space)
        return units_of_space(
            self.preprocessor,
            space,
            counts_model=self.counts_model,
            genes_as_samples=self.config.data.genes_as_samples,
        )

    def to_input_space(self, reconstruction: np.ndarray) -> np.ndarray:
        """A target-space reconstruction in the preprocessed input space (see reconstruct)."""
        self._require_fitted()
        assert self.preprocessor is not None
        return in_space(
            self.preprocessor, reconstruction, "input", None, counts_model=self.counts_model
        )

    def cluster_probabilities(self, adata: ad.AnnData, *, layer: str | None = None) -> np.ndarray:
        """GMVAE responsibilities q(y|x), n_samples x n_components."""
        if self.config.model.family != "gmvae":
            raise InputError(
                "cluster_probabilities needs a GMVAE; this model's family is "
                f"{self.config.model.family!r}."
            )
        probs = self.predict(adata, layer=layer, reconstruction_rows=np.zeros(0, int))
        assert probs.cluster_probabilities is not None
        return probs.cluster_probabilities

    def latent_variance(self, adata: ad.AnnData, *, layer: str | None = None) -> np.ndarray | None:
        """Posterior variances of q(z|x), shaped as :meth:`encode`; None if deterministic.

        For the GMVAE: the variance of the mixture posterior's components, averaged with
        the responsibilities q(y|x) (the within-component part of the mixture's variance).
        """
        return self.predict(adata, layer=layer, reconstruction_rows=np.zeros(0, int)).latent_var

    def gene_loadings(
        self, latent: np.ndarray, *, max_cells: int = 300, seed: int = 0
    ) -> np.ndarray:
        """Genes x latent dims: how each latent dimension moves each gene, with its sign.

        Linear decoders: the decoder weights. Deep decoders: the mean Jacobian of the
        decoded mean (log1p of the mean at a library of 1e4 for count models) with respect
        to the latent code, over up to ``max_cells`` of the given latent codes (e.g. from
        :meth:`encode`): positive when the gene rises as the dimension grows.
        """
        module = self._require_fitted()
        latent, width = np.asarray(latent), embedding_width(self.config)
        if latent.ndim != 2 or latent.shape[1] != width:
            raise InputError(
                f"latent must be samples x latent dims as encode gives them ({width} "
                f"columns), got shape {latent.shape}."
            )
        if self.config.model.decoder_hidden == [] and self.config.model.family != "gmvae":
            return module.loadings().detach().cpu().numpy()
        return decoder_loadings(
            module,
            latent,
            counts_model=self.counts_model,
            has_covariate=bool(self.covariate_categories),
            max_cells=max_cells,
            seed=seed,
        )

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write the model directory (plain files, no pickle; see :mod:`geneae.saved_model`)."""
        module = self._require_fitted()
        assert self.preprocessor is not None
        directory = Path(directory)
        if not self.is_global_zero:
            return directory
        check_overwrite(directory, overwrite=overwrite)
        write_model(
            directory,
            config=self.config,
            state=module.state_dict(),
            genes=self.genes,
            covariate_categories=self.covariate_categories,
            preprocessor=self.preprocessor,
            history=self.history,
            metrics=self.metrics,
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> GeneAE:
        """Load a model saved by :meth:`save` (never executes code from the directory)."""
        directory = Path(directory)
        saved = read_model(directory)
        model = cls(saved.config)
        model.preprocessor = saved.preprocessor
        model.genes = saved.genes
        model.covariate_categories = saved.covariate_categories
        model.module = saved_module(saved, directory)
        model.history = saved.history
        model.metrics = saved.metrics
        return model
