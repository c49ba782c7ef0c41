"""The command line end to end on tiny data: exit codes, files, metrics, protection."""

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from geneae import datasets
from geneae.cli import main
from geneae.saved_model import MODEL_FILES

FAST = {
    # One thread: otherwise each run picks its threads from the machine's load, and two
    # runs that reduce in a different order differ in the last bits (test_rerun_...). The
    # clustering phase's default epochs grow as data shrink (334 on these 240 cells): 2.
    "train": {
        "max_epochs": 3,
        "batch_size": 64,
        "quiet": True,
        "num_threads": 1,
        "cluster_epochs": 2,
    },
    "model": {"hidden": [32], "latent_dim": 4, "members": 1},
    "preprocess": {"n_top_genes": 0},
    # No report unless a test is about it: drawing one costs seconds per run.
    "evaluate": {"tsne": False, "umap": False, "max_plot_cells": 200, "report": False},
}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5ad"
    datasets.synthetic_counts(n_cells=240, n_genes=50, n_clusters=3, seed=0).write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def fast_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "fast.yaml"
    path.write_text(yaml.safe_dump(FAST))
    return path


@pytest.fixture(scope="module")
def report_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "report.yaml"
    path.write_text(yaml.safe_dump({**FAST, "evaluate": {**FAST["evaluate"], "report": True}}))
    return path


@pytest.fixture(scope="module")
def trained(data_file, report_yaml, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", str(data_file), "--out", str(run), "--config", str(report_yaml)]) == 0
    return run


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert err.startswith("geneae: error:"), err
    assert len(err.splitlines()) == 1, err
    return err


def test_train_writes_a_complete_run(trained, data_file):
    assert not (trained / "report_data.h5ad").exists() and not (trained / "latent.h5ad").exists()
    for name in (
        *MODEL_FILES,
        "results.h5ad",
        "report.html",
    ):
        assert (trained / name).is_file(), name
    assert any((trained / "figures").glob("*.png"))
    metrics = json.loads((trained / "metrics.json").read_text())
    comparison = metrics["comparison"]
    assert comparison["n_components"] == 4
    for side in ("geneae", "pca"):
        for key in ("ari", "nmi", "acc", "silhouette", "mse"):
            assert key in comparison[side], (side, key)
    assert metrics["model"]["epochs_trained"] == 3
    expected = ad.read_h5ad(data_file).obs["label"].astype(str).value_counts().to_dict()
    assert metrics["data"]["labels"] == expected
    latent = ad.read_h5ad(trained / "results.h5ad")
    assert latent.obsm["X_geneae"].shape == (240, 4)
    assert latent.obsm["X_pca"].shape == (240, 4)
    assert "label" in latent.obs
    # The stability of each side's clusters (docs/results.md), in the metrics as well.
    stability = latent.uns["geneae"]["stability"]
    assert stability["repeats"] == 20
    for side in ("geneae", "pca"):
        k = latent.obs[f"{side}_cluster"].nunique()
        assert stability[side]["co_clustering"].shape == (k, k)
        assert stability[side]["per_cluster"].shape == (k,)
        assert stability[side]["ari"].shape == (20,)
        assert latent.obs[f"{side}_stability"].shape == (240,)
        assert comparison[side]["cluster_stability"] == pytest.approx(stability[side]["mean"])
    assert "cluster stability" in (trained / "report.html").read_text(encoding="utf-8")


def test_train_prints_the_summary(data_file, report_yaml, tmp_path, capsys):
    assert (
        main(["train", str(data_file), "--out", str(tmp_path / "r"), "--config", str(report_yaml)])
        == 0
    )
    out = capsys.readouterr().out
    assert "ARI" in out and "PCA (4 components)" in out and "report:" in out


@pytest.mark.parametrize(
    ("model", "timings", "line"),
    [
        (
            {"epochs_trained": 2, "device": "cpu", "cluster_phase": {"seconds": 7.8}},
            {"train_s": 8.9, "seconds_per_epoch": 0.55},
            "trained 2 epochs in 8.9 s (0.550 s per epoch; clustering phase 7.8 s) on cpu",
        ),
        (
            {"epochs_trained": [94, 90], "device": "cpu", "cluster_phase": {"seconds": 16.0}},
            {"train_s": 121.0, "seconds_per_epoch": 0.41},
            "trained 2 members (94, 90 epochs) in 121.0 s (0.410 s per epoch of a member; "
            "clustering phases 16.0 s added over the members) on cpu",
        ),
        (  # resumed after its last epoch: no epoch timed, no phase configured
            {"epochs_trained": 3, "device": "cpu"},
            {"train_s": 0.2},
            "trained 3 epochs in 0.2 s on cpu",
        ),
    ],
)
def test_the_training_line_times_epochs_apart_from_the_clustering_phase(model, timings, line):
    from geneae.cli.commands import training_line

    assert training_line({"model": model, "timings": timings}) == line


def _summary_text(sides):
    from rich.console import Console

    from geneae.cli.commands import summary_table

    console = Console(record=True, width=120)
    console.print(summary_table({"comparison": {"n_components": 10, **sides}}, "t"))
    return console.export_text()


def test_summary_gives_the_mse_over_all_and_over_non_zero_entries():
    text = _summary_text(
        {
            "geneae": {"mse": 8.195, "masked_mse": 3.25},
            "pca": {"mse": 0.943, "masked_mse": 3.444},
        }
    )
    assert "reconstruction MSE, all entries" in text and "8.195" in text
    assert "reconstruction MSE, non-zero entries" in text and "3.444" in text


def test_summary_leaves_out_the_non_zero_mse_of_an_input_without_zeros():
    # z-scored input has no zero entry: both MSEs are the same mean, one row says it.
    text = _summary_text(
        {
            "geneae": {"mse": 12.202998486312717, "masked_mse": 12.202998486312726},
            "pca": {"mse": 0.6595712054052022, "masked_mse": 0.6595712054052011},
        }
    )
    assert "reconstruction MSE, all entries" in text and "12.2" in text
    assert "non-zero entries" not in text


def test_summary_names_the_silhouette_of_clusters_without_labels():
    sides = {"geneae": {"silhouette": 0.27}, "pca": {"silhouette": 0.11}}
    assert "label silhouette" in _summary_text({**sides, "supervised": True})
    text = _summary_text({**sides, "supervised": False})
    assert "cluster silhouette" in text and "label" not in text


def test_existing_run_is_protected(trained, data_file, fast_yaml, capsys):
    before = (trained / "weights.safetensors").read_bytes()
    assert main(["train", str(data_file), "--out", str(trained), "--config", str(fast_yaml)]) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert (trained / "weights.safetensors").read_bytes() == before


def test_overwrite_replaces_only_our_files(data_file, fast_yaml, tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    args = ["train", str(data_file), "--out", str(run), "--config", str(fast_yaml)]
    # A folder of the user's own files is no run: refused unless --overwrite.
    assert main(args) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    assert main([*args, "--overwrite"]) == 0
    assert main([*args, "--overwrite"]) == 0
    assert (run / "notes.txt").read_text() == "mine"
    assert (run / "weights.safetensors").is_file()


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--model", "transformer"], "--model"),
        (["--likelihood", "gamma"], "--likelihood"),
        (["--hidden", "12,abc"], "--hidden"),
        (["--latent-dim", "0"], "latent_dim"),
        (["--bogus"], "No such option"),
        (["--preset", "nope"], "unknown preset"),
    ],
)
def test_bad_flags_exit_2_with_one_line(flags, fragment, data_file, tmp_path, capsys):
    assert main(["train", str(data_file), "--out", str(tmp_path / "r"), *flags]) == 2
    assert fragment in one_line_error(capsys)
    assert not (tmp_path / "r" / "weights.safetensors").exists()


def test_misspelt_yaml_key_is_an_error_naming_it(data_file, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  latent_dims: 4\n")
    assert main(["train", str(data_file), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 2
    err = one_line_error(capsys)
    assert "latent_dims" in err and "latent_dim" in err


def test_bad_yaml_value_names_key_and_allowed_values(data_file, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  family: transformer\n")
    assert main(["train", str(data_file), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 2
    err = one_line_error(capsys)
    assert "model.family" in err and "'vae'" in err


def test_missing_data_file_exits_2(tmp_path, capsys):
    assert main(["train", str(tmp_path / "none.h5ad"), "--out", str(tmp_path / "r")]) == 2
    assert "none.h5ad" in one_line_error(capsys)


def test_info(data_file, capsys):
    assert main(["info", str(data_file)]) == 0
    out = capsys.readouterr().out
    assert "240" in out and "raw counts" in out


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".npy", ".h5ad"])
def test_encode_by_extension(trained, data_file, tmp_path, suffix):
    target = tmp_path / f"latent{suffix}"
    assert main(["encode", str(trained), str(data_file), "--out", str(target)]) == 0
    if suffix == ".npy":
        values = np.load(target)
    elif suffix == ".h5ad":
        written = ad.read_h5ad(target)
        values = np.asarray(written.X)
        # The samples' annotations travel with their latents.
        assert written.obs["label"].tolist() == ad.read_h5ad(data_file).obs["label"].tolist()
    else:
        values = pd.read_csv(target, sep="," if suffix == ".csv" else "\t", index_col=0).to_numpy()
    reference = ad.read_h5ad(trained / "results.h5ad").obsm["X_geneae"]
    np.testing.assert_allclose(values, reference, rtol=1e-5, atol=1e-6)


def test_encode_refuses_to_overwrite(trained, data_file, tmp_path, capsys):
    target = tmp_path / "latent.csv"
    target.write_text("precious")
    assert main(["encode", str(trained), str(data_file), "--out", str(target)]) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert target.read_text() == "precious"


@pytest.mark.parametrize("command", ["encode", "reconstruct", "evaluate"])
def test_data_a_model_cannot_use_is_named_in_the_error(
    command, trained, data_file, tmp_path, capsys
):
    # Found by the model, not by the reader: the file must still be named.
    adata = ad.read_h5ad(data_file)
    fewer = tmp_path / "fewer.h5ad"
    adata[:, 1:].copy().write_h5ad(fewer)
    target = tmp_path / ("out.json" if command == "evaluate" else "out.csv")
    assert main([command, str(trained), str(fewer), "--out", str(target)]) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"geneae: error: {fewer}: ") and "missing" in err
    assert not target.exists()


def test_reconstruct_writes_counts(trained, data_file, tmp_path):
    target = tmp_path / "denoised.npy"
    assert main(["reconstruct", str(trained), str(data_file), "--out", str(target)]) == 0
    values = np.load(target)
    assert values.shape == (240, 50) and (values >= 0).all()


def test_reconstruct_to_h5ad_keeps_the_samples_annotations(trained, data_file, tmp_path):
    target = tmp_path / "denoised.h5ad"
    assert main(["reconstruct", str(trained), str(data_file), "--out", str(target)]) == 0
    written, given = ad.read_h5ad(target), ad.read_h5ad(data_file)
    assert written.obs_names.tolist() == given.obs_names.tolist()
    assert written.obs["label"].tolist() == given.obs["label"].tolist()
    assert written.uns["geneae"]["values"].startswith("expected counts")


def test_evaluate_writes_metrics(trained, data_file, tmp_path):
    target = tmp_path / "eval.json"
    assert main(["evaluate", str(trained), str(data_file), "--out", str(target)]) == 0
    metrics = json.loads(target.read_text())
    assert {"geneae", "pca"} <= set(metrics["comparison"])


def test_report_rerenders(trained):
    (trained / "report.html").unlink()
    assert main(["report", str(trained)]) == 0
    assert "<html" in (trained / "report.html").read_text()


def test_report_of_a_non_run_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    one_line_error(capsys)


def test_rerun_from_saved_config_gives_the_same_latent(trained, data_file, tmp_path):
    again = tmp_path / "again"
    assert (
        main(
            ["train", str(data_file), "--out", str(again), "--config", str(trained / "config.yaml")]
        )
        == 0
    )
    first = ad.read_h5ad(trained / "results.h5ad").obsm["X_geneae"]
    second = ad.read_h5ad(again / "results.h5ad").obsm["X_geneae"]
    np.testing.assert_array_equal(first, second)


def test_flags_override_the_yaml(data_file, fast_yaml, tmp_path):
    run = tmp_path / "r"
    args = [
        "train",
        str(data_file),
        "--out",
        str(run),
        "--config",
        str(fast_yaml),
        "--latent-dim",
        "3",
    ]
    assert main(args) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["latent_dim"] == 3 and saved["model"]["hidden"] == [32]


def test_preset_then_flags(data_file, fast_yaml, tmp_path):
    run = tmp_path / "r"
    args = [
        "train",
        str(data_file),
        "--out",
        str(run),
        "--config",
        str(fast_yaml),
        "--preset",
        "dca-zinb",
    ]
    assert main(args) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["preset"] == "dca-zinb"
    assert saved["model"]["likelihood"] == "zinb" and saved["model"]["family"] == "ae"
    # the YAML's own values win over the preset's
    assert saved["model"]["hidden"] == [32]


def test_resume_needs_a_checkpoint(data_file, tmp_path, capsys):
    assert main(["train", str(data_file), "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "resume" in one_line_error(capsys)


def test_compare_grid(data_file, fast_yaml, tmp_path):
    out = tmp_path / "cmp"
    grid = "latent_dim=2,3 likelihood=mse,nb"
    assert (
        main(
            [
                "compare",
                str(data_file),
                "--out",
                str(out),
                "--grid",
                grid,
                "--config",
                str(fast_yaml),
            ]
        )
        == 0
    )
    table = pd.read_csv(out / "comparison.csv")
    assert len(table) == 4
    assert {"ari", "pca_ari", "nmi", "latent_dim", "likelihood"} <= set(table.columns)
    assert (out / "comparison.md").read_text().count("\n") >= 6
    assert (out / "comparison.png").stat().st_size > 1000
    assert not list(out.glob("*/report.html"))  # evaluate.report: false is kept per setting


def test_compare_bad_grid_exits_2(data_file, tmp_path, capsys):
    assert main(["compare", str(data_file), "--out", str(tmp_path), "--grid", "colour=red"]) == 2
    assert "colour" in one_line_error(capsys)


def test_help_of_every_command(capsys):
    for command in (
        "train",
        "encode",
        "reconstruct",
        "evaluate",
        "compare",
        "report",
        "demo",
        "info",
    ):
        assert main([command, "--help"]) == 0
        assert "Example" in capsys.readouterr().out


def test_a_run_without_report_computes_pca_maps_only(data_file, tmp_path):
    # FAST has report: false; t-SNE and UMAP asked for, yet only PCA maps are computed.
    settings = {**FAST, "evaluate": {**FAST["evaluate"], "tsne": True, "umap": True}}
    config = tmp_path / "noreport.yaml"
    config.write_text(yaml.safe_dump(settings))
    run = tmp_path / "run"
    assert main(["train", str(data_file), "--out", str(run), "--config", str(config)]) == 0
    assert not (run / "report.html").exists()
    results = ad.read_h5ad(run / "results.h5ad")
    maps = [k for k in results.obsm if k.startswith("map_")]
    assert maps and all(k.startswith("map_pca_") for k in maps)
    # `geneae report` still renders it, with PCA maps and a note on the others.
    assert main(["report", str(run)]) == 0
    assert "were not computed for this run" in (run / "report.html").read_text()


def npy_with_side_files(data_file, folder):
    """The homework shape: ``data_file``'s matrix saved with numpy, its labels and gene
    names (``GENE0`` ...) in files beside it. Returns (matrix, labels, genes, names)."""
    adata = ad.read_h5ad(data_file)
    matrix, labels, genes = folder / "x.npy", folder / "labels.txt", folder / "genes.txt"
    np.save(matrix, adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X))
    labels.write_text("\n".join(adata.obs["label"].astype(str)) + "\n")
    names = [f"GENE{j}" for j in range(adata.n_vars)]
    genes.write_text("\n".join(names) + "\n")
    return matrix, labels, genes, names


def test_genes_file_names_the_genes_of_an_npy(data_file, fast_yaml, tmp_path, capsys):
    # A matrix saved with numpy has no gene names: --genes-file gives them, to training (the
    # model's genes, its top-gene tables) and to the commands that read new data.
    matrix, labels, genes, names = npy_with_side_files(data_file, tmp_path)
    n_obs = ad.read_h5ad(data_file).n_obs
    run = tmp_path / "run"
    flags = ["--config", str(fast_yaml), "--labels-file", str(labels)]
    assert main(["train", str(matrix), "--out", str(run), "--genes-file", str(genes), *flags]) == 0
    model_genes = (run / "genes.txt").read_text().split()
    assert model_genes and set(model_genes) <= set(names)  # the file's names, not gene_0000
    assert main(["info", str(matrix), "--genes-file", str(genes)]) == 0
    latent = tmp_path / "z.csv"
    assert (
        main(["encode", str(run), str(matrix), "--out", str(latent), "--genes-file", str(genes)])
        == 0
    )
    assert pd.read_csv(latent, index_col=0).shape == (n_obs, 4)
    capsys.readouterr()
    # Without the names the new file's genes are gene_0000, ...: none of the model's.
    assert main(["encode", str(run), str(matrix), "--out", str(tmp_path / "y.csv")]) == 2
    one_line_error(capsys)


def test_genes_file_with_a_file_that_names_its_genes_exits_2(data_file, tmp_path, capsys):
    genes = tmp_path / "genes.txt"
    genes.write_text("a\nb\n")
    code = main(["train", str(data_file), "--out", str(tmp_path / "r"), "--genes-file", str(genes)])
    assert code == 2
    err = one_line_error(capsys)
    assert "names its genes itself" in err and "genes.txt" in err
    short = tmp_path / "x.npy"
    np.save(short, np.ones((5, 3)))
    assert main(["info", str(short), "--genes-file", str(genes)]) == 2
    assert "2 lines but" in one_line_error(capsys)


def test_compare_an_npy_with_labels_and_genes_files(data_file, fast_yaml, tmp_path):
    matrix, labels, genes, _ = npy_with_side_files(data_file, tmp_path)
    out = tmp_path / "cmp"
    args = ["compare", str(matrix), "--out", str(out), "--grid", "latent_dim=2,3"]
    args += ["--config", str(fast_yaml), "--labels-file", str(labels), "--genes-file", str(genes)]
    assert main(args) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert table["ari"].notna().all() and table["pca_ari"].notna().all()
    assert (out / "latent_dim=2" / "genes.txt").read_text().startswith("GENE")


def test_version_is_shown(capsys):
    from geneae import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"geneae {__version__}"


@pytest.mark.parametrize(
    ("command", "hint"),
    [("train", "same command and --resume"), ("tune", "same `geneae tune` command again")],
)
def test_an_interrupt_says_how_its_command_continues(command, hint, monkeypatch, capsys):
    # tune has no --resume: its hint was train's.
    import geneae.tune

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(geneae.tune, "tune", interrupted)
    monkeypatch.setattr("geneae.run.train_run", interrupted)
    assert main([command, "data.h5ad", "--out", "somewhere"]) == 130
    err = capsys.readouterr().err
    assert hint in err and (command == "train") == ("--resume" in err)
