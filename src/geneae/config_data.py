"""The ``data`` and ``preprocess`` sections of a run configuration.

How the input file is read (:class:`DataConfig`) and which preprocessing steps turn it
into the model's input (:class:`PreprocessConfig`). Part of :mod:`geneae.config`, where
:class:`~geneae.config.RunConfig` gathers the sections.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from geneae.config_base import Section
from geneae.logscale import NO_UNLOG, LogScale, parse

__all__ = ["DataConfig", "HVGFlavor", "PreprocessConfig", "PreprocessPreset"]


class DataConfig(Section):
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
    use_raw: bool | None = Field(
        default=None,
        description="read .raw's values of X's genes as X; default: where X holds z-scores "
        "and .raw their log-normalised values (scanpy's workflow), false keeps X",
    )
    covariate: str | None = Field(
        default=None, description="obs column of a categorical covariate (batch) for the decoder"
    )


PreprocessPreset = Literal["auto", "counts", "lognorm", "standardize", "minmax", "none"]
HVGFlavor = Literal["seurat_v3", "seurat", "cell_ranger", "variance", "mad"]


class PreprocessConfig(Section):
    """Preprocessing steps (see :class:`geneae.pp.Preprocessor`), in the order applied.

    ``preset`` names a combination of steps; ``"auto"`` and every field left at ``None``
    are decided from the data by :func:`geneae.resolve_preprocess.resolve_preprocess`, the one place
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
    unlog: str | None = Field(
        default=None,
        description="undo a log with a pseudo-count before the other steps, e.g. "
        "'log2(x+0.001)' (UCSC Xena's TCGA / GTEx tables), or 'no'; default: under the "
        "standardize, minmax and lognorm presets, the log the values are recognised on "
        "(a negative floor's, log2(x+1) of counts with each sample's depth, log2 of "
        "normalised expression such as log2(TPM+1), ln(x+1) of cells normalised to under "
        "5,000 each: geneae.facts.DataFacts.log_scale)",
    )
    min_counts_per_cell: float | None = Field(default=None, ge=0)
    min_genes_per_cell: int | None = Field(default=None, ge=0, strict=True)
    min_cells_per_gene: int | None = Field(default=None, ge=0, strict=True)
    gene_list: str | None = Field(
        default=None, description="text file of gene IDs to keep, one per line"
    )
    normalize: bool | None = Field(default=None, strict=True)
    target_sum: float | None = Field(
        default=None,
        gt=0,
        description="the total each sample is scaled to before log1p; default: the "
        "preset's, under auto 1e4 for raw counts and 1e6 for unlogged expression (TPM / CPM), "
        "1e4 for single cells' unlogged values (tables more than 75% zeros) and for bulk "
        "values beside wide members, which read theirs at model.wide_target_sum",
    )
    log1p: bool | None = Field(default=None, strict=True)
    n_top_genes: int | None = Field(
        default=None,
        ge=0,
        strict=True,
        description="highly variable genes to keep (0: all); default: the preset's, under "
        "auto 2,000 of raw counts, of log values and of centred values when the table has "
        "more, every gene of z-scores",
    )
    n_wide_genes: int | None = Field(
        default=None,
        ge=0,
        strict=True,
        description="also keep the genes ranked up to this many (more than n_top_genes) for "
        "an ensemble's wide members (model.wide_members); the n_top_genes most variable come "
        "first among the kept genes, the others after them; 0: none; default: 5,000 under "
        "auto where the model has wide members, else 0",
    )
    hvg_flavor: HVGFlavor | None = Field(
        default=None,
        description="how genes are ranked; default: the preset's, under auto seurat (the "
        "dispersion of the log-normalised values), variance for centred values and for "
        "values without the floor of a log (log ratios)",
    )
    scale: bool | None = Field(default=None, strict=True)
    clip: float | None = Field(default=None, ge=0)
    minmax: bool | None = Field(default=None, strict=True)

    @field_validator("unlog", mode="before")
    @classmethod
    def _canonical_unlog(cls, value: object) -> object:
        if value is False:  # YAML reads a bare `no` as false
            return NO_UNLOG
        if isinstance(value, str):
            return str(parse(value) or NO_UNLOG)
        return value

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
    def log_scale(self) -> LogScale | None:
        """The log that ``unlog`` undoes (None: the values are not unlogged)."""
        return parse(self.unlog) if self.unlog is not None else None

    @property
    def log_normalised(self) -> bool:
        """Whether the model input is each sample's log1p expression at ``target_sum``.

        Normalised and logged, and neither z-scored nor min-max scaled: values from which
        each sample's expression can be taken back (:mod:`geneae.module.ensemble`).
        """
        return bool(self.normalize and self.log1p and not (self.scale or self.minmax))

    @property
    def is_resolved(self) -> bool:
        """No ``auto`` and no ``None`` left (but in ``gene_list``, ``unlog``, ``n_wide_genes``).

        Runs saved before ``unlog`` or ``n_wide_genes`` existed have none: they undid no log
        and kept no wide genes.
        """
        values = self.model_dump(exclude={"gene_list", "unlog", "n_wide_genes"})
        return "auto" not in (self.preset, self.source) and None not in values.values()
