import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.manifold import trustworthiness as sk_trust
from sklearn.model_selection import LeaveOneOut, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from geneae.evaluate import knn_accuracy, nearest_neighbours, trustworthiness


def test_knn_accuracy_equals_sklearn_leave_one_out(blobs):
    z, labels = blobs
    rng = np.random.default_rng(0)
    z = z + rng.normal(scale=5.0, size=z.shape)
    expected = cross_val_score(KNeighborsClassifier(15), z, labels, cv=LeaveOneOut()).mean()
    assert knn_accuracy(z, labels) == pytest.approx(expected)
    shared = nearest_neighbours(z, 30)
    assert knn_accuracy(z, labels, neighbours=shared) == pytest.approx(expected)


def test_knn_accuracy_tiny_classes():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(30, 2))
    labels = np.array(["a"] * 20 + ["b"] * 9 + ["c"])  # a singleton class
    value = knn_accuracy(z, labels)
    assert 0 <= value <= 1


def test_trustworthiness_matches_sklearn_and_subsamples():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 30))
    z = x[:, :3]
    assert trustworthiness(x, z) == pytest.approx(sk_trust(x, z, n_neighbors=10))
    sub = trustworthiness(sp.csr_matrix(x), z, max_cells=50, seed=1)
    idx = np.sort(np.random.default_rng(1).choice(120, 50, replace=False))
    assert sub == pytest.approx(sk_trust(x[idx], z[idx], n_neighbors=10))
    assert trustworthiness(x, x) == pytest.approx(1.0)


def test_trustworthiness_of_several_embeddings_equals_sklearn_on_each():
    """The input-space ranks found once serve every embedding, as if each were alone."""
    from geneae.evaluate.neighbourhood import trustworthiness_of

    rng = np.random.default_rng(3)
    x = rng.poisson(2.0, size=(90, 12)).astype(float)  # ties in the input distances
    latents = [x[:, :2] + rng.normal(size=(90, 2)), rng.normal(size=(90, 4)), x[:, 0]]
    shared = trustworthiness_of(x, latents, n_neighbors=7)
    expected = [sk_trust(x, np.reshape(z, (90, -1)), n_neighbors=7) for z in latents]
    assert shared == pytest.approx(expected, rel=1e-12)
    assert shared == [trustworthiness(x, z, n_neighbors=7) for z in latents]
    assert trustworthiness_of(x[:2], [latents[0][:2]]) == [pytest.approx(np.nan, nan_ok=True)]
