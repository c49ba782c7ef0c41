"""``geneae reconstruct`` / ``GeneAE.reconstruct_to`` of data read out of core: streamed."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from geneae import datasets
from geneae.cli import main
from geneae.config import RunConfig
from geneae.errors import ConfigError, DataWarning
from geneae.model import GeneAE
from geneae.ondisk import OnDisk

N_CELLS, CHUNK_ROWS = 500, 128
SETTINGS = {
    "train.max_epochs": 1,
    "model.members": 1,
    "train.quiet": True,
    "train.cluster_epochs": 0,
    "train.out_of_core": "always",  # every .h5ad path is read out of core
    "train.chunk_rows": CHUNK_ROWS,
    "model.hidden": [16],
}


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    """(path of a small counts .h5ad, the data in memory)."""
    adata = datasets.synthetic_counts(n_cells=N_CELLS, n_genes=120, n_clusters=3, seed=3)
    adata.X = sp.csr_matrix(adata.X)
    path = tmp_path_factory.mktemp("recon") / "counts.h5ad"
    adata.write_h5ad(path)
    return path, ad.read_h5ad(path)


@pytest.fixture(scope="module")
def models(counts):
    """A count model (nb) and a Gaussian one (mse: values undo the normalisation)."""
    _, adata = counts
    return {
        likelihood: GeneAE(RunConfig().updated({**SETTINGS, "model.likelihood": likelihood})).fit(
            adata
        )
        for likelihood in ("nb", "mse")
    }


def _read(path):
    return np.load(path) if path.suffix == ".npy" else ad.read_h5ad(path).X


@pytest.mark.parametrize("suffix", [".h5ad", ".npy"])
@pytest.mark.parametrize("space", ["target", "input", "values"])
@pytest.mark.parametrize("likelihood", ["nb", "mse"])
def test_streamed_reconstruction_equals_the_one_in_memory(
    counts, models, tmp_path, monkeypatch, likelihood, space, suffix
):
    path, adata = counts
    model = models[likelihood]
    chunks = []
    each_read_chunk = OnDisk.each_read_chunk

    def counted(self, *args):
        for index, chunk in each_read_chunk(self, *args):
            chunks.append(len(index))
            yield index, chunk

    monkeypatch.setattr(OnDisk, "each_read_chunk", counted)
    target = tmp_path / f"denoised{suffix}"
    assert model.reconstruct_to(path, target, space=space) == (N_CELLS, len(model.genes))
    assert chunks == [CHUNK_ROWS] * 3 + [N_CELLS - 3 * CHUNK_ROWS]  # streamed, chunk by chunk
    expected = model.reconstruct(adata, space=space)
    values = _read(target)
    assert values.dtype == np.float32 and values.shape == expected.shape
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-6)
    if suffix == ".h5ad":  # the file the in-memory writer gives, to the names and units
        streamed = ad.read_h5ad(target)
        model.reconstruct_to(adata, tmp_path / "in_memory.h5ad", space=space)
        written = ad.read_h5ad(tmp_path / "in_memory.h5ad")
        assert list(streamed.obs_names) == list(adata.obs_names) == list(written.obs_names)
        assert list(streamed.var_names) == model.genes == list(written.var_names)
        assert streamed.uns["geneae"]["values"] == model.reconstruction_units(space)
        assert streamed.uns["geneae"] == written.uns["geneae"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_streams_h5ad_and_refuses_a_table_in_one_line(counts, models, tmp_path, capsys):
    path, adata = counts
    run = models["mse"].save(tmp_path / "run")
    target = tmp_path / "denoised.h5ad"
    assert main(["reconstruct", str(run), str(path), "--out", str(target)]) == 0
    assert f"{N_CELLS} x {len(models['mse'].genes)} denoised values" in capsys.readouterr().out
    np.testing.assert_allclose(
        _read(target), models["mse"].reconstruct(adata, space="values"), rtol=1e-6, atol=1e-6
    )
    for table in ("denoised.csv", "denoised.tsv.gz"):
        assert main(["reconstruct", str(run), str(path), "--out", str(tmp_path / table)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("geneae: error:"), err
        assert table in err and ".h5ad or .npy" in err
        assert not (tmp_path / table).exists()


@pytest.mark.parametrize("suffix", [".h5ad", ".npy"])
def test_a_failure_midway_leaves_no_file(counts, models, tmp_path, monkeypatch, suffix):
    import geneae.reconstruction_file as reconstruction_file

    path, _ = counts
    calls = []
    forward_pass = reconstruction_file.forward_pass

    def fails_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk gone")
        return forward_pass(*args, **kwargs)

    monkeypatch.setattr(reconstruction_file, "forward_pass", fails_on_the_second_chunk)
    target = tmp_path / f"denoised{suffix}"
    with pytest.raises(RuntimeError, match="disk gone"):
        models["nb"].reconstruct_to(path, target)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    target.write_bytes(b"precious")  # an existing file is replaced only by a complete one
    calls.clear()
    with pytest.raises(RuntimeError, match="disk gone"):
        models["nb"].reconstruct_to(path, target)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert target.read_bytes() == b"precious"


def test_genes_as_samples_is_still_refused_out_of_core(counts):
    path, adata = counts
    model = GeneAE(RunConfig().updated({**SETTINGS, "data.genes_as_samples": True}))
    with warnings.catch_warnings():  # genes seen in few samples are dropped
        warnings.simplefilter("ignore", DataWarning)
        model.fit(adata)
    with pytest.raises(ConfigError, match="genes as samples"):
        model.reconstruct_to(path, path.with_name("genes.h5ad"))
