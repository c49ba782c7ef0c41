"""The user facade: ``GeneAE(config).fit(adata)``, transform, reconstruct, save, load.

This is the one module that knows both AnnData and torch. A fitted model carries its
fitted :class:`~geneae.pp.Preprocessor`, so new data is preprocessed exactly as the
training data was, with genes aligned by name.

A model preprocesses a dataset once (:meth:`GeneAE.preprocess`, a :class:`Prepared`) and
computes everything about it in one forward pass (:meth:`GeneAE.predict`, an
:class:`Outputs`); ``encode``, ``reconstruct`` and the others are views of that. A saved
model is a directory of plain files (see :mod:`geneae.saved_model`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch

from geneae.batches import split_indices
from geneae.config import RunConfig
from geneae.errors import InputError, ModelFileError, NotFittedError
from geneae.facts import describe
from geneae.likelihoods import COUNT_LIKELIHOODS
from geneae.module import build_module
from geneae.pp import Preprocessor
from geneae.pp.orientation import align_features, genes_as_rows
from geneae.prepared import Outputs, Prepared, covariate_codes, covariate_levels, to_tensors
from geneae.presets import preset_config
from geneae.resolve import resolve
from geneae.saved_model import MODEL_FILES, read_model, write_model
from geneae.threads import apply_threads

logger = logging.getLogger(__name__)

__all__ = ["MODEL_FILES", "GeneAE", "Outputs", "Prepared"]

SPACES = ("target", "input", "values")


class GeneAE:
    """An autoencoder for expression data, configured by a :class:`RunConfig`.

    Parameters
    ----------
    config
        The run configuration (model, preprocessing, training). ``None``: the defaults,
        which follow the data at :meth:`fit` — a negative-binomial VAE on raw counts, a
        Gaussian VAE on standardised data otherwise.

    Examples
    --------
    >>> import geneae
    >>> adata = geneae.datasets.pbmc_10x()
    >>> model = geneae.GeneAE.from_preset("scvi-like").fit(adata)  # doctest: +SKIP
    >>> latent = model.encode(adata)  # doctest: +SKIP
    """

    def __init__(self, config: RunConfig | None = None) -> None:
        self.config = (config or RunConfig()).model_copy(deep=True)
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
    def preprocess(self, adata: ad.AnnData, *, layer: str | None = None) -> Prepared:
        """New data preprocessed as in training, genes aligned by name: a model's input.

        Labels and other obs columns are neither needed nor used. For the training data
        itself use :meth:`fit` (or :meth:`preprocess_for_training`).
        """
        self._require_fitted()
        assert self.preprocessor is not None
        data = _with_layer(adata, layer)
        facts = describe(data)
        if self.config.data.genes_as_samples:
            return self._gene_rows(data, facts)
        pre = self.preprocessor.transform(data, facts=facts, copy=False)
        tensors = to_tensors(pre, counts=self.counts_model, covariate=self._covariate(pre))
        return Prepared(pre, tensors, facts)

    def preprocess_for_training(self, adata: ad.AnnData, *, layer: str | None = None) -> Prepared:
        """Resolve the configuration for ``adata``, fit the preprocessor, preprocess once.

        After this, ``self.config`` is the resolved configuration (see
        :func:`geneae.resolve.resolve`): what a run writes to config.yaml.
        """
        t0 = time.perf_counter()
        data = _with_layer(adata, layer)
        facts = describe(data)
        self.config = resolve(self.config, facts)
        self.preprocessor = Preprocessor.from_config(self.config.preprocess)
        # copy=False: the tensors wrap the preprocessed arrays, and those share what is
        # unchanged (counts, sparsity pattern) with ``adata``: the data is held about once.
        pre = self.preprocessor.fit_transform(data, facts=facts, copy=False)
        if self.config.data.genes_as_samples:
            # Each gene a row, the samples its features (the model's "genes" below).
            pre = genes_as_rows(pre, label_column=self.config.data.label_column)
        self.genes = [str(g) for g in pre.var_names]
        key = self.config.data.covariate
        if key is not None:
            self.covariate_categories = covariate_levels(pre, key)
        tensors = to_tensors(pre, counts=self.counts_model, covariate=self._covariate(pre))
        prepared = Prepared(pre, tensors, facts)
        self.metrics.setdefault("timings", {})["preprocess_s"] = time.perf_counter() - t0
        self.metrics["data"] = {
            "n_cells": int(adata.n_obs),
            "n_genes": int(adata.n_vars),
            "n_cells_model": int(pre.n_obs),
            "n_genes_model": int(pre.n_vars),
            "value_type": facts.value_type,
        }
        if self.config.data.genes_as_samples:
            self.metrics["data"]["genes_as_samples"] = True
        return prepared

    def share_preprocessing(self, donor: GeneAE, prepared: Prepared) -> None:
        """Take the fitted preprocessing of ``donor``, which prepared ``prepared``.

        For many models of one dataset (``geneae tune``'s trials): this model's configuration
        is resolved for the same data, and where its preprocessing, data section and kind of
        target equal the donor's, the data need not be preprocessed again. Raises
        ``ValueError`` otherwise.
        """
        config = resolve(self.config, prepared.facts)
        same = (
            config.preprocess == donor.config.preprocess
            and config.data == donor.config.data
            and (config.model.likelihood in COUNT_LIKELIHOODS) == donor.counts_model
        )
        if not same or donor.preprocessor is None:
            raise ValueError("the donor model was prepared with other preprocessing")
        self.config = config
        self.preprocessor = donor.preprocessor
        self.genes = list(donor.genes)
        self.covariate_categories = list(donor.covariate_categories)
        self.metrics = {"timings": {"preprocess_s": 0.0}, "data": dict(donor.metrics["data"])}

    def _gene_rows(self, data: ad.AnnData, facts: Any) -> Prepared:
        """New data for a gene model: the training steps, genes as rows, samples aligned.

        Each gene is standardised over the samples with its own statistics (that is what
        the steps do to a gene), so the steps are fitted afresh on ``data``; the samples,
        the model's features, are matched by name to those of training.
        """
        pre = Preprocessor.from_config(self.config.preprocess).fit_transform(
            data, facts=facts, copy=False
        )
        rows = genes_as_rows(pre, label_column=self.config.data.label_column, labels_required=False)
        rows = align_features(rows, self.genes)
        return Prepared(rows, to_tensors(rows, counts=False), facts)

    # -- fitting ------------------------------------------------------------------------------
    def fit(
        self,
        adata: ad.AnnData,
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
        layer
            Use ``adata.layers[layer]`` instead of ``X`` as the data.
        validation
            Fraction of samples held out for validation (default: ``train.validation``).
        run_dir
            Keep checkpoints and ``history.csv`` there while training.
        resume
            Continue from ``run_dir/checkpoints/last.ckpt``.
        """
        prepared = self.preprocess_for_training(adata, layer=layer)
        return self.train(prepared, validation=validation, run_dir=run_dir, resume=resume)

    def train(
        self,
        prepared: Prepared,
        *,
        validation: float | None = None,
        run_dir: str | Path | None = None,
        resume: bool = False,
        callbacks: Sequence[Any] = (),
    ) -> GeneAE:
        """Train on data from :meth:`preprocess_for_training`; see :meth:`fit`.

        ``callbacks``: extra Lightning callbacks (e.g. :mod:`geneae.tune`'s trial reporter).
        """
        from geneae.train.plan import TrainingPlan
        from geneae.train.trainer import ExpressionDataModule, fit_module

        if validation is not None:
            self.config.train.validation = validation
        train_cfg = self.config.train
        max_epochs = int(train_cfg.max_epochs or 1)
        n_obs = prepared.n_obs
        threads = apply_threads(train_cfg.num_threads)
        torch.manual_seed(train_cfg.seed)
        self.module = build_module(
            self.config.model, len(self.genes), len(self.covariate_categories)
        )
        balance = self._start_from_data(prepared)
        plan = TrainingPlan(self.module, self.config.model, train_cfg, max_epochs)
        train_rows, val_rows = split_indices(n_obs, train_cfg.validation, train_cfg.seed)
        datamodule = ExpressionDataModule(prepared.tensors, train_rows, val_rows, train_cfg)
        t1 = time.perf_counter()
        result = fit_module(
            plan,
            datamodule,
            train_cfg,
            max_epochs,
            run_dir=Path(run_dir) if run_dir is not None else None,
            resume=resume,
            extra_callbacks=callbacks,
        )
        train_s = time.perf_counter() - t1
        self.module.load_state_dict(result.best_state)
        self.module.to("cpu").eval()
        phase = None
        if train_cfg.cluster_epochs and result.is_global_zero:
            from geneae.train.cluster_phase import refine_clusters

            final_kl = train_cfg.kl_weight if self.config.model.is_variational else 0.0
            phase = refine_clusters(
                self.module, prepared.tensors, train_cfg, len(self.genes), final_kl
            )
            train_s += phase["seconds"]
        self.history = result.history
        self.is_global_zero = result.is_global_zero
        epochs = max(1, len(self.history))
        self.metrics["model"] = {
            "family": self.config.model.family,
            "likelihood": self.config.model.likelihood,
            "latent_dim": self.config.model.latent_dim,
            "n_parameters": int(sum(p.numel() for p in self.module.parameters())),
            "epochs_trained": int(len(self.history)),
            "max_epochs": max_epochs,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "device": result.device,
            "data_resident_on_device": datamodule.resident,
            "cpu_threads": threads,
        }
        if balance is not None:
            self.metrics["model"]["standardized_scale"] = balance
        if phase is not None:
            self.metrics["model"]["cluster_phase"] = phase
        self.metrics.setdefault("timings", {}).update(
            {"train_s": train_s, "seconds_per_epoch": train_s / epochs}
        )
        return self

    def _start_from_data(self, prepared: Prepared) -> float | None:
        """Data-dependent set-up before training; returns the standardised term's scale.

        The heads that model the input start at its gene means, and the
        standardised term gets its scale (None where the model has no such term).
        """
        from geneae.balance import balance_scale, column_moments

        assert self.module is not None
        data = prepared.data
        mean, _ = column_moments(data.X)
        self.module.decoder.start_at(torch.as_tensor(mean, dtype=torch.float32))
        term = self.module.decoder.standardized
        if term is None:
            return None
        scale = balance_scale(self.config.model.likelihood, data.X, data.layers.get("counts"))
        term.scale.fill_(scale)
        return scale

    def _covariate(self, pre: ad.AnnData) -> torch.Tensor | None:
        key = self.config.data.covariate
        return None if key is None else covariate_codes(pre, key, self.covariate_categories)

    # -- outputs (one forward pass) -----------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        prepared: Prepared | ad.AnnData,
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
        if not isinstance(prepared, Prepared):
            prepared = self.preprocess(prepared, layer=layer)
        module.eval()
        device = next(module.parameters()).device
        tensors = prepared.tensors
        keep = None if reconstruction_rows is None else np.asarray(reconstruction_rows)
        decode = keep is None or len(keep) > 0
        if decode and self.counts_model and tensors.library is None:
            raise InputError(
                f"likelihood {self.config.model.likelihood!r} reconstructs counts from each "
                "cell's library size, but the data have no raw counts. Give raw counts (X or "
                "layers['counts']); encoding needs none."
            )
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, tensors.n_obs, batch_size):
            stop = min(start + batch_size, tensors.n_obs)
            batch = {k: v.to(device) for k, v in tensors.batch(torch.arange(start, stop)).items()}
            out = module.predict(
                batch["x"], batch.get("library"), batch.get("covariate"), decode=decode
            )
            if decode and keep is not None:
                local = keep[(keep >= start) & (keep < stop)] - start
                out["reconstruction"] = out["reconstruction"][torch.as_tensor(local)]
            for key, value in out.items():
                parts.setdefault(key, []).append(value.float().cpu().numpy())
        arrays = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
        return Outputs(
            obs_names=np.asarray(prepared.data.obs_names.astype(str)),
            latent=arrays["latent"],
            latent_var=arrays.get("latent_var"),
            cluster_probabilities=arrays.get("cluster_probabilities"),
            reconstruction=arrays.get("reconstruction", np.zeros((0, len(self.genes)), np.float32)),
            reconstruction_rows=keep,
        )

    def encode(self, adata: ad.AnnData, *, layer: str | None = None) -> np.ndarray:
        """Latent means (n_samples x latent_dim) of ``adata``, preprocessed as in training."""
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
        if space not in SPACES:
            raise InputError(f"space must be one of {', '.join(SPACES)}; got {space!r}.")
        mean = self.predict(adata, layer=layer).reconstruction
        assert mean is not None
        if space == "input":
            return self.to_input_space(mean)
        if space == "target" or self.counts_model:
            return mean
        assert self.preprocessor is not None and self.preprocessor.steps_ is not None
        values = self.preprocessor.input_to_values(mean)
        steps = self.preprocessor.steps_
        if steps.normalize:
            library = self.preprocessor.library_sizes(_with_layer(adata, layer))
            values *= (library / steps.target_sum).astype(np.float32)[:, None]
        return values

    def reconstruction_units(self, space: str = "target") -> str:
        """What :meth:`reconstruct` returns in ``space``, in words (for output files)."""
        self._require_fitted()
        assert self.preprocessor is not None
        if self.config.data.genes_as_samples:
            return "each gene standardised over the samples (the gene model's input)"
        if self.counts_model and space != "input":
            return "expected counts"
        if space == "values":
            kind = self.preprocessor.value_type_ or "other"
            return "expected counts" if kind == "raw counts" else f"input units ({kind})"
        return f"preprocessed model input ({self.preprocessor.describe_steps()})"

    def to_input_space(self, reconstruction: np.ndarray) -> np.ndarray:
        """A target-space reconstruction in the preprocessed input space (see reconstruct)."""
        if not self.counts_model:
            return reconstruction
        assert self.preprocessor is not None
        return self.preprocessor.counts_to_input(reconstruction)

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
        """Posterior variances of q(z|x) (n x latent_dim), or None for deterministic models.

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
        if self.config.model.decoder_hidden == [] and self.config.model.family != "gmvae":
            return module.loadings().detach().cpu().numpy()
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(latent), size=min(max_cells, len(latent)), replace=False)
        z = torch.as_tensor(latent[np.sort(rows)], dtype=torch.float32)
        library = torch.full((len(z),), 1e4) if self.counts_model else None
        covariate = torch.zeros(len(z), dtype=torch.int64) if self.covariate_categories else None

        def decode(code: torch.Tensor) -> torch.Tensor:
            mean = module.generative(code, library=library, covariate=covariate)["mean"]
            return torch.log1p(mean) if self.counts_model else mean

        module.eval()
        # Forward mode: one Jacobian-vector product per latent dimension, for all cells at
        # once (reverse mode would need one backward pass per gene).
        columns = []
        with torch.no_grad():
            for dim in range(z.shape[1]):
                tangent = torch.zeros_like(z)
                tangent[:, dim] = 1.0
                _, derivative = torch.func.jvp(decode, (z,), (tangent,))
                columns.append(derivative.mean(0))
        return torch.stack(columns, dim=1).numpy()

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write the model directory (plain files, no pickle; see :mod:`geneae.saved_model`)."""
        module = self._require_fitted()
        assert self.preprocessor is not None
        directory = Path(directory)
        if not self.is_global_zero:
            return directory
        if (directory / "weights.safetensors").exists() and not overwrite:
            raise ModelFileError(
                f"{directory}: already holds a saved model; pass overwrite=True (CLI: "
                "--overwrite) to replace it, or choose another directory."
            )
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
        module = build_module(model.config.model, len(model.genes), len(model.covariate_categories))
        try:
            module.load_state_dict(saved.state, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(
                f"{directory}: weights do not match config.yaml ({str(exc).splitlines()[0]})."
            ) from None
        model.module = module.eval()
        model.history = saved.history
        model.metrics = saved.metrics
        return model


def _with_layer(adata: ad.AnnData, layer: str | None) -> ad.AnnData:
    if layer is None:
        return adata
    if layer not in adata.layers:
        raise InputError(
            f"layer {layer!r} not found; available layers: {', '.join(adata.layers) or 'none'}."
        )
    return ad.AnnData(X=adata.layers[layer], obs=adata.obs.copy(), var=adata.var.copy())
