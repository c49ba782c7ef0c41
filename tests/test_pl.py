import io
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from matplotlib.figure import Figure

from geneae import pl, tl
from geneae.errors import InputError

matplotlib.use("Agg")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def render(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)  # low resolution: the drawing is what is tested
    data = buf.getvalue()
    assert data.startswith(PNG_SIGNATURE)
    return data


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n, g = 150, 60
    labels = np.array([f"type {i}" for i in range(3)])[rng.integers(0, 3, n)]
    centres = rng.normal(scale=3, size=(3, 4))
    codes = np.unique(labels, return_inverse=True)[1]
    latent = centres[codes] + rng.normal(size=(n, 4))
    x = np.maximum(latent @ rng.normal(size=(4, g)), 0)
    x_hat = x + rng.normal(scale=0.3, size=x.shape)
    genes = [f"gene{i}" for i in range(g)]
    return x, x_hat, latent, labels, genes


def new_ax():
    fig = Figure(layout="constrained")
    return fig, fig.add_subplot()


def history(columns):
    epochs = np.arange(1, 21)
    frame = {"epoch": epochs}
    for c in columns:
        frame[c] = np.exp(-epochs / 10) + (0.1 if c.startswith("val") else 0)
    return pd.DataFrame(frame)


ALL_CURVES = [
    "train_loss",
    "val_loss",
    "train_reconstruction",
    "val_reconstruction",
    "train_kl",
    "val_kl",
    "train_elbo",
    "val_elbo",
    "lr",
    "kl_weight",
    "mask_rate",
]


def test_training_curves_panels_follow_columns():
    fig = pl.training_curves(history(ALL_CURVES))
    assert isinstance(fig, Figure) and len(fig.axes) == 7
    render(fig)
    fig = pl.training_curves(history(["train_loss", "val_loss", "lr"]))
    assert [ax.get_title() for ax in fig.axes] == ["loss", "learning rate"]
    assert fig.axes[1].get_yscale() == "log"
    fig = pl.training_curves(history(["train_loss", "train_contrastive", "val_contrastive"]))
    assert [ax.get_title() for ax in fig.axes] == ["loss", "contrastive"]


def test_training_curves_tick_whole_epochs():
    short = history(["train_loss", "val_loss"]).iloc[:3]  # 3 epochs: matplotlib ticks halves
    fig = pl.training_curves(short)
    render(fig)
    ticks = fig.axes[0].get_xticks()
    assert len(ticks) > 1 and np.allclose(ticks, np.round(ticks))


def test_training_curves_nan_gaps_and_empty():
    frame = history(["train_loss", "val_loss"])
    frame.loc[::2, "val_loss"] = np.nan  # validation logged on other rows (Lightning CSV)
    frame["val_kl"] = np.nan  # all-NaN column: no panel
    fig = pl.training_curves(frame)
    assert len(fig.axes) == 1
    assert len(fig.axes[0].lines[1].get_xdata()) == 10
    empty = pl.training_curves(pd.DataFrame({"epoch": [1, 2]}))
    assert len(empty.axes) == 1
    render(empty)


def test_training_curves_draw_each_member_of_an_ensemble():
    one = history(["train_loss", "val_loss"])
    two = pd.concat([one.assign(member=0), one.iloc[:6].assign(member=1)], ignore_index=True)
    fig = pl.training_curves(two)
    lines = fig.axes[0].lines  # train and validation per member, no best-epoch line
    assert len(lines) == 4
    assert [len(line.get_xdata()) for line in lines] == [20, 6, 20, 6]
    assert [line.get_label() for line in lines][::2] == ["train", "validation"]
    render(fig)


def test_embedding_map_and_ax(data):
    _, _, latent, labels, _ = data
    fig = pl.embedding_map(latent[:, :2], labels, title="latent")
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "latent"
    assert len(fig.axes[0].get_legend().get_texts()) == 3
    render(fig)
    own, ax = new_ax()
    assert pl.embedding_map(latent[:, :2], None, title="x", ax=ax) is own
    many = np.arange(len(latent)) % 30  # 30 categories still get distinct colours
    render(pl.embedding_map(latent[:, :2], many, title="30 classes"))
    assert len({tuple(c) for c in pl.palette(30)}) == 30
    cont = pl.embedding_map(latent[:, :2], np.linspace(0, 1, len(latent)), title="continuous")
    assert len(cont.axes) == 2  # colour bar
    with pytest.raises(InputError):
        pl.embedding_map(latent, labels, title="bad")


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_map_pair_draws_given_coordinates(data, method):
    _, _, latent, labels, _ = data
    left, right = latent[:, :2], latent[:, 2:]
    fig = pl.map_pair(left, right, labels, method=method, titles=("original", "latent"))
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["original", "latent"]
    assert fig.axes[0].get_legend() is None and fig.axes[1].get_legend() is not None
    name = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}[method]
    assert fig.axes[0].get_xlabel() == f"{name} 1"
    drawn = fig.axes[1].collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(drawn).mean(axis=0), right.mean(axis=0))
    render(fig)
    with pytest.raises(InputError):
        pl.map_pair(latent, latent, labels)  # 4 columns: not coordinates


def test_maps_leave_out_cells_not_plotted(data):
    _, _, latent, labels, _ = data
    left, right = latent[:, :2].copy(), latent[:, 2:].copy()
    left[:10] = np.nan  # cells outside the plotted subsample (tl.maps writes NaN)
    right[5:15] = np.nan
    fig = pl.map_pair(left, right, pd.Series(pd.Categorical(labels)))
    for ax in fig.axes:
        assert len(ax.collections[0].get_offsets()) == len(latent) - 15
    fig = pl.embedding_map(left, labels)
    assert len(fig.axes[0].collections[0].get_offsets()) == len(latent) - 10


def test_embedding_from_results(results_factory):
    results, _ = results_factory(n=80, g=20, max_cells=50)
    fig = pl.embedding(results, "map_pca_geneae")
    ax = fig.axes[0]
    assert ax.get_title() == "map_pca_geneae" and ax.get_xlabel() == "PCA 1"
    assert len(ax.collections[0].get_offsets()) == 50  # the plotted cells
    assert len(ax.get_legend().get_texts()) == results.obs["label"].nunique()
    own, ax = new_ax()
    assert pl.embedding(results, "X_geneae", color=None, ax=ax) is own
    with pytest.raises(InputError, match="map_umap_geneae"):
        pl.embedding(results, "map_umap_geneae")


def summarised(x, x_hat, genes, **kwargs):
    """A results AnnData holding tl.profiles and tl.histograms of x (no other slot)."""
    import anndata

    results = anndata.AnnData(
        obs=pd.DataFrame(index=[f"cell{i}" for i in range(len(x))]),
        var=pd.DataFrame(index=genes),
    )
    tl.profiles(results, input=x, reconstruction=x_hat, **kwargs)
    tl.histograms(results, raw=sp.csr_matrix(np.round(np.expm1(x))), input=x)
    return results


def test_reconstruction_profiles(data):
    x, x_hat, _, _, genes = data
    results = summarised(x, x_hat, genes, n_cells=3, n_genes=20)
    profiles = results.uns["geneae"]["profiles"]
    fig = pl.reconstruction_profiles(profiles)
    assert len(fig.axes) == 3
    labels = [t.get_text() for t in fig.axes[-1].get_xticklabels()]
    assert len(labels) == 20
    assert labels[0] == genes[int(np.argmax(x.var(axis=0)))]
    for k, ax in enumerate(fig.axes):
        r = profiles["r"][k]
        assert ax.get_title(loc="left") == f"{profiles['cells'][k]}   (r over all genes = {r:.2f})"
        heights = [bar.get_height() for bar in ax.patches]  # grey bars: the observed values
        np.testing.assert_allclose(heights, profiles["observed"][k], rtol=1e-6)
    render(pl.reconstruction_profiles(results))  # the AnnData holding them works too
    broken = dict(profiles, observed=profiles["observed"][:, :5])
    with pytest.raises(InputError):
        pl.reconstruction_profiles(broken)


def test_latent_variance(data):
    fig = pl.latent_variance({"variance": [1.0, 0.001, 2.0]})
    assert len(fig.axes) == 1
    usage = {
        "variance": [1.0, 0.0, 2.0],
        "kl": [0.5, 0.0, 1.1],
        "active": [True, False, True],
        "n_active": 2,
        "criterion": "kl",
        "threshold": 0.01,
    }
    own, ax = new_ax()
    fig = pl.latent_variance(usage, ax=ax)
    assert fig is own and len(fig.axes) == 2  # twin axis for KL
    assert "2 of 3" in fig.axes[0].get_title()
    render(fig)


def test_confusion_hungarian_order():
    labels = np.array(["a"] * 5 + ["b"] * 5 + ["c"] * 5)
    clusters = np.array([7] * 5 + [3] * 5 + [1] * 4 + [9])
    fig = pl.confusion(labels, clusters)
    assert len(fig.axes) == 2  # heatmap + colour bar
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["7", "3", "1", "9"]
    image = ax.get_images()[0].get_array()
    np.testing.assert_allclose(np.diag(image[:, :3]), [1.0, 1.0, 0.8])
    own, ax = new_ax()
    assert pl.confusion(labels, clusters, ax=ax) is own
    render(own)


def test_cluster_stability_draws_the_stored_arrays():
    matrix = np.array([[0.98, 0.0, 0.2], [0.0, 1.0, np.nan], [0.2, np.nan, 0.6]])
    slot = {
        "clusters": np.array(["0", "1", "2"]),
        "sizes": np.array([50, 30, 20]),
        "per_cluster": np.diag(matrix),
        "co_clustering": matrix,
        "mean": 0.9,
    }
    fig = pl.cluster_stability(slot, title="stability")
    bars, heat = fig.axes[:2]
    assert len(fig.axes) == 3  # bars, heatmap, colour bar
    np.testing.assert_allclose([b.get_width() for b in bars.patches], [0.98, 1.0, 0.6])
    assert [t.get_text() for t in bars.get_yticklabels()] == ["0 (50)", "1 (30)", "2 (20)"]
    image = heat.get_images()[0].get_array()
    np.testing.assert_allclose(image.filled(-1), np.nan_to_num(matrix, nan=-1))
    assert image.mask[1, 2] and image.mask[2, 1]  # never drawn together: left blank
    assert "0.900" in fig.get_suptitle()
    render(fig)
    with pytest.raises(InputError, match="co_clustering"):
        pl.cluster_stability(slot | {"co_clustering": matrix[:2]})


def test_missing_categorical_labels():
    labels = pd.Series(pd.Categorical(["a", None, "b", "a", None, "b"]))
    clusters = np.array([0, 0, 1, 0, 1, 1])
    fig = pl.confusion(labels, clusters)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b", "(missing)"]
    fig = pl.embedding_map(np.arange(12.0).reshape(6, 2), labels, title="with gaps")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][-1] == "(missing)"
    probs = np.eye(2)[clusters]
    render(pl.responsibilities(probs, labels))


def test_responsibilities(data):
    _, _, _, labels, _ = data
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=len(labels))
    fig = pl.responsibilities(probs, labels)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_images()[0].get_array().shape == (5, len(labels))
    render(fig)
    own, ax = new_ax()
    assert pl.responsibilities(probs, None, ax=ax) is own


def test_expression_histograms(data):
    x, x_hat, _, _, genes = data
    raw = np.round(np.expm1(x))
    results = summarised(x, x_hat, genes)
    stored = results.uns["geneae"]["histograms"]
    fig = pl.expression_histograms(stored)
    assert len(fig.axes) == 2
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert fig.axes[0].get_title().startswith("before preprocessing")
    # implicit zeros of the sparse matrix are counted
    assert f"{np.mean(raw == 0):.0%} zeros" in fig.axes[0].get_title()
    assert f"{raw.size:,} values" in fig.axes[0].get_title()
    only_input = pl.expression_histograms({"input": stored["input"]})
    assert len(only_input.axes) == 1
    assert only_input.axes[0].get_title().startswith("after preprocessing")
    render(fig)
    with pytest.raises(InputError):
        pl.expression_histograms({})


def test_metrics_bars():
    comparison = {
        "geneae": {"ari": 0.8, "mse": 0.2, "davies_bouldin": 1.0, "n_clusters": 4},
        "pca": {"ari": 0.7, "mse": 0.1, "davies_bouldin": float("nan"), "n_clusters": 4},
    }
    fig = pl.metrics_bars(comparison)
    assert len(fig.axes) == 2  # NaN and direction-less metrics skipped
    ari, mse = sorted(fig.axes, key=lambda ax: ax.get_title())
    assert ari.get_title().startswith("ARI")
    assert ari.patches[0].get_linewidth() > ari.patches[1].get_linewidth()  # geneae better
    assert mse.patches[1].get_linewidth() > mse.patches[0].get_linewidth()  # PCA better
    render(fig)
    assert len(pl.metrics_bars({}).axes) == 1


def test_no_pyplot_figures_left_open(data):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    x, x_hat, latent, labels, genes = data
    pl.map_pair(latent[:, :2], latent[:, 2:], labels)
    pl.confusion(labels, labels)
    pl.reconstruction_profiles(summarised(x, x_hat, genes))
    assert plt.get_fignums() == before


def test_compare_runs(results_factory):
    a, _ = results_factory(n=80, g=20, max_cells=60)
    b, _ = results_factory(n=80, g=20, labels=False, seed=1)
    del b.obsm["map_pca_geneae"]  # falls back to the first two latent dimensions
    fig = pl.compare_runs({"run a": a, "run b": b})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["run a", "run b", "geneae vs PCA (same dimension)"]
    assert fig.axes[0].get_xlabel() == "PCA 1" and fig.axes[1].get_xlabel() == "latent 1"
    assert len(fig.axes[0].collections[0].get_offsets()) == 60
    assert len(fig.axes[1].collections[0].get_offsets()) == 80
    bars = fig.axes[2]
    assert len(bars.patches) == 2 * 2 * 2  # ARI and NMI, geneae and PCA, two runs
    heights = [p.get_height() for p in bars.patches]
    comparison = json.loads(a.uns["geneae"]["metrics"])["comparison"]
    assert heights[0] == pytest.approx(comparison["geneae"]["ari"])
    assert np.isnan(heights[1])  # run b has no labels: no ARI
    render(fig)
    unlabelled = pl.compare_runs({"run b": b})
    assert not unlabelled.axes[-1].axison  # says there is nothing to compare
    with pytest.raises(InputError):
        pl.compare_runs({})


def test_pl_fits_nothing():
    # Drawing never fits a map or a model: pl imports no t-SNE, UMAP, scikit-learn or tl code
    # (and no pyplot), and no longer offers embed_2d.
    import re
    from pathlib import Path

    imports = [
        line.strip()
        for p in Path(pl.__file__).parent.glob("*.py")
        for line in p.read_text().splitlines()
        if re.match(r"\s*(import|from)\s", line)
    ]
    assert any("geneae.pl._style" in line for line in imports)  # the scan sees the imports
    for line in imports:
        assert not re.search(
            r"openTSNE|umap|sklearn|pyplot|geneae\.tl|geneae import .*\btl\b", line
        )
    assert not hasattr(pl, "embed_2d")


def test_latent_variance_without_variances_says_what_it_needs():
    with pytest.raises(InputError, match="usage needs 'variance'"):
        pl.latent_variance({})


def test_latent_variance_of_many_dimensions_stays_readable():
    # 70 dimensions drew a 34-inch strip (10:1), unreadable once scaled to a page.
    fig = pl.latent_variance({"variance": np.linspace(0.1, 1.0, 70)})
    width, height = fig.get_size_inches()
    assert width / height <= 4 and len(fig.axes[0].get_xticks()) <= 40
    assert len(fig.axes[0].patches) == 70  # every dimension still drawn
