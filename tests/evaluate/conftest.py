import numpy as np
import pytest
from sklearn.datasets import make_blobs


@pytest.fixture
def blobs():
    """Four well-separated Gaussian blobs in 5-D with string labels."""
    z, y = make_blobs(
        n_samples=240,
        centers=4,
        n_features=5,
        cluster_std=0.5,
        center_box=(-20, 20),
        random_state=3,
    )
    labels = np.array(["alpha", "beta", "gamma", "delta"])[y]
    return z, labels
