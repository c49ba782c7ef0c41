"""UMAP layouts of cells and genes (umap-learn), with its compiled functions kept on disk.

umap-learn compiles its graph and layout functions with numba in every process that first
uses them: 8-10 s on this project's 2-core machine for a 2,100-cell map whose layout then
takes 1 s, most of the fixed cost of an evaluation. :func:`umap_layout` asks numba to keep
those compilations in its on-disk cache (numba's ``cache=True``, which umap-learn does not
set), so only an installation's first map compiles them. umap-learn's functions are found by
name; under a version that renames them the maps are the same, only slower to start.
"""

from __future__ import annotations

import functools
import threading
import warnings

import numpy as np

#: UMAP optimisation epochs (umap-learn's default is 500 below 10,000 cells).
UMAP_EPOCHS = 200
#: UMAP neighbours: exact (scikit-learn, BLAS distances) below this many cells, umap-learn's
#: own approximate search from here on. Below 4,096 cells umap-learn would compute every
#: pairwise distance through a per-pair numba call: 1,000 cells, 0.87 s vs 0.33 s warm,
#: and 7.8 s vs 4.0 s in a fresh process (less to compile).
UMAP_EXACT_BELOW = 20_000
#: The numba functions of umap-learn a map compiles (module, name), and most of the time:
#: 5.0 s, 1.8 s and 1.3 s for a first 2,100-cell map.
COMPILED = (
    ("umap.umap_", "smooth_knn_dist"),
    ("umap.umap_", "compute_membership_strengths"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"),
)


_ENABLING = threading.Lock()  # the maps of several spaces are computed in threads


@functools.cache
def _cache_compilation() -> tuple[str, ...]:
    """Turn on numba's disk cache for umap-learn's compiled functions; the names it found.

    Numba keeps the cache beside umap-learn's sources, or in the user's cache folder when
    those are read-only (``NUMBA_CACHE_DIR`` chooses another), and compiles anew whenever
    umap-learn or numba changes. Where no folder is writable, numba refuses to cache and the
    functions are compiled in each process, as without this.
    """
    import importlib

    enabled = []
    for module_name, name in COMPILED:
        function = getattr(importlib.import_module(module_name), name, None)
        enable = getattr(function, "enable_caching", None)
        if enable is None:
            continue
        try:
            enable()
        except (RuntimeError, OSError):  # no writable cache folder: compile as before
            continue
        enabled.append(f"{module_name}.{name}")
    return tuple(enabled)


def umap_layout(data: np.ndarray, seed: int) -> np.ndarray:
    """The 2-D UMAP layout of the rows of ``data`` (dense float64, >= 10 rows), one thread."""
    import umap

    with _ENABLING:
        _cache_compilation()
    n = len(data)
    k = min(15, n - 1)
    knn: tuple[np.ndarray, ...] | tuple[None, None, None] = (None, None, None)
    if n < UMAP_EXACT_BELOW:
        from sklearn.neighbors import NearestNeighbors

        # Each cell's k nearest cells, itself first, as umap-learn's own search returns
        # them; a pair (no search index) because these maps never transform new cells.
        dists, indices = NearestNeighbors(n_neighbors=k).fit(data).kneighbors(data)
        knn = (indices, dists)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=k,
        n_epochs=UMAP_EPOCHS,
        random_state=seed,
        n_jobs=1,
        precomputed_knn=knn,
    )
    with warnings.catch_warnings():
        # "n_jobs overridden by setting random_state": one thread is what we ask for.
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        # Well-separated groups make a disconnected neighbour graph and a warning about the
        # spectral start; the maps still separate the groups (tests/test_tl.py checks it).
        warnings.filterwarnings("ignore", message=".*not fully connected.*", category=UserWarning)
        # Neighbours given without a search index: these maps never transform new cells.
        warnings.filterwarnings("ignore", message=".*knn_search_index.*", category=UserWarning)
        coords = reducer.fit_transform(np.ascontiguousarray(data))
    return np.asarray(coords, dtype=np.float64)
