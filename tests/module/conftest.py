"""Seeded synthetic data and a tiny training loop for the module tests.

Self-contained on purpose (no geneae.datasets, no Lightning): these tests pin the
behaviour of the pure-torch modules only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # Only a couple of cores are shared by everyone running tests.
    torch.set_num_threads(1)


def polynomial_toy(n: int = 600, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """9 standardised features (x, y, x², xy, y², x³, x²y, xy², y³) of points around four
    noisy 2-D centres: a 2-D manifold curved in 9-D. Returns (data, centre labels)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]]) * 1.2
    labels = rng.integers(0, 4, n)
    xy = centres[labels] + 0.35 * rng.standard_normal((n, 2))
    x, y = xy[:, 0], xy[:, 1]
    feats = np.stack([x, y, x**2, x * y, y**2, x**3, x**2 * y, x * y**2, y**3], axis=1)
    feats += 0.05 * rng.standard_normal(feats.shape)
    feats = (feats - feats.mean(0)) / feats.std(0)
    return torch.tensor(feats, dtype=torch.float32), labels


def nb_clusters(
    n: int = 500,
    n_genes: int = 60,
    k: int = 4,
    seed: int = 0,
    theta: float = 5.0,
    zero_inflation: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Negative-binomial counts of k cell types with varying library sizes.

    Every type up-regulates its own block of marker genes (fold change 6); library sizes
    are log-normal (a 3-fold spread). ``zero_inflation`` adds structural zeros (ZINB).
    Returns a batch dict with ``x`` (log1p of library-normalised counts), ``target``
    (counts), ``library`` and ``labels``.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    base = rng.lognormal(0.0, 0.5, n_genes)
    profiles = np.tile(base, (k, 1))
    block = n_genes // (k + 1)
    for c in range(k):
        profiles[c, c * block : (c + 1) * block] *= 6.0
    profiles /= profiles.sum(1, keepdims=True)
    library = rng.lognormal(np.log(400.0), 0.35, n)
    mu = library[:, None] * profiles[labels]
    counts = rng.negative_binomial(theta, theta / (theta + mu)).astype(np.float64)
    if zero_inflation > 0:
        counts[rng.random(counts.shape) < zero_inflation] = 0.0
    observed = counts.sum(1)
    x = np.log1p(counts / np.maximum(observed, 1.0)[:, None] * np.median(observed))
    return {
        "x": torch.tensor(x, dtype=torch.float32),
        "target": torch.tensor(counts, dtype=torch.float32),
        "library": torch.tensor(observed, dtype=torch.float32),
        "labels": torch.tensor(labels),
    }


def train(
    module: nn.Module,
    batch: dict[str, torch.Tensor],
    steps: int,
    lr: float = 1e-2,
    batch_size: int | None = None,
    kl_weight: Callable[[int], float] | float = 1.0,
    seed: int = 0,
) -> list[float]:
    """Adam on ``module.loss``: full batch, or random minibatches of ``batch_size`` rows.

    Returns the loss per step. ``kl_weight`` may be a function of the step (warm-up).
    """
    torch.manual_seed(seed)
    keys = [k for k in ("x", "target", "library", "covariate") if k in batch]
    n = batch["x"].shape[0]
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    losses = []
    for step in range(steps):
        if batch_size is None or batch_size >= n:
            b = {k: batch[k] for k in keys}
        else:
            rows = torch.randperm(n)[:batch_size]
            b = {k: batch[k][rows] for k in keys}
        w = kl_weight(step) if callable(kl_weight) else kl_weight
        out = module.loss(b, kl_weight=w)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    module.eval()
    return losses


# Test files reach the helpers through fixtures (conftest modules are not importable).
@pytest.fixture
def toy() -> tuple[torch.Tensor, np.ndarray]:
    return polynomial_toy()


@pytest.fixture
def make_counts() -> Callable[..., dict[str, torch.Tensor]]:
    return nb_clusters


@pytest.fixture
def fit() -> Callable[..., list[float]]:
    return train
