"""Fixtures shared by all tests: where the shared real data live."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where the shared real data live (env GENEAE_SHARED_DATA, else beside the repo)."""
    return Path(os.environ.get("GENEAE_SHARED_DATA", REPO.parent / "shared" / "data"))


def require(path: Path) -> Path:
    """Return ``path``; if it is missing, fail in CI (data must be there) or skip locally."""
    if path.exists():
        return path
    message = f"shared data not found: {path} (set GENEAE_SHARED_DATA to its folder)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (see :func:`require` for what happens when it is missing)."""
    return require(shared_data_dir())


@pytest.fixture(scope="session")
def shared_file(shared_data: Path) -> Callable[[str], Path]:
    """``shared_file("worm_neuron/x.h5")``: a file of the shared data, required like it."""
    return lambda relative: require(shared_data / relative)
