"""Out-of-core training: chunked loader, streaming preprocessing, the route end to end."""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from geneae import datasets
from geneae.batches import ExpressionTensors, RowMatrix
from geneae.chunked import ChunkedBatches, chunk_bounds
from geneae.cli import main
from geneae.config import RunConfig
from geneae.errors import ConfigError, DataWarning, InputError
from geneae.facts import FactsAccumulator, describe
from geneae.io.backed import matrix_nbytes, open_backed
from geneae.model import GeneAE
from geneae.ondisk import (
    OnDisk,
    in_memory_nbytes,
    model_genes_at_most,
    open_for_training,
    use_out_of_core,
)
from geneae.pp import Preprocessor
from geneae.pp.streaming import fit_streaming

CPU = torch.device("cpu")


def _ids_loader(ranges, rows):
    """Tensors whose covariate is each row's file index (what a batch saw)."""
    assert all(a < b for a, b in ranges)
    assert all(any(a <= r < b for a, b in ranges) for r in rows)
    x = RowMatrix.from_array(np.ones((len(rows), 2), dtype=np.float32))
    return ExpressionTensors(x=x, covariate=torch.as_tensor(rows, dtype=torch.int64))


def _epoch(batches: ChunkedBatches, epoch: int) -> list[np.ndarray]:
    batches.set_epoch(epoch)
    return [b["covariate"].numpy() for b in batches]


def _loader(rows, *, seed=0, rank=0, world=1, n=1000, batch_size=32):
    bounds = chunk_bounds(n, 48, world)
    return ChunkedBatches(
        _ids_loader,
        bounds,
        rows,
        batch_size=batch_size,
        device=CPU,
        shuffle=True,
        seed=seed,
        rank=rank,
        world_size=world,
        buffer_chunks=3,
    )


TRAIN = np.sort(np.random.default_rng(0).choice(1000, 870, replace=False))


def test_each_training_row_once_per_epoch_and_a_new_order_each_epoch():
    batches = _loader(TRAIN)
    first, second = _epoch(batches, 0), _epoch(batches, 1)
    for epoch in (first, second):
        assert len(epoch) == len(batches)
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), TRAIN)
        assert all(2 <= len(b) <= 32 for b in epoch)
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))


def test_same_seed_same_batches_other_seed_other_batches():
    a = _epoch(_loader(TRAIN, seed=5), 3)
    b = _epoch(_loader(TRAIN, seed=5), 3)
    c = _epoch(_loader(TRAIN, seed=6), 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(np.concatenate(a), np.concatenate(c))


def test_batches_mix_rows_of_several_chunks():
    # A buffer of 3 random chunks, shuffled: a batch holds rows of more than one chunk.
    chunks_per_batch = [len(np.unique(b // 48)) for b in _epoch(_loader(TRAIN), 0)]
    assert np.mean(chunks_per_batch) > 2


@pytest.mark.parametrize("world", [2, 3])
def test_processes_read_disjoint_chunks_covering_every_row_in_equal_steps(world):
    seen, steps = [], set()
    for rank in range(world):
        batches = _loader(TRAIN, rank=rank, world=world)
        epoch = _epoch(batches, 4)
        steps.add(len(epoch))
        seen.append(np.concatenate(epoch))
        chunks = {int(c) for c in np.concatenate(epoch) // 48}
        assert chunks <= set(batches.chunk_order().tolist())  # only its own chunks
    assert len(steps) == 1  # every process runs the same number of steps
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), TRAIN)  # each row once


# -- streaming preprocessing --------------------------------------------------------------
@pytest.fixture(scope="module")
def counts_file(tmp_path_factory):
    adata = datasets.synthetic_counts(n_cells=1200, n_genes=400, n_clusters=4, seed=3)
    keep = np.ones(adata.n_obs)
    keep[:3] = 0  # empty cells, dropped by the counts preset
    adata.X = sp.csr_matrix(sp.diags(keep) @ adata.X)
    adata.X.eliminate_zeros()
    adata.layers["counts"] = adata.X
    folder = tmp_path_factory.mktemp("ooc")
    adata.write_h5ad(folder / "counts.h5ad")
    with warnings.catch_warnings():  # anndata: zarr v2 stops being its default format soon
        warnings.simplefilter("ignore", UserWarning)
        adata.write_zarr(folder / "counts.zarr")
    return adata, folder


STEPS = [
    {},  # auto on counts: counts preset, z-scored input
    {"preset": "counts", "n_top_genes": 150},  # seurat_v3
    {"preset": "lognorm", "n_top_genes": 150, "min_cells_per_gene": 30},  # seurat
    {"preset": "lognorm", "n_top_genes": 100, "hvg_flavor": "cell_ranger"},
    {"preset": "standardize", "n_top_genes": 120, "hvg_flavor": "variance"},
    {"preset": "minmax", "n_top_genes": 0, "min_genes_per_cell": 40},
    # the most variable first, then the wide members' genes (ranked in the same passes)
    {"preset": "counts", "n_top_genes": 100, "n_wide_genes": 150},
    {"preset": "lognorm", "n_top_genes": 100, "n_wide_genes": 250},
]


@pytest.mark.parametrize("preset", ["counts", "lognorm"])
def test_streaming_ranks_the_wide_genes_in_the_passes_of_the_most_variable(counts_file, preset):
    adata, folder = counts_file
    data = open_backed(folder / "counts.h5ad")
    accumulator = FactsAccumulator(data.n_vars, has_counts_layer=True)
    for _, chunk in data.chunks(250):
        accumulator.add(chunk.X, chunk.layers["counts"])
    passes = {}
    for n_wide in (0, 250):
        reads: list[int] = []

        def chunks(reads: list[int] = reads):
            reads.append(1)
            return data.chunks(250)

        streamed = Preprocessor(preset=preset, n_top_genes=100, n_wide_genes=n_wide)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            fit_streaming(streamed, chunks, accumulator.facts(), data.obs.index, data.var.index)
        passes[n_wide] = len(reads)
        assert len(streamed.genes_) == max(100, n_wide)
    assert passes[250] == passes[0]


@pytest.mark.parametrize("unlog", [None, "no"])
def test_streaming_fits_log_values_with_a_negative_floor_as_in_memory(tmp_path, unlog):
    # log2(TPM + 0.001): a floor of -9.97, undone in both paths (None) or kept and moved to
    # 0 for the seurat flavour in both ("no")
    adata = datasets.synthetic_counts(n_cells=300, n_genes=400, n_clusters=4, seed=5)
    counts = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    tpm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) * 1e6
    unmeasured = np.random.default_rng(0).random(tpm.shape) < 0.9  # mostly
    unmeasured[tpm.argmax(axis=0), np.arange(tpm.shape[1])] = False  # each gene somewhere
    tpm[unmeasured] = 0.0
    adata = ad.AnnData(np.log2(tpm + 0.001).astype(np.float32), var=adata.var)
    adata.write_h5ad(tmp_path / "floor.h5ad")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        in_memory = Preprocessor(n_top_genes=150, unlog=unlog, min_cells_per_gene=3).fit(adata)
    # genes of too few samples are seen once unlogged; on the log, the floor is not 0
    dropped = any("in fewer than min_cells_per_gene=3" in str(w.message) for w in caught)
    assert dropped == (unlog is None)
    data = open_backed(tmp_path / "floor.h5ad")
    accumulator = FactsAccumulator(data.n_vars, has_counts_layer=False)
    for _, chunk in data.chunks(70):
        accumulator.add(chunk.X, None)
    streamed = Preprocessor(n_top_genes=150, unlog=unlog, min_cells_per_gene=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no log of a negative dispersion
        warnings.simplefilter("ignore", DataWarning)  # the genes dropped, as above
        fit_streaming(
            streamed, lambda: data.chunks(70), accumulator.facts(), data.obs.index, data.var.index
        )
    assert accumulator.facts().value_type == "other"
    assert streamed.steps_ == in_memory.steps_
    assert streamed.steps_.unlog == ("log2(x+0.001)" if unlog is None else "no")
    assert streamed.genes_ == in_memory.genes_
    for key, values in in_memory.stats_.items():
        np.testing.assert_allclose(streamed.stats_[key], values, rtol=1e-6, atol=1e-9)


def test_a_store_without_x_reads_its_counts_layer_on_disk_as_in_memory(tmp_path):
    # X = None with the counts in layers (written to save space): both readers use them
    import geneae.io as gio

    counts = datasets.synthetic_counts(n_cells=50, n_genes=30, seed=1)
    matrix = sp.csr_matrix(counts.X, dtype=np.float32)
    bare = ad.AnnData(obs=counts.obs, var=counts.var, layers={"counts": matrix})
    bare.write_h5ad(tmp_path / "no_x.h5ad")
    in_memory = gio.read(tmp_path / "no_x.h5ad")
    np.testing.assert_array_equal(in_memory.X.toarray(), matrix.toarray())
    with open_backed(tmp_path / "no_x.h5ad") as data:
        np.testing.assert_array_equal(data.x.rows(0, 50).toarray(), matrix.toarray())
    # another layer alone is not taken for the expression: both refuse, naming the layers
    other = ad.AnnData(obs=counts.obs, var=counts.var, layers={"spliced": matrix})
    other.write_h5ad(tmp_path / "spliced.h5ad")
    for read in (gio.read, open_backed):
        with pytest.raises(InputError, match=r"no X matrix \(layers: spliced\).*data\.layer"):
            read(tmp_path / "spliced.h5ad")


@pytest.mark.parametrize("store", ["counts.h5ad", "counts.zarr"])
@pytest.mark.parametrize("steps", STEPS)
def test_streaming_fit_equals_the_fit_in_memory(counts_file, store, steps):
    adata, folder = counts_file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        in_memory = Preprocessor(**steps)
        cells = in_memory.fit_transform(adata).obs_names
        data = open_backed(folder / store)
        accumulator = FactsAccumulator(data.n_vars, has_counts_layer=True)
        for _, chunk in data.chunks(250):
            accumulator.add(chunk.X, chunk.layers["counts"])
        facts = accumulator.facts()
        streamed = Preprocessor(**steps)
        kept = fit_streaming(
            streamed, lambda: data.chunks(250), facts, data.obs.index, data.var.index
        )
    assert facts == describe(adata)
    assert streamed.steps_ == in_memory.steps_
    assert streamed.genes_ == in_memory.genes_  # the same genes, in the same order
    assert list(data.obs.index[kept]) == list(cells)
    assert streamed.stats_.keys() == in_memory.stats_.keys()
    for key, values in in_memory.stats_.items():
        np.testing.assert_allclose(streamed.stats_[key], values, rtol=1e-9, atol=1e-12)


def test_streaming_seurat_v3_widens_a_singular_loess_as_the_fit_in_memory(tmp_path):
    pytest.importorskip("skmisc")
    # 300 common genes and 150 seen once each: the loess is singular at span 0.3, not 0.4
    rng = np.random.default_rng(0)
    common = rng.poisson(rng.lognormal(0, 1, 300), size=(200, 300))
    rare = np.zeros((200, 150))
    rare[rng.integers(0, 200, 150), np.arange(150)] = 1
    x = np.hstack([common, rare]).astype(np.float32)
    x[x.sum(axis=1) == 0, 0] = 1.0
    adata = ad.AnnData(X=sp.csr_matrix(x[:, x.sum(axis=0) > 0]))
    adata.write_h5ad(tmp_path / "rare.h5ad")
    steps = {"preset": "counts", "n_top_genes": 100}
    with pytest.warns(DataWarning, match="fitted at span 0.4"):
        in_memory = Preprocessor(**steps).fit(adata)
    data = open_backed(tmp_path / "rare.h5ad")
    accumulator = FactsAccumulator(data.n_vars, has_counts_layer=False)
    for _, chunk in data.chunks(64):
        accumulator.add(chunk.X, None)
    streamed = Preprocessor(**steps)
    with pytest.warns(DataWarning, match="fitted at span 0.4"):
        fit_streaming(
            streamed, lambda: data.chunks(64), accumulator.facts(), data.obs.index, data.var.index
        )
    assert streamed.genes_ == in_memory.genes_


def test_mad_gene_selection_does_not_stream(counts_file):
    adata, folder = counts_file
    data = open_backed(folder / "counts.h5ad")
    pre = Preprocessor(preset="minmax", n_top_genes=50, hvg_flavor="mad")
    with pytest.raises(ConfigError, match="mad.*does not work on data read in chunks"):
        fit_streaming(
            pre, lambda: data.chunks(500), describe(adata), data.obs.index, data.var.index
        )


# -- the route ------------------------------------------------------------------------------
def test_the_route_follows_the_matrix_size_on_disk(counts_file):
    _, folder = counts_file
    nbytes = matrix_nbytes(folder / "counts.h5ad")
    assert 0 < nbytes < 10 * 2**20
    budget = RunConfig().train
    assert not use_out_of_core(budget, nbytes)
    assert use_out_of_core(budget.model_copy(update={"memory_budget_gb": nbytes / 2**31}), nbytes)
    assert use_out_of_core(budget.model_copy(update={"out_of_core": "always"}), 1)
    assert not use_out_of_core(
        budget.model_copy(update={"out_of_core": "never", "memory_budget_gb": 1e-6}), nbytes
    )


def test_the_route_counts_the_dense_input_the_in_memory_route_would_hold(tmp_path):
    rng = np.random.default_rng(0)
    n_cells, n_genes = 5000, 400
    cols = rng.integers(0, n_genes, size=(n_cells, 10))
    x = sp.csr_matrix(
        (
            rng.integers(1, 9, size=cols.size).astype(np.float32),
            (np.repeat(np.arange(n_cells), 10), cols.ravel()),
        ),
        shape=(n_cells, n_genes),
    )
    path = tmp_path / "sparse.h5ad"
    ad.AnnData(X=x).write_h5ad(path)
    stored = matrix_nbytes(path)
    config = RunConfig()
    with contextlib.closing(open_backed(path)) as data:
        # raw counts, auto: the counts preset's 2,000 highly variable genes (here all 400)
        assert model_genes_at_most(data, config) == n_genes
        assert model_genes_at_most(data, config.updated({"preprocess.n_top_genes": 50})) == 50
        dense = n_cells * n_genes * 4
        assert in_memory_nbytes(data, n_genes) == dense + stored
    # The stored CSR fits this budget; the dense input the in-memory route holds does not.
    assert stored < dense / 4
    between = config.updated({"train.memory_budget_gb": (stored + dense / 2) / 2**30})
    opened = open_for_training(path, between)
    assert opened is not None
    opened.close()
    roomy = config.updated({"train.memory_budget_gb": 2 * (stored + dense) / 2**30})
    assert open_for_training(path, roomy) is None
    # Beyond 2,000 genes: raw counts, log-normalised and centred values keep 2,000 highly
    # variable genes under auto, z-scores (and the standardize preset) every gene.
    wide = sp.random(60, 2500, density=0.05, format="csr", random_state=1, dtype=np.float32)
    wide.data = np.ceil(wide.data * 9)
    ad.AnnData(X=wide).write_h5ad(tmp_path / "wide_counts.h5ad")
    wide.data = np.log1p(wide.data) * 0.7
    ad.AnnData(X=wide).write_h5ad(tmp_path / "wide_values.h5ad")
    centred = wide.toarray() - wide.toarray().mean(axis=0)
    ad.AnnData(X=centred).write_h5ad(tmp_path / "wide_centred.h5ad")
    scaled = StandardScaler().fit_transform(centred).astype(np.float32)
    ad.AnnData(X=scaled).write_h5ad(tmp_path / "wide_scaled.h5ad")
    with contextlib.closing(open_backed(tmp_path / "wide_counts.h5ad")) as data:
        assert model_genes_at_most(data, config) == 2000
    with contextlib.closing(open_backed(tmp_path / "wide_values.h5ad")) as data:
        assert model_genes_at_most(data, config) == 2000
        assert model_genes_at_most(data, config.updated({"preprocess.preset": "lognorm"})) == 2000
        standardize = config.updated({"preprocess.preset": "standardize"})
        assert model_genes_at_most(data, standardize) == 2500
    with contextlib.closing(open_backed(tmp_path / "wide_centred.h5ad")) as data:
        # centred values hold no zeros (not single cells'): the wide members' genes too
        assert model_genes_at_most(data, config) == 2500
        assert model_genes_at_most(data, config.updated({"model.wide_members": 0})) == 2000
    with contextlib.closing(open_backed(tmp_path / "wide_scaled.h5ad")) as data:
        assert model_genes_at_most(data, config) == 2500
    # Bulk samples (few zeros): the wide members' 5,000 genes too, unless they are off.
    tpm = np.exp(np.random.default_rng(2).normal(2.0, 2.0, (40, 6000))).astype(np.float32)
    ad.AnnData(X=tpm).write_h5ad(tmp_path / "bulk_tpm.h5ad")
    with contextlib.closing(open_backed(tmp_path / "bulk_tpm.h5ad")) as data:
        assert model_genes_at_most(data, config) == 5000
        assert model_genes_at_most(data, config.updated({"model.wide_members": 0})) == 2000
        given = config.updated({"preprocess.n_top_genes": 100, "preprocess.n_wide_genes": 3000})
        assert model_genes_at_most(data, given) == 3000


def _ari(labels, latent, k):
    return adjusted_rand_score(labels, KMeans(k, n_init=10, random_state=0).fit_predict(latent))


@pytest.mark.slow
def test_training_from_disk_reaches_the_quality_of_training_in_memory(tmp_path):
    adata = datasets.synthetic_counts(n_cells=1500, n_genes=300, n_clusters=4, seed=7)
    adata.write_h5ad(tmp_path / "cells.h5ad")
    settings = {
        "train.max_epochs": 12,
        "model.members": 1,
        "train.quiet": True,
        "train.cluster_epochs": 0,
        "train.chunk_rows": 100,
        "train.buffer_chunks": 4,
    }
    # A budget far below the file's matrix: `fit(path)` takes the out-of-core route itself.
    on_disk = GeneAE(RunConfig().updated({**settings, "train.memory_budget_gb": 1e-4}))
    on_disk.fit(tmp_path / "cells.h5ad")
    assert on_disk.metrics["data"]["out_of_core"]["chunk_rows"] == 100
    assert on_disk.metrics["model"]["data_resident_on_device"] is False
    in_memory = GeneAE(RunConfig().updated(settings)).fit(adata)
    assert "out_of_core" not in in_memory.metrics["data"]
    labels = adata.obs["label"]
    streamed = on_disk.encode(ad.read_h5ad(tmp_path / "cells.h5ad", backed="r"))
    ari_disk, ari_memory = _ari(labels, streamed, 4), _ari(labels, in_memory.encode(adata), 4)
    assert ari_disk > 0.8 and ari_disk > ari_memory - 0.1, (ari_disk, ari_memory)
    # Encoding chunk by chunk equals encoding in memory with the same model.
    np.testing.assert_allclose(streamed, on_disk.encode(adata), rtol=1e-4, atol=1e-5)


#: A small, quick model trained in chunks of 200 rows (tests of the reading routes), on one
#: thread: left to choose, two fits may pick another count from the machine's load, and their
#: numbers then differ in the last bits and, after two epochs, in the third decimal.
CHUNKED_FAST = {
    "train.quiet": True,
    "train.num_threads": 1,
    "train.cluster_epochs": 0,
    "model.members": 1,
    "train.chunk_rows": 200,
    "model.hidden": [16],
}


def test_zarr_trains_and_encodes_like_h5ad(counts_file):
    adata, folder = counts_file
    settings = {**CHUNKED_FAST, "train.max_epochs": 2, "train.out_of_core": "always"}
    latents = []
    for store in ("counts.h5ad", "counts.zarr"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            model = GeneAE(RunConfig().updated(settings)).fit(folder / store)
        prepared = model.preprocess(open_backed(folder / store))
        assert isinstance(prepared, OnDisk)
        latents.append(model.predict(prepared, reconstruction_rows=np.zeros(0, int)).latent)
    assert latents[0].shape == (adata.n_obs, 10)
    np.testing.assert_allclose(latents[0], latents[1], rtol=1e-5, atol=1e-6)


def _damage(path):
    import h5py

    with h5py.File(path, "r+") as f:
        indptr = f["X/indptr"][:]
        indptr[7] = indptr[-1] + 5
        del f["X/indptr"]
        f["X/indptr"] = indptr


@pytest.mark.parametrize("damage", ["indptr", "truncated", "csc"])
def test_a_damaged_store_is_refused_in_one_line(counts_file, tmp_path, damage):

    adata, folder = counts_file
    path = tmp_path / "bad.h5ad"
    if damage == "csc":
        ad.AnnData(X=adata.X.tocsc(), obs=adata.obs, var=adata.var).write_h5ad(path)
    else:
        path.write_bytes((folder / "counts.h5ad").read_bytes())
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
        else:
            _damage(path)
    with pytest.raises(InputError, match=str(path)):
        open_backed(path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", str(path), "--out", str(tmp_path / "run"), "--out-of-core", "always"])
    assert code == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geneae: error:") and "bad.h5ad" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def raw_counts_file(tmp_path_factory):
    """scanpy's habit: X log-normalised on a subset of genes, the counts of all in .raw."""
    full = datasets.synthetic_counts(n_cells=600, n_genes=300, n_clusters=3, seed=5)
    full.X = sp.csr_matrix(full.X)
    genes = full.var_names[::-3][:200]  # a subset of the genes, in another order
    logged = full[:, genes].copy()
    counts = logged.X.toarray()
    totals = np.maximum(counts.sum(1, keepdims=True), 1.0)
    logged.X = sp.csr_matrix(np.log1p(counts / totals * 1e4))  # not logs of whole numbers
    del logged.layers["counts"]
    logged.raw = ad.AnnData(full.X, var=full.var[[]])
    folder = tmp_path_factory.mktemp("raw")
    logged.write_h5ad(folder / "with_raw.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        logged.write_zarr(folder / "with_raw.zarr")
    return full[:, genes].X.toarray(), folder


@pytest.mark.parametrize("store", ["with_raw.h5ad", "with_raw.zarr"])
def test_counts_in_raw_are_read_from_disk_for_the_genes_of_x(raw_counts_file, store, caplog):
    expected, folder = raw_counts_file
    with caplog.at_level("INFO", logger="geneae.io.backed"), open_backed(folder / store) as data:
        assert data.counts is not None
        np.testing.assert_array_equal(data.counts.rows(0, 600).toarray(), expected)
        chunk = data.rows(100, 250)
        np.testing.assert_array_equal(chunk.layers["counts"].toarray(), expected[100:250])
    assert "raw counts found in .raw.X" in caplog.text


def test_the_counts_in_raw_give_the_same_model_on_disk_as_in_memory(raw_counts_file):
    # Before, a file large enough to stay on disk trained on X's logged values (Gaussian)
    # while the same file read in memory trained the count model on .raw's counts.
    _, folder = raw_counts_file
    chosen = {}
    for route in ("never", "always"):
        cfg = RunConfig().updated(
            {**CHUNKED_FAST, "train.max_epochs": 1, "train.out_of_core": route}
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            model = GeneAE(cfg).fit(folder / "with_raw.h5ad")
        chosen[route] = (model.config.model.likelihood, model.config.preprocess.preset)
    assert chosen["always"] == chosen["never"] == ("nb", "counts")


def test_raw_without_counts_or_without_the_genes_of_x_is_not_taken(raw_counts_file, tmp_path):
    expected, folder = raw_counts_file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        logged = ad.read_h5ad(folder / "with_raw.h5ad")
    cases = {
        "log_raw.h5ad": ad.AnnData(
            sp.csr_matrix(np.log1p(logged.raw.X.toarray())), var=logged.raw.var
        ),
        "few_genes.h5ad": logged.raw.to_adata()[:, :50].copy(),
    }
    for name, raw in cases.items():
        copy = logged.copy()
        copy.raw = raw
        copy.write_h5ad(tmp_path / name)
        with open_backed(tmp_path / name) as data:
            assert data.counts is None, name
    counts_in_x = logged.copy()
    counts_in_x.X = sp.csr_matrix(expected)
    counts_in_x.write_h5ad(tmp_path / "counts_in_x.h5ad")
    with open_backed(tmp_path / "counts_in_x.h5ad") as data:
        assert data.counts is None  # X's own counts are the counts


def scanpy_processed(path):
    """scanpy's workflow written to ``path``: (the log values, the data written).

    Log values of 80 genes in .raw, 40 of them z-scored in X (as after HVG selection).
    """
    import scanpy as sc

    full = datasets.synthetic_counts(n_cells=300, n_genes=80, n_clusters=3, seed=2)
    del full.layers["counts"]
    sc.pp.normalize_total(full, target_sum=1e4)
    sc.pp.log1p(full)
    full.raw = full
    scaled = full[:, ::2].copy()
    scaled.X = scaled.X.toarray() if sp.issparse(scaled.X) else scaled.X  # as scale makes it
    sc.pp.scale(scaled, max_value=10)
    scaled.write_h5ad(path)
    return full, scaled


def test_z_scored_x_is_read_from_disk_as_the_log_values_raw_holds(tmp_path, caplog):
    import geneae.io as gio

    full, scaled = scanpy_processed(tmp_path / "processed.h5ad")
    in_memory = gio.read(tmp_path / "processed.h5ad")
    with caplog.at_level("INFO", logger="geneae.io.raw"):  # where .raw's rules speak
        with open_backed(tmp_path / "processed.h5ad") as data:
            on_disk = data.x.rows(0, 300)
    assert "holds z-scores and .raw.X the log-normalised values" in caplog.text
    expected = full[:, ::2].X
    expected = expected.toarray() if sp.issparse(expected) else np.asarray(expected)
    for x in (in_memory.X, on_disk):
        np.testing.assert_allclose(x.toarray() if sp.issparse(x) else x, expected, rtol=1e-6)
    with open_backed(tmp_path / "processed.h5ad", use_raw=False) as data:
        kept = data.x.rows(0, 300)
    np.testing.assert_allclose(kept, scaled.X, rtol=1e-6)


def test_an_anndata_given_in_python_takes_raw_as_its_file_does(raw_counts_file, tmp_path):
    # An AnnData handed over in Python trained on what X held (log values, or z-scores)
    # while the same data as a file trained on .raw's counts or log values.
    _, folder = raw_counts_file
    cfg = RunConfig().updated({**CHUNKED_FAST, "train.max_epochs": 1})
    given = ad.read_h5ad(folder / "with_raw.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        model = GeneAE(cfg).fit(given)
    assert (model.config.model.likelihood, model.config.preprocess.preset) == ("nb", "counts")
    assert "counts" not in given.layers  # the user's object is left as it was

    _, scaled = scanpy_processed(tmp_path / "processed.h5ad")
    from_file = GeneAE(cfg).fit(tmp_path / "processed.h5ad")
    from_object = GeneAE(cfg).fit(scaled)
    np.testing.assert_array_equal(from_object.encode(scaled), from_file.encode(scaled))
    kept = GeneAE(cfg.updated({"data.use_raw": False})).fit(scaled)  # X as it is
    assert kept.preprocessor.value_type_ == "standardised"
    assert from_object.preprocessor.value_type_ == "log-normalised"
    assert scaled.X.min() < 0  # untouched


def test_a_zarr_store_is_read_into_memory_like_its_h5ad(counts_file):
    # Was: "holds no matrix.mtx" (a folder taken for a 10x directory) unless out of core.
    import geneae.io as gio

    _, folder = counts_file
    from_zarr, from_h5ad = gio.read(folder / "counts.zarr"), gio.read(folder / "counts.h5ad")
    assert from_zarr.shape == from_h5ad.shape
    np.testing.assert_array_equal(from_zarr.X.toarray(), from_h5ad.X.toarray())
    assert list(from_zarr.obs_names) == list(from_h5ad.obs_names)


def test_evaluate_of_a_run_trained_out_of_core(counts_file, tmp_path):
    # Was: exit 1, "'BackedData' object has no attribute 'X'".
    _, folder = counts_file
    settings = {**CHUNKED_FAST, "train.max_epochs": 1, "evaluate.report": False}
    config = tmp_path / "c.yaml"
    sections: dict = {}
    for key, value in settings.items():
        section, name = key.split(".")
        sections.setdefault(section, {})[name] = value
    config.write_text(yaml.safe_dump(sections))
    run = tmp_path / "run"
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        args = ["--config", str(config), "--out-of-core", "always"]
        assert main(["train", str(folder / "counts.h5ad"), "--out", str(run), *args]) == 0
        target = tmp_path / "eval.json"
        assert main(["evaluate", str(run), str(folder / "counts.zarr"), "--out", str(target)]) == 0
    metrics = json.loads(target.read_text())
    assert {"geneae", "pca"} <= set(metrics["comparison"])
