"""Two-dimensional maps of cells (PCA, t-SNE, UMAP) for plotting, computed once per run.

:func:`maps` writes the maps of several matrices ("spaces") of the same cells into a results
AnnData (``obsm["map_<method>_<space>"]``, see ``docs/results.md``) so that drawing them later
costs no fitting. :func:`embed_2d` is the same computation for one matrix and one method.

Speed: for t-SNE and UMAP a space with more than 50 features is first reduced to its 50
leading principal components, computed once per space and shared by both methods (its first
two columns are the PCA map). t-SNE is openTSNE (Barnes-Hut gradients below 10,000 cells,
FFT above) with a shortened final phase; UMAP runs a modest number of epochs on exact
neighbours from scikit-learn (:mod:`geneae.tl._umap`); both run on one thread, so a seed
gives the same map run after run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from geneae.errors import InputError
from geneae.threads import usable_cores
from geneae.tl._common import as_matrix, geneae_uns
from geneae.tl._umap import umap_layout

MapMethod = Literal["pca", "tsne", "umap"]

METHODS: tuple[str, ...] = ("pca", "tsne", "umap")
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
#: Principal components kept before t-SNE and UMAP when a space has more features.
N_PCS = 50
#: t-SNE iterations after the 250 of early exaggeration (openTSNE's default is 500). On the
#: bundled PBMC data the kNN accuracy of the labels in the map is the same (0.88) at 300 and
#: 500 while the later iterations, on an ever larger FFT grid, cost the most time.
TSNE_ITERATIONS = 300
#: Below this many cells t-SNE and UMAP are not meaningful; the PCA map is used instead.
MIN_NEIGHBOUR_CELLS = 10
#: t-SNE's gradient: Barnes-Hut below this many cells, FFT from here on. FFT's grid has a
#: fixed cost per iteration that only pays off on large maps (1,000 cells: 2.7 s vs 1.2 s).
TSNE_FFT_FROM = 10_000


def map_key(method: str, space: str) -> str:
    """The ``obsm`` key of a map: ``map_<method>_<space>``."""
    return f"map_{method}_{space}"


def plotted_rows(n: int, max_cells: int, seed: int) -> np.ndarray:
    """Sorted row numbers of the seeded subsample of at most ``max_cells`` of ``n`` cells."""
    if max_cells < 1:
        raise InputError(f"max_cells must be >= 1, got {max_cells}.")
    if n <= max_cells:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_cells, replace=False))


def maps(
    results: Any,
    spaces: Mapping[str, Any],
    *,
    methods: Sequence[str] = METHODS,
    neighbour_spaces: Sequence[str] | None = None,
    max_cells: int = 5000,
    seed: int = 0,
    workers: int | None = None,
) -> None:
    """Compute the 2-D maps of the spaces with the methods asked for, on a seeded subsample.

    Parameters
    ----------
    results
        The results AnnData (rows: the evaluated cells). Written in place: ``obs["plotted"]``
        (bool, the subsample), ``obsm["map_<method>_<space>"]`` ((n, 2) float32, NaN rows
        for cells not plotted) and ``uns["geneae"]["maps"]`` (``methods``, ``spaces``,
        ``neighbour_spaces``, ``seed``, ``n_plotted``, ``seconds``). Map slots of an earlier
        call are replaced (removed first), so ``obsm`` always holds exactly the maps of the
        last call.
    spaces
        Name -> cells x features matrix (dense or sparse) of the same cells as ``results``,
        e.g. ``{"input": x, "reconstruction": x_hat, "geneae": latent, "pca": pca_scores}``.
    methods
        Any of ``"pca"``, ``"tsne"``, ``"umap"``.
    neighbour_spaces
        The spaces that get the t-SNE and UMAP maps of ``methods`` (None: all); the others
        get the PCA map only. A neighbour map costs seconds where a PCA map costs
        milliseconds, and some spaces need none (the input's is nearly the PCA baseline's).
    max_cells
        At most this many cells are mapped (a seeded random choice); all when fewer.
    seed
        Seed of the subsample and of every random step (same seed, same maps).
    workers
        Spaces mapped at once, in threads (None: one per usable core). The maps do not
        depend on it.
    """
    start = time.perf_counter()
    methods = _check_methods(methods)
    if not spaces:
        raise InputError("tl.maps needs at least one space (name -> cells x features).")
    neighbour_spaces = list(spaces) if neighbour_spaces is None else list(neighbour_spaces)
    unknown = [s for s in neighbour_spaces if s not in spaces]
    if unknown:
        raise InputError(f"neighbour_spaces {unknown!r} are not among the spaces {list(spaces)}.")
    n = results.n_obs
    rows = plotted_rows(n, max_cells, seed)
    inputs: dict[str, Any] = {}
    for space, matrix in spaces.items():
        if not isinstance(space, str) or not space or "/" in space:
            raise InputError(f"space names must be non-empty text without '/', got {space!r}.")
        x = as_matrix(matrix, f"space {space!r}", n)[rows]
        inputs[space] = sp.csr_array(x, dtype=np.float64) if sp.issparse(x) else x.astype(float)

    def one_space(space: str) -> dict[str, Any]:
        mapped = methods if space in neighbour_spaces else tuple(m for m in methods if m == "pca")
        if not mapped:
            return {}
        return _coordinates(inputs[space], mapped, seed, what=f"space {space!r}")

    if workers is None:
        workers = usable_cores()
    n_threads = max(1, min(workers, len(inputs)))
    # Every space is mapped with one BLAS thread, side by side or alone. Side by side,
    # scikit-learn's neighbour search, which limits BLAS to one thread inside its OpenMP
    # loop, can have that limit undone by the other space's thread leaving its own: OpenBLAS
    # then runs threaded inside an OpenMP loop ("OpenBLAS Warning : Detect OpenMP Loop and
    # this application may hang", seen in about one run in five). Alone too, so that the maps
    # do not depend on the workers: BLAS threads change float sums, and t-SNE's start from
    # them (one space of 240 points moved by up to 2.8 units).
    with (
        threadpool_limits(limits=1, user_api="blas"),
        ThreadPoolExecutor(max_workers=n_threads) as pool,
    ):
        by_space = dict(zip(inputs, pool.map(one_space, inputs), strict=True))
    computed: dict[str, np.ndarray] = {}
    for space, coordinates in by_space.items():
        for method, xy in coordinates.items():
            full = np.full((n, 2), np.nan, dtype=np.float32)
            full[rows] = xy
            computed[map_key(method, space)] = full
    for key in [k for k in results.obsm if str(k).startswith("map_")]:
        del results.obsm[key]
    for key, value in computed.items():
        results.obsm[key] = value
    plotted = np.zeros(n, dtype=bool)
    plotted[rows] = True
    results.obs["plotted"] = pd.Series(plotted, index=results.obs_names)
    geneae_uns(results)["maps"] = {
        "methods": list(methods),
        "spaces": [str(s) for s in spaces],
        "neighbour_spaces": [str(s) for s in neighbour_spaces],
        "seed": int(seed),
        "n_plotted": len(rows),
        "seconds": float(time.perf_counter() - start),
    }


def embed_2d(x: Any, method: MapMethod = "pca", *, seed: int = 0) -> np.ndarray:
    """Two-dimensional coordinates of the rows of ``x`` for plotting.

    Parameters
    ----------
    x
        Cells x features, dense or sparse (at least 3 cells).
    method
        ``"pca"`` (scikit-learn), ``"tsne"`` (openTSNE, FFT gradients, one thread) or
        ``"umap"`` (umap-learn, one thread). For t-SNE and UMAP, inputs with more than 50
        features are first reduced to 50 principal components (removes noise, saves time).
        Below 10 cells t-SNE and UMAP fall back to the PCA map.
    seed
        Seed of every random step (same seed, same map).

    Returns
    -------
    numpy.ndarray
        Cells x 2, float64.
    """
    (method,) = _check_methods([method])
    x = sp.csr_array(x, dtype=np.float64) if sp.issparse(x) else np.asarray(x, np.float64)
    if x.ndim != 2:
        raise InputError(f"x must be cells x features, got an array of shape {x.shape}.")
    return _coordinates(x, (method,), seed, what="x")[method]


def _check_methods(methods: Iterable[str]) -> tuple[str, ...]:
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(
            f"unknown map method(s) {unknown or methods!r}; choose from {list(METHODS)}."
        )
    return tuple(dict.fromkeys(methods))  # unique, in the order given


def _coordinates(x: Any, methods: Sequence[str], seed: int, *, what: str) -> dict[str, Any]:
    """The 2-D map of ``x`` (float64, dense or CSR) by each method, one shared PCA."""
    n = x.shape[0]
    if n < 3:
        raise InputError(f"a 2-D map needs >= 3 cells, {what} has {n}.")
    values = x.data if sp.issparse(x) else x
    if not np.all(np.isfinite(values)):
        raise InputError(f"{what} holds NaN or infinite values; a map needs finite numbers.")
    if x.shape[1] == 0:
        raise InputError(f"{what} has no features.")
    if x.shape[1] == 1:  # a single feature: the map is that feature against zero
        x = np.column_stack([x.toarray() if sp.issparse(x) else x, np.zeros(n)])
    neighbour = [m for m in methods if m != "pca"] if n >= MIN_NEIGHBOUR_CELLS else []
    shared = None
    if neighbour:
        shared = _pca(x, N_PCS, seed) if x.shape[1] > N_PCS else None
    if "pca" in methods or not neighbour:
        planar = shared[:, :2] if shared is not None else _pca(x, 2, seed)
    out: dict[str, Any] = {}
    for method in methods:
        if method == "pca" or method not in neighbour:
            out[method] = planar
            continue
        data = shared if shared is not None else (x.toarray() if sp.issparse(x) else x)
        out[method] = _tsne(data, seed) if method == "tsne" else umap_layout(data, seed)
    return out


def _pca(x: Any, k: int, seed: int) -> np.ndarray:
    """The first ``k`` principal-component scores (fewer columns padded with zeros).

    ARPACK for dense and sparse alike (it centres sparse input implicitly), so a matrix gives
    the same map however it is stored; it needs k < min(n, features), otherwise the full SVD.
    """
    from sklearn.decomposition import PCA

    n, f = x.shape
    if sp.issparse(x):
        k_fit, solver = min(k, min(n, f) - 1), "arpack"
    elif k >= min(n, f):
        k_fit, solver = min(n, f), "full"
    else:
        k_fit, solver = k, "arpack"
    pca = PCA(n_components=k_fit, svd_solver=solver, random_state=seed)
    out = np.asarray(pca.fit_transform(x), dtype=np.float64)
    if out.shape[1] < k:
        out = np.column_stack([out, np.zeros((n, k - out.shape[1]))])
    return out


def _tsne(data: np.ndarray, seed: int) -> np.ndarray:
    from openTSNE import TSNE

    n = len(data)
    tsne = TSNE(
        n_components=2,
        perplexity=float(min(30.0, (n - 1) / 3)),
        negative_gradient_method="fft" if n >= TSNE_FFT_FROM else "bh",
        n_iter=TSNE_ITERATIONS,
        random_state=seed,
        n_jobs=1,
        verbose=False,
    )
    return np.asarray(tsne.fit(np.ascontiguousarray(data)), dtype=np.float64)
