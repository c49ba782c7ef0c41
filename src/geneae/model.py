"""The user facade: ``GeneAE(config).fit(adata)``, transform, reconstruct, save, load.

This is the one module that knows both AnnData and torch. A fitted model carries its
fitted :class:`~geneae.pp.Preprocessor`, so new data is preprocessed exactly as the
training data was, with genes aligned by name.

A saved model is a directory of plain files — ``config.yaml``, ``weights.safetensors``,
``genes.txt``, ``preprocessor.json``, ``history.csv``, ``metrics.json`` — with no pickle
anywhere: loading it never executes code from the directory.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from geneae import __version__
from geneae._atomic import atomic_path, write_text
from geneae.config import RunConfig
from geneae.data import ExpressionTensors, RowMatrix, split_indices
from geneae.errors import InputError, ModelFileError, NotFittedError
from geneae.facts import describe
from geneae.likelihoods import COUNT_LIKELIHOODS
from geneae.module import build_module
from geneae.pp import Preprocessor
from geneae.presets import preset_config
from geneae.resolve import resolve

logger = logging.getLogger(__name__)

MODEL_FILES = (
    "config.yaml",
    "weights.safetensors",
    "genes.txt",
    "preprocessor.json",
    "history.csv",
    "metrics.json",
)


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
    >>> latent = model.transform(adata)  # doctest: +SKIP
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
        from geneae.train.plan import TrainingPlan
        from geneae.train.trainer import ExpressionDataModule, fit_module

        t0 = time.perf_counter()
        data = _with_layer(adata, layer)
        facts = describe(data)
        self.config = resolve(self.config, facts)
        if validation is not None:
            self.config.train.validation = validation
        self.preprocessor = Preprocessor.from_config(self.config.preprocess)
        # copy=False: the tensors wrap the preprocessed arrays, and those share what is
        # unchanged (counts, sparsity pattern) with ``adata``: the data is held about once.
        pre = self.preprocessor.fit_transform(data, facts=facts, copy=False)
        self.genes = [str(g) for g in pre.var_names]
        tensors = self._tensors(pre, for_training=True)
        n_obs, n_vars = pre.n_obs, pre.n_vars
        del pre  # whatever the tensors did not take over is freed before training
        t_pre = time.perf_counter() - t0

        train_cfg = self.config.train
        max_epochs = int(train_cfg.max_epochs or 1)
        torch.manual_seed(train_cfg.seed)
        self.module = build_module(
            self.config.model, len(self.genes), len(self.covariate_categories)
        )
        plan = TrainingPlan(self.module, self.config.model, train_cfg, max_epochs)
        train_rows, val_rows = split_indices(n_obs, train_cfg.validation, train_cfg.seed)
        datamodule = ExpressionDataModule(tensors, train_rows, val_rows, train_cfg)
        t1 = time.perf_counter()
        result = fit_module(
            plan,
            datamodule,
            train_cfg,
            max_epochs,
            run_dir=Path(run_dir) if run_dir is not None else None,
            resume=resume,
        )
        train_s = time.perf_counter() - t1
        self.module.load_state_dict(result.best_state)
        self.module.to("cpu").eval()
        self.history = result.history
        self.is_global_zero = result.is_global_zero
        epochs = max(1, len(self.history))
        self.metrics["model"] = {
            "family": self.config.model.family,
            "likelihood": self.config.model.likelihood,
            "latent_dim": self.config.model.latent_dim,
            "n_parameters": int(sum(p.numel() for p in self.module.parameters())),
            "epochs_trained": int(len(self.history)),
            "max_epochs": int(max_epochs),
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "device": result.device,
            "data_resident_on_device": datamodule.resident,
        }
        self.metrics.setdefault("timings", {}).update(
            {"preprocess_s": t_pre, "train_s": train_s, "seconds_per_epoch": train_s / epochs}
        )
        self.metrics["data"] = {
            "n_cells": int(adata.n_obs),
            "n_genes": int(adata.n_vars),
            "n_cells_model": int(n_obs),
            "n_genes_model": int(n_vars),
            "value_type": facts.value_type,
        }
        return self

    # -- tensors ------------------------------------------------------------------------------
    def _tensors(
        self, pre: ad.AnnData, *, for_training: bool, need_target: bool = True
    ) -> ExpressionTensors:
        x = RowMatrix.from_array(pre.X)
        target = library = None
        if self.counts_model and need_target:
            counts = pre.layers["counts"] if "counts" in pre.layers else None
            if counts is None:
                raise InputError(
                    f"likelihood {self.config.model.likelihood!r} models raw counts, but the data "
                    "have none. Give raw counts (X or layers['counts']), or choose "
                    "--likelihood gaussian / mse."
                )
            target = RowMatrix.from_array(counts, like=x)
            library = target.row_sums()
        covariate = self._covariate_codes(pre, fit=for_training)
        return ExpressionTensors(x=x, target=target, library=library, covariate=covariate)

    def _covariate_codes(self, pre: ad.AnnData, *, fit: bool) -> torch.Tensor | None:
        key = self.config.data.covariate
        if key is None:
            return None
        if key not in pre.obs:
            raise InputError(
                f"covariate column {key!r} not found in obs; available: "
                f"{', '.join(map(str, pre.obs.columns)) or 'none'}."
            )
        values = pre.obs[key].astype(str).to_numpy()
        if fit:
            self.covariate_categories = sorted(set(values))
        lookup = {c: i for i, c in enumerate(self.covariate_categories)}
        unknown = sorted(set(values) - set(lookup))
        if unknown:
            raise InputError(
                f"covariate {key!r} has values the model was not trained on: "
                f"{', '.join(unknown[:5])}; "
                f"known: {', '.join(self.covariate_categories[:10])}."
            )
        return torch.as_tensor([lookup[v] for v in values], dtype=torch.int64)

    def _prepare(
        self, adata: ad.AnnData, layer: str | None, need_target: bool
    ) -> tuple[ad.AnnData, ExpressionTensors]:
        self._require_fitted()
        assert self.preprocessor is not None
        pre = self.preprocessor.transform(_with_layer(adata, layer), copy=False)
        return pre, self._tensors(pre, for_training=False, need_target=need_target)

    @torch.no_grad()
    def _map_batches(
        self, tensors: ExpressionTensors, fn: Any, batch_size: int = 4096
    ) -> np.ndarray:
        module = self._require_fitted()
        module.eval()
        device = next(module.parameters()).device
        out = []
        for start in range(0, tensors.n_obs, batch_size):
            idx = torch.arange(start, min(start + batch_size, tensors.n_obs))
            batch = {k: v.to(device) for k, v in tensors.batch(idx).items()}
            out.append(fn(module, batch).float().cpu().numpy())
        return np.concatenate(out, axis=0) if out else np.zeros((0, 0), np.float32)

    # -- results ------------------------------------------------------------------------------
    def transform(self, adata: ad.AnnData, *, layer: str | None = None) -> np.ndarray:
        """Latent means (n_samples x latent_dim) of ``adata``, preprocessed as in training."""
        _, tensors = self._prepare(adata, layer, need_target=False)
        return self._map_batches(
            tensors, lambda m, b: m.embed(b["x"], covariate=b.get("covariate"))
        )

    def reconstruct(
        self, adata: ad.AnnData, *, layer: str | None = None, space: str = "target"
    ) -> np.ndarray:
        """Expected values of the reconstruction: the denoised matrix (modelled genes).

        ``space="target"``: what the model reconstructs — counts for count likelihoods
        (library x proportions), the preprocessed values otherwise. ``space="input"``: the
        same values mapped into the preprocessed input space (log-normalised for count
        models), comparable with ``X`` after preprocessing and with a PCA reconstruction.
        """
        if space not in ("target", "input"):
            raise InputError(f"space must be 'target' or 'input', got {space!r}.")
        pre, tensors = self._prepare(adata, layer, need_target=self.counts_model)

        def run(m: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
            return m.reconstruct(b["x"], library=b.get("library"), covariate=b.get("covariate"))

        mean = self._map_batches(tensors, run)
        if space == "input" and self.counts_model:
            assert self.preprocessor is not None
            mean = self.preprocessor.counts_to_input(mean)
        return mean

    def cluster_probabilities(self, adata: ad.AnnData, *, layer: str | None = None) -> np.ndarray:
        """GMVAE responsibilities q(y|x), n_samples x n_components."""
        module = self._require_fitted()
        if not hasattr(module, "cluster_probabilities"):
            raise InputError(
                "cluster_probabilities needs a GMVAE; this model's family is "
                f"{self.config.model.family!r}."
            )
        _, tensors = self._prepare(adata, layer, need_target=False)
        return self._map_batches(
            tensors, lambda m, b: m.cluster_probabilities(b["x"], covariate=b.get("covariate"))
        )

    def latent_variance(self, adata: ad.AnnData, *, layer: str | None = None) -> np.ndarray | None:
        """Posterior variances of q(z|x) (n x latent_dim), or None for deterministic models.

        For the GMVAE: the variance of the mixture posterior's components, averaged with
        the responsibilities q(y|x) (the within-component part of the mixture's variance).
        """
        if not self.config.model.is_variational:
            return None
        _, tensors = self._prepare(adata, layer, need_target=False)

        def run(m: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
            out = m.inference(b["x"], covariate=b.get("covariate"), sample=False)
            var = out["qz_var"]
            if var.dim() == 3:
                var = (out["qy"].unsqueeze(-1) * var).sum(1)
            return var

        return self._map_batches(tensors, run)

    def gene_loadings(
        self, adata: ad.AnnData, *, layer: str | None = None, max_cells: int = 300, seed: int = 0
    ) -> np.ndarray:
        """Genes x latent dims: how strongly each latent dimension drives each gene.

        Linear decoders: the decoder weights. Deep decoders: the mean absolute Jacobian of
        the decoded mean (log1p of the mean at a library of 1e4 for count models) with
        respect to the latent code, over up to ``max_cells`` samples.
        """
        module = self._require_fitted()
        if self.config.model.decoder_hidden == [] and self.config.model.family != "gmvae":
            return module.loadings().detach().cpu().numpy()
        latent = self.transform(adata, layer=layer)
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
                columns.append(derivative.abs().mean(0))
        return torch.stack(columns, dim=1).numpy()

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write the model directory (plain files, no pickle); see the module docstring."""
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
        directory.mkdir(parents=True, exist_ok=True)
        write_text(directory / "config.yaml", self.config.to_yaml())
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        meta = {
            "geneae_version": __version__,
            "format": "geneae-model-1",
            "n_genes": str(len(self.genes)),
            "covariate_categories": json.dumps(self.covariate_categories),
        }
        with atomic_path(directory / "weights.safetensors") as tmp:
            save_file(state, str(tmp), metadata=meta)
        write_text(directory / "genes.txt", "\n".join(self.genes) + "\n")
        self.preprocessor.save(directory / "preprocessor.json")
        with atomic_path(directory / "history.csv") as tmp:
            self.history.to_csv(tmp, index=False)
        write_text(directory / "metrics.json", json.dumps(_jsonable(self.metrics), indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> GeneAE:
        """Load a model saved by :meth:`save` (never executes code from the directory)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise ModelFileError(f"{directory}: no such model directory; check the path.")
        missing = [f for f in MODEL_FILES if not (directory / f).is_file()]
        if missing:
            raise ModelFileError(
                f"{directory}: not a complete geneae model (missing {', '.join(missing)}); "
                "was training interrupted? Re-run `geneae train ... --resume`."
            )
        model = cls(RunConfig.from_yaml(directory / "config.yaml"))
        model.preprocessor = Preprocessor.load(directory / "preprocessor.json")
        model.genes = (directory / "genes.txt").read_text(encoding="utf-8").split()
        try:
            with safe_open(str(directory / "weights.safetensors"), framework="pt") as f:
                meta = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except Exception as exc:  # safetensors raises its own error types
            raise ModelFileError(
                f"{directory / 'weights.safetensors'}: unreadable weights ({exc})."
            ) from None
        model.covariate_categories = json.loads(meta.get("covariate_categories", "[]"))
        module = build_module(model.config.model, len(model.genes), len(model.covariate_categories))
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(
                f"{directory}: weights do not match config.yaml ({str(exc).splitlines()[0]})."
            ) from None
        model.module = module.eval()
        model.history = (
            pd.read_csv(directory / "history.csv")
            if (directory / "history.csv").stat().st_size > 1
            else pd.DataFrame()
        )
        model.metrics = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
        return model


def _with_layer(adata: ad.AnnData, layer: str | None) -> ad.AnnData:
    if layer is None:
        return adata
    if layer not in adata.layers:
        raise InputError(
            f"layer {layer!r} not found; available layers: {', '.join(adata.layers) or 'none'}."
        )
    return ad.AnnData(X=adata.layers[layer], obs=adata.obs.copy(), var=adata.var.copy())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if sp.issparse(obj):
        raise TypeError("sparse matrices do not belong in metrics.json")
    return obj


def embed(
    adata: ad.AnnData,
    model: GeneAE | None = None,
    *,
    config: RunConfig | None = None,
    preset: str | None = None,
    layer: str | None = None,
    key_added: str = "X_geneae",
    denoise: bool = True,
    copy: bool = False,
) -> ad.AnnData | None:
    """Scanpy-style: fit (unless ``model`` is given) and store the results in ``adata``.

    Writes ``obsm[key_added]`` (latent means), ``layers["geneae_denoised"]`` (expected
    reconstruction of the modelled genes; NaN for genes the model did not use; skipped
    with ``denoise=False``) and ``uns["geneae"]`` (configuration and model summary).
    Returns the AnnData when ``copy=True``, else ``None``.
    """
    adata = adata.copy() if copy else adata
    if model is None:
        model = GeneAE.from_preset(preset) if preset else GeneAE(config)
        model.fit(adata, layer=layer)
    adata.obsm[key_added] = model.transform(adata, layer=layer)
    if denoise:
        recon = model.reconstruct(adata, layer=layer)
        full = np.full(adata.shape, np.nan, dtype=np.float32)
        position = pd.Index(adata.var_names).get_indexer(model.genes)
        full[:, position] = recon
        adata.layers["geneae_denoised"] = full
    adata.uns["geneae"] = {
        "config": json.loads(json.dumps(model.config.model_dump(mode="json"))),
        "key_added": key_added,
        "genes": list(model.genes),
        "version": __version__,
    }
    return adata if copy else None
