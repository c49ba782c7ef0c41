"""Quality floor on real data: the default count model on 10x PBMC (4,271 cells)."""

import json

import numpy as np
import pytest

from geneae import GeneAE, RunConfig, read
from geneae.run import evaluate_file


@pytest.mark.long  # ~95 s on 2 cores: `make test-long`; the benchmark measures 3 seeds
def test_default_count_model_on_10x_pbmc(shared_file):
    adata = read(shared_file("pbmc_10x/10X_PBMC_top2000.h5"))
    config = RunConfig().updated({"train.quiet": True, "evaluate.report": False})
    model = GeneAE(config).fit(adata)
    assert model.config.model.likelihood == "nb"  # counts get the count model by default
    metrics = evaluate_file(model, adata)
    ours, pca = metrics["comparison"]["geneae"], metrics["comparison"]["pca"]
    print(json.dumps({"geneae": ours, "pca": pca}, default=float))
    # The floor: at least 0.70 and at least PCA with as many components on the same
    # preprocessed matrix (published scDeepCluster: ARI 0.784 / NMI 0.774). Measured here
    # (seed 0, 2 threads): geneae ARI 0.766 / NMI 0.776, PCA 0.735 / 0.758; across seeds
    # and thread counts geneae ranges about 0.71-0.77 (BENCHMARKS.md).
    assert ours["ari"] >= 0.70
    assert ours["ari"] >= pca["ari"]
    assert ours["nmi"] >= pca["nmi"]
    # Neighbourhoods are kept about as well as by PCA (measured 0.763 vs 0.754).
    assert np.isfinite(ours["mse"]) and ours["trustworthiness"] >= pca["trustworthiness"] - 0.02
