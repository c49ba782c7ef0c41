"""The ``evaluate`` section of a run configuration: what every run measures and draws.

Part of :mod:`geneae.config`, where :class:`~geneae.config.RunConfig` gathers the
sections.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from geneae.config_base import Section

__all__ = ["EvaluateConfig"]


class EvaluateConfig(Section):
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
    tsne: bool = Field(
        default=False,
        description="t-SNE maps beside the UMAP maps in the report (several seconds per "
        "map: 6.7 s for 2,100 cells on one core, against 1 s for UMAP)",
    )
    umap: bool = True
    max_plot_cells: int = Field(default=5000, ge=100)
    report: bool = Field(
        default=True,
        description="write report.html; without it only PCA maps are computed (t-SNE and "
        "UMAP are for the report's figures)",
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_retired(cls, values: Any) -> Any:
        # pca_baseline (always on: every run is measured beside PCA) was a key in config
        # files written before geneae 0.2; those files still load.
        if isinstance(values, dict) and "pca_baseline" in values:
            values = {k: v for k, v in values.items() if k != "pca_baseline"}
        return values
