"""tl.gene_embedding's slots, and the figures of gene maps and studies."""

import io

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest

from geneae import pl, tl
from geneae.errors import InputError
from geneae.evaluate import cosine_neighbours

matplotlib.use("Agg")


def png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.getvalue().startswith(b"\x89PNG")
    return fig


@pytest.fixture
def genes():
    rng = np.random.default_rng(0)
    g, d = 90, 5
    groups = np.repeat(np.arange(3), 30)
    centres = rng.normal(size=(3, d)) * 3
    vectors = centres[groups] + rng.normal(size=(g, d))
    names = np.array([f"g{i}" for i in range(g)])
    variance = rng.uniform(0.5, 2.0, size=g)
    return names, vectors, variance, groups


def test_gene_embedding_slots(genes):
    names, vectors, variance, groups = genes
    results = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(4)]))
    tl.gene_embedding(
        results,
        names=names,
        vectors=vectors,
        source="loadings",
        variance=variance,
        labels=groups,
        n_top=5,
        n_neighbours=7,
        max_genes=40,
        seed=1,
    )
    slot = results.uns["geneae"]["genes"]
    top = np.argsort(-variance)[:5]
    assert list(slot["top"]) == list(names[top])  # the most variable genes
    idx, sims = cosine_neighbours(vectors, 7, rows=top)
    assert (slot["neighbours"] == names[idx]).all()
    np.testing.assert_allclose(slot["similarity"], sims, rtol=1e-6)
    assert set(top) <= set(slot["plotted"]) and len(slot["plotted"]) <= 45
    assert slot["map"].shape == (len(slot["plotted"]), 2)
    np.testing.assert_allclose(slot["embedding"], vectors, rtol=1e-6)
    assert list(slot["labels"]) == [str(x) for x in groups]


def test_gene_embedding_round_trips_through_h5ad(genes, tmp_path):
    names, vectors, variance, _ = genes
    results = ad.AnnData(obs=pd.DataFrame(index=["c0", "c1"]))
    tl.gene_embedding(results, names=names, vectors=vectors, source="latent", variance=variance)
    results.write_h5ad(tmp_path / "r.h5ad")
    slot = ad.read_h5ad(tmp_path / "r.h5ad").uns["geneae"]["genes"]
    assert list(slot["names"]) == list(names) and slot["source"] == "latent"
    assert slot["neighbours"].shape == (12, 10)


def test_gene_embedding_without_variance_ranks_by_norm(genes):
    names, vectors, _, _ = genes
    results = ad.AnnData()
    tl.gene_embedding(results, names=names, vectors=vectors, source="latent", n_top=3)
    norms = np.linalg.norm(vectors, axis=1)
    assert list(results.uns["geneae"]["genes"]["top"]) == list(names[np.argsort(-norms)[:3]])


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"source": "decoder"}, "source"),
        ({"vectors": np.zeros((5, 2))}, "one row per name"),
        ({"variance": np.ones(3)}, "variance"),
        ({"labels": ["a"]}, "labels"),
    ],
)
def test_gene_embedding_bad_input(genes, kwargs, fragment):
    names, vectors, variance, _ = genes
    args = {"names": names, "vectors": vectors, "source": "latent", "variance": variance}
    with pytest.raises(InputError, match=fragment):
        tl.gene_embedding(ad.AnnData(), **{**args, **kwargs})


def test_gene_map(genes):
    names, vectors, variance, groups = genes
    xy = vectors[:, :2]
    fig = png(pl.gene_map(xy, names, labels=groups, highlight=["g1", "g40", "absent"]))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["g1", "g40"]
    assert len(ax.get_legend().get_texts()) == 3
    by_value = png(pl.gene_map(xy, names, values=variance))
    assert len(by_value.axes) == 2  # the map and its colour bar
    assert "no gene map" in png(pl.gene_map(np.zeros((0, 2)), [])).axes[0].texts[0].get_text()


def test_optimization_history_and_importances():
    numbers = [0, 1, 2, 3, 4]
    values = [5.0, 3.0, 4.0, np.nan, 2.5]
    states = ["COMPLETE", "COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    fig = png(pl.optimization_history(numbers, values, states, label="loss"))
    ax = fig.axes[0]
    best = ax.lines[0].get_ydata()
    assert list(best) == [5.0, 3.0, 2.5]  # best so far over the complete trials
    up = png(pl.optimization_history(numbers, values, states, direction="maximize"))
    assert list(up.axes[0].lines[0].get_ydata()) == [5.0, 5.0, 5.0]
    empty = png(pl.optimization_history([0], [np.nan], ["FAIL"]))
    assert "no finished trials" in empty.axes[0].texts[0].get_text()
    bars = png(pl.param_importances({"model.latent_dim": 0.8, "train.lr": 0.2}))
    labels = [t.get_text() for t in bars.axes[0].get_yticklabels()]
    assert labels == ["train.lr", "model.latent_dim"]  # largest on top
    assert "too few" in png(pl.param_importances({})).axes[0].texts[0].get_text()
