"""GeneAE facade and training engine: save / load, resume, seeding, gene alignment, DDP."""

import json
import subprocess
import sys
import textwrap

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from geneae import GeneAE, RunConfig, datasets, tl
from geneae.errors import ConfigError, GeneaeError, InputError, ModelFileError, NotFittedError
from geneae.model import MODEL_FILES


def tiny_counts(n_cells=300, n_genes=60, seed=0):
    return datasets.synthetic_counts(n_cells=n_cells, n_genes=n_genes, n_clusters=3, seed=seed)


def quick_config(**overrides):
    base = {
        "train.max_epochs": 3,
        "train.quiet": True,
        "train.batch_size": 64,
        "model.hidden": [32],
        "model.latent_dim": 4,
        "model.members": 1,
        "train.cluster_epochs": 2,  # its default grows as data shrink: 267 on 300 cells
        "preprocess.n_top_genes": 0,
        # Numbers repeat bit for bit only at one thread count; the idle cores (the default
        # count) change with what else runs beside the tests.
        "train.num_threads": 1,
    }
    base.update(overrides)
    return RunConfig().updated(base)


@pytest.fixture(scope="module")
def fitted():
    adata = tiny_counts()
    return adata, GeneAE(quick_config()).fit(adata)


def test_fit_resolves_defaults_from_the_data(fitted):
    adata, model = fitted
    assert model.config.model.likelihood == "nb"
    assert model.config.preprocess.preset == "counts"
    assert model.metrics["model"]["epochs_trained"] == 3
    assert list(model.history["epoch"]) == [0, 1, 2]
    for column in ("train_loss", "val_loss", "train_kl", "val_elbo", "kl_weight", "lr"):
        assert column in model.history, column
    assert np.isfinite(model.history["val_loss"]).all()
    # Training's seconds are its epochs' and the clustering phase's (timed apart).
    timings, phase = model.metrics["timings"], model.metrics["model"]["cluster_phase"]
    assert phase["epochs"] > 0 and phase["seconds"] > 0
    assert timings["train_s"] == pytest.approx(3 * timings["seconds_per_epoch"] + phase["seconds"])


def test_continuous_data_get_squared_error_beside_the_standardised_term():
    adata = datasets.bulk_conditions(n_samples=120, n_genes=80, n_informative=20)
    model = GeneAE(quick_config(**{"train.cluster_epochs": None})).fit(adata)
    assert model.config.model.likelihood == "mse"
    assert model.config.model.standardized_weight > 0
    assert model.config.preprocess.preset == "standardize" and not model.config.preprocess.scale
    # The term's scale is twice the input's mean gene variance, set before training.
    prepared = model.preprocess(adata)
    x = np.asarray(prepared.data.X, dtype=np.float64)
    assert model.metrics["model"]["standardized_scale"] == pytest.approx(2 * x.var(0).mean())
    assert float(model.module.decoder.standardized.scale) == pytest.approx(2 * x.var(0).mean())
    # 120 samples: the phase's 80,000 samples seen would take 667 epochs, capped at 300,
    # and a run asked for 3 epochs keeps its phase as short as its training.
    assert model.metrics["model"]["cluster_phase"]["epochs"] == 3
    assert model.encode(adata).shape == (120, 4)


def test_save_load_transform_is_identical(fitted, tmp_path):
    adata, model = fitted
    model.save(tmp_path / "m")
    saved = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert saved == sorted([*MODEL_FILES, "checksums.sha256"])
    loaded = GeneAE.load(tmp_path / "m")
    np.testing.assert_array_equal(model.encode(adata), loaded.encode(adata))
    np.testing.assert_array_equal(model.reconstruct(adata), loaded.reconstruct(adata))
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["model"]["latent_dim"] == 4


def test_saved_model_has_no_pickle(fitted, tmp_path):
    _, model = fitted
    model.save(tmp_path / "m")
    for path in (tmp_path / "m").iterdir():
        head = path.read_bytes()[:2]
        assert head not in (b"\x80\x02", b"\x80\x04", b"\x80\x05"), (
            f"{path.name} looks like a pickle"
        )
        assert not path.name.endswith((".pt", ".pkl", ".ckpt"))


def test_save_refuses_to_overwrite(fitted, tmp_path):
    _, model = fitted
    model.save(tmp_path / "m")
    with pytest.raises(ModelFileError, match="overwrite"):
        model.save(tmp_path / "m")
    model.save(tmp_path / "m", overwrite=True)


def test_load_errors_are_clear(fitted, tmp_path):
    _, model = fitted
    with pytest.raises(ModelFileError, match="no such model directory"):
        GeneAE.load(tmp_path / "nothing")
    model.save(tmp_path / "m")
    (tmp_path / "m" / "genes.txt").unlink()
    with pytest.raises(ModelFileError, match="missing genes.txt.*restore"):
        GeneAE.load(tmp_path / "m")
    (tmp_path / "data").mkdir()  # a folder of data, not a model: no talk of resuming
    (tmp_path / "data" / "counts.h5ad").write_bytes(b"")
    with pytest.raises(ModelFileError, match="not a geneae model") as refused:
        GeneAE.load(tmp_path / "data")
    assert "resume" not in str(refused.value)
    (tmp_path / "cut.partial").mkdir()  # an interrupted run: only its staging folder
    with pytest.raises(ModelFileError, match=r"interrupted \(cut.partial .*--resume"):
        GeneAE.load(tmp_path / "cut")
    model.save(tmp_path / "w", overwrite=True)
    (tmp_path / "w" / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFileError, match="weights"):
        GeneAE.load(tmp_path / "w")


def test_gene_permuted_copy_gives_the_same_latent(fitted):
    adata, model = fitted
    order = np.random.default_rng(1).permutation(adata.n_vars)
    permuted = adata[:, order].copy()
    np.testing.assert_allclose(model.encode(adata), model.encode(permuted), rtol=1e-5, atol=1e-6)


def test_missing_genes_raise_a_clear_error(fitted):
    adata, model = fitted
    with pytest.raises(InputError, match="missing"):
        model.encode(adata[:, 5:].copy())


def test_same_seed_gives_identical_results():
    adata = tiny_counts()
    a = GeneAE(quick_config()).fit(adata).encode(adata)
    b = GeneAE(quick_config()).fit(adata).encode(adata)
    np.testing.assert_array_equal(a, b)
    c = GeneAE(quick_config(**{"train.seed": 1})).fit(adata).encode(adata)
    assert not np.allclose(a, c)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("interval", [0.0, 3600.0])
def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path, monkeypatch, interval):
    # interval 0: the resume point of epoch 2 is on disk; 3600: only epoch 0's, so the
    # resumed run replays epochs 1-4 and must still end where the uninterrupted one did.
    import lightning.pytorch as pl

    adata = tiny_counts()
    cfg = quick_config(
        **{
            "train.max_epochs": 5,
            "train.early_stopping": False,
            "train.checkpoint_interval_s": interval,
        }
    )
    GeneAE(cfg).fit(adata, run_dir=tmp_path / "full")
    full_last = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)

    original = pl.Trainer.fit
    calls = {"n": 0}

    class StopAfter(pl.Callback):
        def on_train_epoch_end(self, trainer, plan):
            if trainer.current_epoch == 2:
                raise Interrupt("simulated crash")

    def fit_with_crash(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            self.callbacks.append(StopAfter())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pl.Trainer, "fit", fit_with_crash)
    with pytest.raises(Interrupt):
        GeneAE(cfg).fit(adata, run_dir=tmp_path / "cut")
    saved = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] == (2 if interval == 0 else 0)  # the last epoch saved
    resumed = GeneAE(cfg).fit(adata, run_dir=tmp_path / "cut", resume=True)
    cut_last = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=True)
    assert cut_last["epoch"] == full_last["epoch"]
    for key, value in full_last["state_dict"].items():
        torch.testing.assert_close(cut_last["state_dict"][key], value, rtol=1e-5, atol=1e-6)
    assert list(resumed.history["epoch"]) == [0, 1, 2, 3, 4]
    # The time per epoch is this call's: the epochs it replayed, its clustering phase apart.
    replayed = 2 if interval == 0 else 4
    timings, phase = resumed.metrics["timings"], resumed.metrics["model"]["cluster_phase"]
    assert timings["train_s"] - phase["seconds"] == pytest.approx(
        replayed * timings["seconds_per_epoch"]
    )


def test_ctrl_c_in_fit_is_a_keyboard_interrupt_and_ctrl_c_still_works(monkeypatch):
    # Lightning turns Ctrl-C into its shutdown and sys.exit(1), and leaves SIGINT ignored.
    import signal

    import lightning.pytorch as pl

    class CtrlC(pl.Callback):
        def on_train_epoch_end(self, trainer, plan):
            raise KeyboardInterrupt

    original = pl.Trainer.fit

    def fit_with_ctrl_c(self, *args, **kwargs):
        self.callbacks.append(CtrlC())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pl.Trainer, "fit", fit_with_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        GeneAE(quick_config()).fit(tiny_counts())
    assert signal.getsignal(signal.SIGINT) is before


def test_an_ensemble_cut_in_its_second_member_resumes_to_the_same_model(tmp_path, monkeypatch):
    import lightning.pytorch as pl

    adata = tiny_counts()
    cfg = quick_config(
        **{
            "model.members": 2,
            "train.max_epochs": 4,
            "train.early_stopping": False,
            "train.checkpoint_interval_s": 0.0,
            "train.cluster_epochs": 2,
            # The crash is injected in this process (tests/reliability/test_member_processes.py
            # kills a run whose members train side by side).
            "train.members_side_by_side": False,
        }
    )
    full = GeneAE(cfg).fit(adata, run_dir=tmp_path / "full")

    original = pl.Trainer.fit
    calls = {"n": 0}

    class StopAfter(pl.Callback):
        def on_train_epoch_end(self, trainer, plan):
            if trainer.current_epoch == 1:
                raise Interrupt("simulated crash")

    def fit_with_crash(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second member's training
            self.callbacks.append(StopAfter())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pl.Trainer, "fit", fit_with_crash)
    with pytest.raises(Interrupt):
        GeneAE(cfg).fit(adata, run_dir=tmp_path / "cut")
    points = tmp_path / "cut" / "checkpoints"
    assert (points / "member0" / "checkpoints" / "last.ckpt").is_file()
    assert (points / "member1" / "checkpoints" / "last.ckpt").is_file()
    resumed = GeneAE(cfg).fit(adata, run_dir=tmp_path / "cut", resume=True)
    np.testing.assert_allclose(resumed.encode(adata), full.encode(adata), rtol=1e-4, atol=1e-5)
    assert list(resumed.history["member"]) == [0] * 4 + [1] * 4
    assert list(resumed.history["epoch"]) == [0, 1, 2, 3] * 2


def test_history_is_written_each_epoch(tmp_path):
    adata = tiny_counts()
    GeneAE(quick_config()).fit(adata, run_dir=tmp_path)
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == [0, 1, 2]
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"last.ckpt"}


def test_tl_encode_writes_scanpy_style_results(fitted):
    adata, model = fitted
    out = tl.encode(adata, model, copy=True)
    assert out is not adata
    np.testing.assert_array_equal(out.obsm["X_geneae"], model.encode(adata))
    denoised = out.layers["geneae_denoised"]
    assert denoised.shape == adata.shape
    used = adata.var_names.isin(model.genes)
    np.testing.assert_allclose(denoised[:, used], model.reconstruct(adata[:, used]), rtol=1e-6)
    assert np.isnan(denoised[:, ~used]).all()
    assert out.uns["geneae"]["key_added"] == "X_geneae"
    assert "X_geneae" not in adata.obsm


def test_reconstruct_is_in_count_space_for_count_models(fitted):
    adata, model = fitted
    recon = model.reconstruct(adata)
    assert recon.shape == (adata.n_obs, len(model.genes)) and (recon >= 0).all()
    counts = adata[:, model.genes].layers["counts"]
    np.testing.assert_allclose(recon.sum(1), np.asarray(counts.sum(1)).ravel(), rtol=1e-3)
    assert np.isfinite(model.reconstruct(adata, space="input")).all()


def test_count_likelihood_refuses_non_count_data():
    adata = datasets.bulk_conditions(n_samples=60, n_genes=40, n_informative=10)
    with pytest.raises(InputError, match="raw counts"):
        GeneAE(quick_config(**{"model.likelihood": "nb"})).fit(adata)


def test_gmvae_cluster_probabilities(fitted):
    adata, _ = fitted
    model = GeneAE(quick_config(**{"model.family": "gmvae", "model.n_components": 3})).fit(adata)
    probs = model.cluster_probabilities(adata)
    assert probs.shape == (adata.n_obs, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_a_loadable_ensemble(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from geneae import GeneAE, RunConfig, datasets
            adata = datasets.synthetic_counts(n_cells=256, n_genes=40, n_clusters=3, seed=0)
            cfg = RunConfig().updated({{
                "train.max_epochs": 2, "train.quiet": True, "train.batch_size": 32,
                "train.accelerator": "cpu", "train.devices": 2, "train.strategy": "ddp",
                "model.hidden": [16], "model.latent_dim": 3, "preprocess.n_top_genes": 0,
                "model.members": 2,
            }})
            model = GeneAE(cfg).fit(adata)
            model.save({str(tmp_path / "model")!r}, overwrite=True)
            """
        )
    )
    # gloo's TCP rendezvous on a loaded machine occasionally drops a connection at start-up;
    # one retry separates that from a real failure (which fails both times).
    for _attempt in range(2):
        proc = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
        )
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = GeneAE.load(tmp_path / "model")
    adata = datasets.synthetic_counts(n_cells=256, n_genes=40, n_clusters=3, seed=0)
    latent = model.encode(adata)
    # Two members, each trained by both processes, calibrated and saved by rank 0; the PCA
    # block (fewer than 1,000 cells) beside them.
    assert latent.shape == (256, 9) and np.isfinite(latent).all()
    assert model.metrics["model"]["epochs_trained"] == [2, 2]
    assert list(model.history["member"]) == [0, 0, 1, 1]


def assert_loadings_are_the_mean_signed_jacobian(model, adata):
    """gene_loadings against reverse mode through the whole module's decode, per cell."""
    latent = model.encode(adata)
    loadings = model.gene_loadings(latent, max_cells=20, seed=3)
    rows = np.sort(np.random.default_rng(3).choice(len(latent), 20, replace=False))
    z = torch.as_tensor(latent[rows])

    def decode(zi):
        mean = model.module.generative(zi[None], library=torch.full((1,), 1e4))["mean"][0]
        return torch.log1p(mean)

    reference = torch.func.vmap(torch.func.jacrev(decode))(z).mean(0).detach().numpy()
    assert loadings.shape == (len(model.genes), latent.shape[1])
    block = getattr(model.module, "pca_genes", 0) and model.config.model.latent_dim
    decoded = reference.shape[1] - block  # the columns a decoder moves
    if block:
        # A PCA block decodes nothing (its Jacobian is zero): its columns are its axes.
        np.testing.assert_allclose(reference[:, decoded:], 0.0, atol=1e-12)
        axes = (model.module.pca_components.T * model.module.pca_scale).numpy()
        np.testing.assert_allclose(loadings[:, decoded:], axes, rtol=1e-6)
    np.testing.assert_allclose(loadings[:, :decoded], reference[:, :decoded], rtol=1e-4, atol=1e-7)
    assert (loadings < 0).any() and (loadings > 0).any()  # signed: genes fall and rise


def test_gene_loadings_equal_the_mean_signed_jacobian(fitted):
    adata, model = fitted
    assert_loadings_are_the_mean_signed_jacobian(model, adata)


def test_an_ensembles_gene_loadings_equal_the_jacobian_of_its_mean_decode():
    # Each member is differentiated on its own block only; the reference differentiates
    # the ensemble's whole decode (the mean of the members' means) at once.
    adata = tiny_counts()
    model = GeneAE(quick_config(**{"model.members": 2, "train.cluster_epochs": 0})).fit(adata)
    assert_loadings_are_the_mean_signed_jacobian(model, adata)


def test_fit_shares_but_never_changes_the_input_arrays():
    adata = tiny_counts()
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.layers["counts"] = adata.X
    before = [a.copy() for a in (adata.X.data, adata.X.indices, adata.X.indptr)]
    GeneAE(quick_config(**{"train.max_epochs": 1})).fit(adata)
    for a, b in zip(before, (adata.X.data, adata.X.indices, adata.X.indptr), strict=True):
        np.testing.assert_array_equal(a, b)


def test_use_before_fit_raises_a_clear_error():
    adata = ad.AnnData(np.ones((4, 3), dtype=np.float32))
    with pytest.raises(NotFittedError, match=r"not fitted yet; call \.fit"):
        GeneAE().encode(adata)
    with pytest.raises(GeneaeError):
        GeneAE().reconstruct(adata)


def test_members_are_single_models_of_their_seeds_and_survive_save_and_load(tmp_path, monkeypatch):
    from unittest import mock

    import geneae.balance

    # The null deviance behind the scale is a full pass over the data: once for all members.
    spy = mock.Mock(wraps=geneae.balance.balance_scale)
    monkeypatch.setattr(geneae.balance, "balance_scale", spy)
    adata = tiny_counts()
    # Two threads for two members: side by side, one thread each (geneae.threads.member_waves).
    ensemble = {"model.members": 2, "train.cluster_epochs": 2, "train.num_threads": 2}
    model = GeneAE(quick_config(**ensemble)).fit(adata)
    assert spy.call_count == 1
    module = model.module
    assert len(module.members) == 2
    assert model.metrics["model"]["members"] == 2
    assert model.metrics["model"]["epochs_trained"] == [3, 3]
    phase = model.metrics["model"]["cluster_phase"]
    assert len(phase["clusters"]) == 2 and len(phase["initial_sizes"]) == 2
    assert phase["device"] == ["cpu", "cpu"]  # where each member's phase ran
    assert list(model.history["member"]) == [0, 0, 0, 1, 1, 1]
    # Member 0 is the single model of the run's seed (at its thread count); member 1 another.
    single_config = quick_config(**{"train.cluster_epochs": 2, "train.num_threads": 1})
    single = GeneAE(single_config).fit(adata)
    first = dict(module.members[0].state_dict())
    for name, value in single.module.state_dict().items():
        torch.testing.assert_close(first[name], value)
    pairs = zip(module.members[0].parameters(), module.members[1].parameters(), strict=True)
    assert not any(torch.equal(a, b) for a, b in pairs)
    # Each member got the data-dependent start (the standardised term's scale).
    scale = model.metrics["model"]["standardized_scale"]
    for member in module.members:
        assert float(member.decoder.standardized.scale) == pytest.approx(scale)
    latent = model.encode(adata)
    # Two members and, on fewer than 1,000 cells, the PCA block (geneae.resolve).
    assert model.config.model.pca_block and latent.shape == (adata.n_obs, 12)
    # Calibrated on the training cells: every block centred, unit mean variance.
    for block in (latent[:, :4], latent[:, 4:8], latent[:, 8:]):
        np.testing.assert_allclose(block.mean(0), 0.0, atol=1e-4)
        assert block.var(0).mean() == pytest.approx(1.0, rel=1e-3)
    assert model.gene_loadings(latent).shape == (len(model.genes), 12)
    model.save(tmp_path / "m")
    loaded = GeneAE.load(tmp_path / "m")
    np.testing.assert_array_equal(latent, loaded.encode(adata))
    np.testing.assert_array_equal(model.reconstruct(adata), loaded.reconstruct(adata))


def test_validation_loss_does_not_depend_on_the_validation_batches(monkeypatch):
    # Validation batches are larger than training batches (geneae.train.data_modules
    # .validation_batch_size); in eval mode the loss is the same however rows are batched.
    from geneae.train import data_modules

    adata = tiny_counts(n_cells=600)
    config = quick_config(**{"train.validation": 0.3})  # 180 rows: one batch, or three of 64
    one_batch = GeneAE(config).fit(adata).history
    monkeypatch.setattr(data_modules, "VALIDATION_BATCH_ENTRIES", 1)
    assert data_modules.validation_batch_size(config.train, 60) == 64
    three_batches = GeneAE(config).fit(adata).history
    np.testing.assert_array_equal(one_batch["train_loss"], three_batches["train_loss"])
    np.testing.assert_allclose(one_batch["val_loss"], three_batches["val_loss"], rtol=1e-5)


def test_a_model_of_z_scores_reads_new_data_as_z_scores(tmp_path):
    # .raw's log values are read in place of a z-scored X; a model trained on z-scores (as
    # every model saved before that was) must read new data's X as it read its own
    import scanpy as sc

    from geneae.run import load_data

    logged = tiny_counts()
    del logged.layers["counts"]
    sc.pp.normalize_total(logged, target_sum=1e4)
    sc.pp.log1p(logged)
    logged.X = logged.X.toarray() if sp.issparse(logged.X) else logged.X
    scaled = logged.copy()
    scaled.raw = logged
    sc.pp.scale(scaled, max_value=10)
    scaled.write_h5ad(tmp_path / "processed.h5ad")
    plain = ad.AnnData(scaled.X.copy(), obs=scaled.obs, var=scaled.var)  # no .raw
    model = GeneAE(quick_config()).fit(plain)
    assert model.preprocessor.value_type_ == "standardised"
    assert model.config.data.use_raw is None  # left to the data
    model.save(tmp_path / "m")
    loaded = GeneAE.load(tmp_path / "m")
    assert loaded.config.data.use_raw is False
    new = load_data(tmp_path / "processed.h5ad", loaded.config, with_labels=False)
    np.testing.assert_allclose(new.X, scaled.X, rtol=1e-6)  # X, not .raw's log values
    np.testing.assert_allclose(loaded.encode(new), model.encode(plain), rtol=1e-5, atol=1e-6)


def test_predict_refuses_reconstruction_rows_outside_the_data(fitted):
    adata, model = fitted
    for rows in ([1000, 299], [-1], [3, 1]):
        with pytest.raises(InputError, match=r"reconstruction_rows must be sorted, distinct"):
            model.predict(adata, reconstruction_rows=np.array(rows))
    out = model.predict(adata, reconstruction_rows=np.array([0, 5]))
    assert out.reconstruction.shape == (2, adata.n_vars)


def test_a_second_fit_decides_again_from_its_data_unless_the_config_was_changed():
    model = GeneAE(quick_config())  # the likelihood and preprocessing left to the data
    model.fit(tiny_counts())
    assert model.config.model.likelihood == "nb"
    values = datasets.lognorm_clusters(n_cells=200, n_genes=60, n_clusters=3, seed=1)
    values = values[:, values.X.getnnz(axis=0) > 0].copy()
    model.fit(values)  # the same settings, other data: decided again (was: nb, refused)
    assert model.config.model.likelihood == "mse"
    model.config.model.latent_dim = 3  # changed by hand: kept as it is
    model.fit(values)
    assert model.config.model.latent_dim == 3 and model.encode(values).shape[1] == 3


def test_a_config_given_as_dotted_keys():
    model = GeneAE({"model.latent_dim": 3, "train.max_epochs": 2})
    assert model.config.model.latent_dim == 3 and model.config.train.max_epochs == 2
    with pytest.raises(ConfigError, match="mapping of dotted keys"):
        GeneAE(5)


def test_tl_encode_of_a_gene_model_writes_the_genes_embedding_in_varm():
    genes = datasets.bulk_conditions(n_samples=60, n_genes=40, n_informative=10)
    model = GeneAE(quick_config(**{"data.genes_as_samples": True, "model.latent_dim": 3}))
    model.fit(genes)
    out = tl.encode(genes, model, copy=True)  # was: anndata's error about obsm's shape
    assert out.varm["X_geneae"].shape == (40, 3) and "X_geneae" not in out.obsm
    np.testing.assert_allclose(out.varm["X_geneae"], model.encode(genes))
    assert "geneae_denoised" not in out.layers


def test_tl_encode_refuses_settings_beside_a_fitted_model(fitted):
    adata, model = fitted
    with pytest.raises(ConfigError, match="not both"):
        tl.encode(adata, model, preset="scvi-like", copy=True)
    with pytest.raises(ConfigError, match="config or preset, not both"):
        tl.encode(adata, config=quick_config(), preset="scvi-like", copy=True)


def test_fit_leaves_the_callers_generators_threads_and_environment_as_they_were():
    import os
    import random

    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # the fit trains at one
    random.seed(7)
    np.random.seed(7)  # noqa: NPY002 - the legacy global generator is what fit touched
    torch.manual_seed(7)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    random.seed(7)
    np.random.seed(7)  # noqa: NPY002
    torch.manual_seed(7)
    before = os.environ.get("PL_GLOBAL_SEED")
    GeneAE(quick_config(**{"train.seed": 3})).fit(tiny_counts())  # one thread, seeded
    after = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    threads = torch.get_num_threads()
    torch.set_num_threads(previous)
    assert after == expected
    assert threads == 2
    assert os.environ.get("PL_GLOBAL_SEED") == before


def test_mistakes_in_the_python_api_are_geneae_errors(fitted, tmp_path):
    # Each of these raised a library's own exception (pathlib's TypeError, pydantic's
    # ValidationError, torch's FileNotFoundError or RuntimeError, a bare AssertionError).
    from geneae.pp import Preprocessor

    adata, model = fitted
    with pytest.raises(InputError, match="expected an AnnData or the path"):
        GeneAE(quick_config()).fit(np.asarray(adata.X.todense()))
    with pytest.raises(InputError, match="got csr_matrix; wrap a matrix as anndata.AnnData"):
        model.encode(adata.X)
    with pytest.raises(ConfigError, match=r"train.validation = 1.5"):
        GeneAE(quick_config()).fit(adata, validation=1.5)
    with pytest.raises(ModelFileError, match="nothing to resume"):
        GeneAE(quick_config()).fit(adata, run_dir=tmp_path / "new", resume=True)
    with pytest.raises(InputError, match=r"latent must be samples x latent dims .*\(3, 5\)"):
        model.gene_loadings(np.zeros((3, 5)))
    with pytest.raises(InputError, match="space must be one of"):
        model.reconstruction_units("foo")
    with pytest.raises(NotFittedError):
        GeneAE().to_input_space(np.zeros((2, 2)))
    with pytest.raises(ConfigError, match=r"'n_top_gene'; allowed keys here: preset, source"):
        Preprocessor("counts", n_top_gene=5)


def test_a_covariate_without_values_or_of_measurements_is_refused():
    adata = tiny_counts()
    rng = np.random.default_rng(0)
    adata.obs["batch"] = rng.choice(["a", "b"], size=adata.n_obs)
    adata.obs.loc[adata.obs_names[5], "batch"] = None
    with pytest.raises(InputError, match=r"'batch' has no value for 1 samples .*'unknown'"):
        GeneAE(quick_config(**{"data.covariate": "batch"})).fit(adata)
    adata.obs["depth"] = rng.normal(size=adata.n_obs)  # a number per sample: no batch
    with pytest.raises(InputError, match=r"'depth' holds 300 different numbers .*categorical"):
        GeneAE(quick_config(**{"data.covariate": "depth"})).fit(adata)
    adata.obs["batch"] = rng.choice([1.0, 2.0, 3.0], size=adata.n_obs)  # coded levels: fine
    model = GeneAE(quick_config(**{"data.covariate": "batch"})).fit(adata)
    assert model.covariate_categories == ["1.0", "2.0", "3.0"]


def test_tl_encode_copies_a_backed_anndata_into_memory(fitted, tmp_path):
    adata, model = fitted
    adata.write_h5ad(tmp_path / "d.h5ad")
    backed = ad.read_h5ad(tmp_path / "d.h5ad", backed="r")
    out = tl.encode(backed, model, copy=True)  # was: anndata's error (a copy needs a file)
    assert not out.isbacked and "X_geneae" not in backed.obsm
    model.encode(backed)
    assert backed.file.is_open  # anndata's to_memory closed the caller's file
    np.testing.assert_allclose(out.obsm["X_geneae"], model.encode(adata), rtol=1e-6)
