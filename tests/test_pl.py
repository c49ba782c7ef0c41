import io

import matplotlib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from matplotlib.figure import Figure

from geneae import pl
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


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_map_pair(data, method):
    x, x_hat, latent, labels, _ = data
    fig = pl.map_pair(x, latent, labels, method=method, titles=("original", "latent"))
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["original", "latent"]
    assert fig.axes[0].get_legend() is None and fig.axes[1].get_legend() is not None
    render(fig)


def test_embed_2d_seeded_and_sparse(data):
    x, *_ = data
    a = pl.embed_2d(sp.csr_matrix(x), "tsne", seed=3)
    assert a.shape == (len(x), 2)
    np.testing.assert_array_equal(a, pl.embed_2d(sp.csr_matrix(x), "tsne", seed=3))
    # The PCA map is the same however the matrix is stored.
    np.testing.assert_allclose(pl.embed_2d(sp.csr_matrix(x)), pl.embed_2d(x), atol=1e-8)
    pre = pl.map_pair(a, a, None, method="tsne", precomputed=True)
    assert len(pre.axes) == 2


def test_reconstruction_profiles(data):
    x, x_hat, _, _, genes = data
    fig = pl.reconstruction_profiles(x, x_hat, genes, n_samples=3, n_genes=20)
    assert len(fig.axes) == 3
    labels = [t.get_text() for t in fig.axes[-1].get_xticklabels()]
    variance = x.var(axis=0)
    assert labels[0] == genes[int(np.argmax(variance))]
    render(pl.reconstruction_profiles(sp.csr_matrix(x), x_hat, genes))


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
    x, *_ = data
    raw = np.round(np.expm1(x))
    fig = pl.expression_histograms(sp.csr_matrix(raw), x)
    assert len(fig.axes) == 2
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    # implicit zeros of the sparse matrix are counted
    assert f"{np.mean(raw == 0):.0%} zeros" in fig.axes[0].get_title()
    assert len(pl.expression_histograms(None, x).axes) == 1
    render(fig)


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


def test_umap_map(data):
    _, _, latent, labels, _ = data
    coords = pl.embed_2d(latent, "umap", seed=0)
    assert coords.shape == (len(latent), 2) and np.all(np.isfinite(coords))
    np.testing.assert_array_equal(coords, pl.embed_2d(latent, "umap", seed=0))
    fig = pl.map_pair(coords, coords, labels, method="umap", precomputed=True)
    assert fig.axes[0].get_xlabel() == "UMAP 1"


def test_no_pyplot_figures_left_open(data):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    x, x_hat, latent, labels, genes = data
    pl.map_pair(x, latent, labels)
    pl.confusion(labels, labels)
    assert plt.get_fignums() == before
