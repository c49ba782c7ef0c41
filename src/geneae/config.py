"""Run configuration: one source of truth for the Python API, the CLI flags and YAML files.

A :class:`RunConfig` has five sections (data, preprocess, model, train, evaluate). Every
section forbids unknown keys, so a misspelt key is an error naming the key and the allowed
ones, never silently ignored. Named presets reproduce architectures from the literature.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from geneae.errors import ConfigError
from geneae.likelihoods import COUNT_LIKELIHOODS, LIKELIHOODS

Family = Literal["ae", "dae", "vae", "gmvae"]
# The choices come from the likelihood table (one home); "auto" is resolved from the data.
Likelihood = Literal[("auto", *LIKELIHOODS)]  # type: ignore[valid-type]
Activation = Literal["relu", "elu", "leaky_relu", "sigmoid", "tanh", "linear"]
Norm = Literal["batch", "layer", "none"]
Noise = Literal["none", "gaussian", "mask", "dynamic_mask"]
KLSchedule = Literal["constant", "warmup", "cyclic"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """How to read the input file (see :func:`geneae.read`).

    Labels are read for evaluation only: encoding and reconstructing new data never need
    them, and a labels file (``--labels-file``) is not part of the configuration.
    """

    format: str | None = Field(default=None, description="force a file format")
    label_column: str | None = Field(
        default=None,
        # "labels" is this field's name in config files written before geneae 0.2.
        validation_alias=AliasChoices("label_column", "labels"),
        description="obs / table column with known labels, for evaluation only (default: "
        "a column named label, cell_type, ...)",
    )
    transpose: bool | None = Field(
        default=None,
        description="the file's rows are genes (its orientation on disk; None: detected)",
    )
    genes_as_samples: bool = Field(
        default=False,
        description="embed genes instead of samples: train on the transposed matrix, each "
        "gene's log expression across the samples standardised (see geneae.resolve)",
    )
    layer: str | None = None
    covariate: str | None = Field(
        default=None, description="obs column of a categorical covariate (batch) for the decoder"
    )


PreprocessPreset = Literal["auto", "counts", "lognorm", "standardize", "minmax", "none"]
HVGFlavor = Literal["seurat_v3", "seurat", "cell_ranger", "variance", "mad"]


class PreprocessConfig(_Section):
    """Preprocessing steps (see :class:`geneae.pp.Preprocessor`), in the order applied.

    ``preset`` names a combination of steps; ``"auto"`` and every field left at ``None``
    are decided from the data by :func:`geneae.resolve.resolve_preprocess`, the one place
    where data decide settings. A resolved configuration has no ``auto`` and no ``None``
    left (``gene_list`` aside) and is what a run writes to config.yaml.
    """

    preset: PreprocessPreset = Field(
        default="auto",
        description="counts | lognorm | standardize | minmax | none; auto: counts for raw "
        "counts, standardize otherwise",
    )
    source: Literal["auto", "counts", "X"] = Field(
        default="auto",
        description="where the value steps start: the raw counts or X (auto: from the preset "
        "and the data)",
    )
    min_counts_per_cell: float | None = Field(default=None, ge=0)
    min_genes_per_cell: int | None = Field(default=None, ge=0, strict=True)
    min_cells_per_gene: int | None = Field(default=None, ge=0, strict=True)
    gene_list: str | None = Field(
        default=None, description="text file of gene IDs to keep, one per line"
    )
    normalize: bool | None = Field(default=None, strict=True)
    target_sum: float | None = Field(default=None, gt=0)
    log1p: bool | None = Field(default=None, strict=True)
    n_top_genes: int | None = Field(
        default=None, ge=0, strict=True, description="highly variable genes to keep (0: all)"
    )
    hvg_flavor: HVGFlavor | None = None
    scale: bool | None = Field(default=None, strict=True)
    clip: float | None = Field(default=None, ge=0)
    minmax: bool | None = Field(default=None, strict=True)

    @model_validator(mode="after")
    def _check(self) -> PreprocessConfig:
        # The preset's own scaling counts too: standardize z-scores, minmax min-max scales.
        scale = self.scale if self.scale is not None else self.preset == "standardize"
        minmax = self.minmax if self.minmax is not None else self.preset == "minmax"
        if scale and minmax:
            raise ValueError(
                "scale (z-score) and minmax (scaling to [0, 1]) exclude each other; turn one "
                "off (preset 'standardize' scales, preset 'minmax' min-max scales)"
            )
        return self

    @property
    def drop_empty(self) -> bool:
        """Whether empty cells and genes are dropped (every preset but ``none``)."""
        return self.preset != "none"

    @property
    def is_resolved(self) -> bool:
        """No ``auto`` and no ``None`` left (``gene_list`` may stay None)."""
        values = self.model_dump(exclude={"gene_list"})
        return "auto" not in (self.preset, self.source) and None not in values.values()


class ModelConfig(_Section):
    """Architecture and objective of the autoencoder.

    ``family``: ``ae`` (deterministic), ``dae`` (deterministic with corruption of the input
    during training), ``vae`` (Gaussian q(z|x)), ``gmvae`` (Gaussian-mixture prior).
    ``likelihood``: ``mse`` / ``masked_mse`` are plain losses; the others are negative
    log-likelihoods; ``poisson``, ``nb``, ``zip`` and ``zinb`` model raw counts; ``auto``
    resolves from the data when training starts: ``nb`` for raw counts, ``mse`` otherwise
    (each beside the standardised term, ``standardized_weight``).
    """

    family: Family = Field(default="vae", description="model family")
    likelihood: Likelihood = Field(
        default="auto",
        description="reconstruction likelihood (auto: nb for raw counts, mse otherwise)",
    )
    latent_dim: int = Field(default=10, ge=1, description="latent dimensions")
    hidden: list[int] = Field(
        default_factory=lambda: [128], description="encoder hidden layer sizes"
    )
    decoder_hidden: list[int] | None = Field(
        default=None, description="decoder layer sizes; None mirrors the encoder, [] is linear"
    )
    activation: Activation = "relu"
    norm: Norm = "batch"
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    noise: Noise = "none"
    noise_sigma: float = Field(default=0.1, ge=0.0)
    mask_rate: float = Field(default=0.1, ge=0.0, lt=1.0)
    mask_rate_min: float = Field(default=0.05, ge=0.0, lt=1.0)
    mask_rate_max: float = Field(default=0.25, ge=0.0, lt=1.0)
    library: Literal["observed", "learned"] = "observed"
    n_components: int = Field(default=10, ge=1, description="GMVAE mixture components")
    top_components: int | None = Field(
        default=None,
        ge=1,
        description="GMVAE: keep q(y|x) on its m most likely components (None: all K)",
    )
    contrastive_weight: float = Field(default=0.0, ge=0.0)
    contrastive_temperature: float = Field(default=0.5, gt=0.0)
    standardized_weight: float | None = Field(
        default=None,
        ge=0.0,
        description="weight of the standardised term beside a count or mse likelihood: a "
        "second decoder head fits a Gaussian with a learned variance per gene to the "
        "encoder input, so that every gene counts alike (geneae.module.heads); 1 puts it on "
        "the main term's scale (its null deviance per sample), 0 turns it off; None: 1.5 "
        "for count and mse likelihoods (geneae.resolve)",
    )

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if any(h < 1 for h in self.hidden) or any(h < 1 for h in self.decoder_hidden or []):
            raise ValueError("hidden layer sizes must be positive integers")
        if self.mask_rate_min > self.mask_rate_max:
            raise ValueError(
                f"mask_rate_min ({self.mask_rate_min}) must not exceed "
                f"mask_rate_max ({self.mask_rate_max})"
            )
        if self.family == "dae" and self.noise == "none":
            self.noise = "mask"
        return self

    @property
    def is_variational(self) -> bool:
        return self.family in ("vae", "gmvae")

    @property
    def models_counts(self) -> bool:
        return self.likelihood in COUNT_LIKELIHOODS


class TrainConfig(_Section):
    """Optimisation, schedules, stopping, hardware and seeding."""

    max_epochs: int | None = Field(
        default=None,
        ge=1,
        description="maximum epochs; None: from the data size (geneae.resolve.default_epochs)",
    )
    batch_size: int = Field(default=128, ge=1, description="samples per training step")
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(default=1e-3, gt=0.0, description="learning rate")
    weight_decay: float = Field(default=1e-6, ge=0.0)
    lr_scheduler: bool = True
    lr_patience: int = Field(default=8, ge=1)
    lr_factor: float = Field(default=0.5, gt=0.0, lt=1.0)
    early_stopping: bool = True
    patience: int = Field(default=20, ge=1)
    min_delta: float = Field(default=0.0, ge=0.0)
    gradient_clip: float | None = Field(default=None, gt=0.0)
    validation: float = Field(default=0.1, ge=0.0, lt=1.0)
    kl_weight: float = Field(
        default=0.3,
        ge=0.0,
        description="beta: the final KL weight (0.3 keeps more structure in the latent "
        "than the plain ELBO's 1.0: better clusters in geneae's benchmark)",
    )
    kl_schedule: KLSchedule = "warmup"
    kl_warmup_epochs: int | None = Field(
        default=None, ge=0, description="None: a third of the epochs (at most 400)"
    )
    kl_kappa: float | None = Field(
        default=None, gt=0.0, description="Tybalt warm-up: KL weight grows by kappa per epoch"
    )
    kl_cycles: int = Field(default=4, ge=1)
    kl_ramp_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    kl_cycle_decay: float = Field(default=1.0, gt=0.0, le=1.0)
    num_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for training; None: OMP_NUM_THREADS if set, else the cores "
        "that are idle when training starts (geneae.threads)",
    )
    cluster_epochs: int | None = Field(
        default=None,
        ge=0,
        description="epochs of the clustering phase after training, which makes the "
        "latent's groups compact (geneae.train.cluster_phase); 0: off; None: 20 "
        "(0 for genes as samples)",
    )
    cluster_resolution: float = Field(
        default=1.0, gt=0.0, description="Leiden resolution that finds the phase's centroids"
    )
    cluster_weight: float = Field(
        default=1.0, ge=0.0, description="weight of the clustering term, per gene"
    )
    cluster_lr: float = Field(default=1e-4, gt=0.0, description="learning rate of the phase")
    cluster_batch_size: int = Field(default=256, ge=1, description="samples per phase step")
    seed: int = Field(default=0, ge=0, description="random seed of every random step")
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    accelerator: Literal["auto", "cpu", "cuda", "gpu", "mps"] = Field(
        default="auto", description="training device (auto: a GPU when there is one)"
    )
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = Field(default=1, ge=1)
    memory_budget_gb: float = Field(
        default=2.0, gt=0.0, description="largest matrix kept whole on the training device"
    )
    quiet: bool = Field(default=False, description="no progress bar")


class EvaluateConfig(_Section):
    """What every run measures and draws."""

    cluster_method: Literal["kmeans", "leiden", "gmvae"] = "kmeans"
    n_clusters: int | None = Field(default=None, ge=2)
    stability_repeats: int = Field(
        default=20,
        ge=0,
        description="repeats of the clustering on random subsets of the cells that measure "
        "how reproducible the clusters are (cluster_stability); 0: off",
    )
    stability_fraction: float = Field(
        default=0.67, gt=0.0, le=1.0, description="share of the cells each repeat clusters"
    )
    tsne: bool = True
    umap: bool = True
    max_plot_cells: int = Field(default=5000, ge=100)
    report: bool = True

    @model_validator(mode="before")
    @classmethod
    def _drop_retired(cls, values: Any) -> Any:
        # pca_baseline (always on: every run is measured beside PCA) was a key in config
        # files written before geneae 0.2; those files still load.
        if isinstance(values, dict) and "pca_baseline" in values:
            values = {k: v for k, v in values.items() if k != "pca_baseline"}
        return values


TuneObjective = Literal["loss", "ari", "nmi"]


class TuneConfig(_Section):
    """A hyperparameter search (``geneae tune``): the ``tune:`` section of its YAML file.

    Not part of :class:`RunConfig`: a study is many runs, and the best one is written as a
    plain run configuration (``best_config.yaml``). ``space`` maps dotted config keys to
    ranges or choices: ``"int:8:64"``, ``"float:0:0.3"``, ``"log:1e-4:1e-2"``, ``"nb,zinb"``
    or a YAML list of values (see :mod:`geneae.tune.space`).
    """

    space: dict[str, str | list[Any]] = Field(
        default_factory=dict, description="config key -> int:a:b, float:a:b, log:a:b or choices"
    )
    trials: int = Field(default=20, ge=1, description="finished trials the study should hold")
    objective: TuneObjective = Field(
        default="loss",
        description="loss: validation loss at the best epoch (label-free, minimised); ari / "
        "nmi: agreement of latent clusters with the known labels (maximised; tunes to them)",
    )
    storage: str | None = Field(
        default=None,
        description="Optuna storage URL (sqlite:///..., postgresql://...) or journal:PATH for "
        "a journal file on a shared filesystem; default: sqlite study.db in the output folder",
    )
    study_name: str = Field(default="geneae", min_length=1, description="name of the study")
    workers: int = Field(default=1, ge=1, description="local worker processes")
    pruning: bool = Field(
        default=True, description="stop unpromising trials early (median of earlier trials)"
    )
    sampler: Literal["tpe", "random", "grid"] = Field(
        default="tpe",
        description="Optuna sampler: tpe, random, or grid (every combination of integer ranges "
        "and choices)",
    )
    stale_after: float = Field(
        default=3600.0,
        gt=0,
        description="seconds without news after which a running trial of another machine is "
        "taken as dead and run again",
    )


class RunConfig(_Section):
    """A whole run: everything needed to reproduce it from the same data file."""

    preset: str | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "configuration") -> RunConfig:
        """Validate a nested dict, turning pydantic's errors into one readable ConfigError."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, source)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read and validate a YAML run configuration."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: configuration file not found; check the path.")
        values = load_yaml(path)
        if not isinstance(values, dict):
            raise ConfigError(
                f"{path}: expected a mapping with sections data / preprocess / model / train "
                f"/ evaluate, got {type(values).__name__}."
            )
        return cls.from_dict(values, source=str(path))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def updated(self, overrides: dict[str, Any], *, source: str = "override") -> RunConfig:
        """Return a copy with ``overrides`` (dotted keys, e.g. ``"model.latent_dim"``) applied."""
        values = self.model_dump(mode="json")
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if not key:
                values[section] = value
                continue
            if section not in values or not isinstance(values[section], dict):
                raise ConfigError(
                    f"{source}: unknown section {section!r} in {dotted!r}; "
                    f"allowed: {', '.join(SECTIONS)}."
                )
            values[section][key] = value
        return RunConfig.from_dict(values, source=source)


SECTIONS = ("data", "preprocess", "model", "train", "evaluate")


def load_yaml(path: Path) -> Any:
    """The YAML document in ``path``; one line naming the file, line and column if invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {exc.start}); give a YAML file."
        ) from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None


def yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """``file:line:column: not valid YAML (what)``, on one line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    what = " ".join(
        str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None)) if part
    )
    what = " ".join((what or type(exc).__name__).split())
    return f"{where}: not valid YAML ({what}); fix the syntax there."


def field_kinds(key: str) -> set[type]:
    """The Python types a dotted key's field takes: ``{int, NoneType}``, ``{list}``, ...

    Choices of a ``Literal`` count as their own types (``"auto"`` -> ``str``). Raises
    ``KeyError`` for an unknown key.
    """
    section, _, name = key.partition(".")
    model = RunConfig.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    kinds: set[type] = set()
    pending = [model.model_fields[name].annotation]
    while pending:
        kind = pending.pop()
        origin = typing.get_origin(kind)
        if origin is Literal:
            kinds |= {type(v) for v in typing.get_args(kind)}
        elif origin in (typing.Union, types.UnionType):
            pending += list(typing.get_args(kind))
        elif origin is not None:
            kinds.add(origin)
        elif isinstance(kind, type):
            kinds.add(kind)
    return kinds


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: the dotted key, the bad value, what is allowed."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) if err["loc"] else "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1])
            lines.append(f"unknown key {key!r}; allowed keys here: {', '.join(allowed)}")
        else:
            lines.append(f"{key} = {err.get('input')!r}: {err['msg']}")
    return f"{source}: " + "; ".join(lines)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = RunConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            break
        if issubclass(field.annotation, BaseModel):
            model = field.annotation
    return list(model.model_fields)
