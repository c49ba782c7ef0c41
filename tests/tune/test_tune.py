"""geneae tune end to end on tiny synthetic data: it finds the true latent size, its best
configuration trains the same model again, workers share a storage, a killed study resumes."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

import geneae
from geneae.cli import main

SRC = str(Path(geneae.__file__).resolve().parents[1])


def linear_data(n, g, k, seed=0, noise=1.0):
    """n samples of g genes on a k-dimensional linear subspace, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k))
    w = rng.normal(size=(k, g))
    x = z @ w + rng.normal(scale=noise, size=(n, g))
    return ad.AnnData(x.astype(np.float32))


# A beta-VAE (beta 4) with a linear decoder on rank-3 data: each latent dimension it uses
# costs four times its KL, so a dimension beyond the true three costs validation loss (about
# 1 nat per sample), and one fewer loses a factor of variation (about 5 nats).
LATENT_STUDY = {
    "preprocess": {"preset": "none"},
    "model": {
        "family": "vae",
        "likelihood": "gaussian",
        "hidden": [],
        "decoder_hidden": [],
        "norm": "none",
        "dropout": 0.0,
        "members": 1,
    },
    "train": {
        "max_epochs": 80,
        "batch_size": 128,
        "lr": 0.01,
        "kl_weight": 4.0,
        "kl_schedule": "constant",
        "validation": 0.25,
    },
    "evaluate": {"tsne": False, "umap": False},
    "tune": {"space": {"model.latent_dim": "int:1:6"}, "sampler": "grid", "trials": 6},
}
# Small and quick: for the tests of the machinery.
QUICK = {
    "preprocess": {"preset": "none"},
    "model": {"hidden": [16], "norm": "none", "members": 1},
    "train": {"max_epochs": 6, "batch_size": 64, "validation": 0.25, "cluster_epochs": 2},
    "evaluate": {"tsne": False, "umap": False},
}
QUICK_SPACE = "model.latent_dim=int:1:8 train.lr=log:1e-3:3e-2"


def write_yaml(path, values):
    path.write_text(yaml.safe_dump(values))
    return path


def geneae_process(*args, **popen):
    """``geneae ARGS`` in a new process running this source tree."""
    env = {**os.environ, "PYTHONPATH": SRC, "CI": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "geneae", *map(str, args)]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
    )


def trials_of(storage, name="geneae"):
    """Every trial of a study, read once (SQLite: through a connection closed afterwards)."""
    if isinstance(storage, str):
        storage = optuna.storages.RDBStorage(
            storage, engine_kwargs={"connect_args": {"timeout": 120}}
        )
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    finally:
        if isinstance(storage, optuna.storages.RDBStorage):
            storage.engine.dispose()


def by_state(trials):
    out = {}
    for t in trials:
        out.setdefault(t.state, []).append(t)
    return out


def sqlite_states(db):
    """{state: count} read with a short-lived connection (no lock kept between polls).

    ``"RUNNING_WITH_PARAMS"`` counts the running trials that have drawn parameters,
    ``"RUNNING_UNSTAMPED"`` those a worker has created but not yet stamped with its
    heartbeat.
    """
    import sqlite3

    with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
        counts = dict(con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
        (drawn,) = con.execute(
            "SELECT COUNT(DISTINCT t.trial_id) FROM trials t JOIN trial_params p "
            "ON p.trial_id = t.trial_id WHERE t.state = 'RUNNING'"
        ).fetchone()
        (unstamped,) = con.execute(
            "SELECT COUNT(*) FROM trials t WHERE t.state = 'RUNNING' AND NOT EXISTS (SELECT 1 "
            "FROM trial_user_attributes a WHERE a.trial_id = t.trial_id AND a.key = 'heartbeat')"
        ).fetchone()
    return {**counts, "RUNNING_WITH_PARAMS": drawn, "RUNNING_UNSTAMPED": unstamped}


def started_numbers(log_dir):
    """Trial numbers each worker log says it started: {log name: [numbers]}."""
    found = {}
    for log in Path(log_dir).glob("worker-*.log"):
        numbers = [
            int(line.split("trial ")[1].split(":")[0])
            for line in log.read_text().splitlines()
            if ": started" in line
        ]
        found[log.name] = numbers
    return found


# -- the latent size -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def latent_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent")
    data = root / "rank3.h5ad"
    linear_data(1000, 60, 3).write_h5ad(data)
    cfg = write_yaml(root / "study.yaml", LATENT_STUDY)
    out = root / "study"
    start = time.perf_counter()
    code = main(["tune", str(data), "--out", str(out), "--config", str(cfg)])
    assert code == 0
    print(f"latent-size study: {time.perf_counter() - start:.1f} s")
    return data, out


@pytest.mark.slow
@pytest.mark.long  # the 45-s latent-size study: `make test-long`
def test_study_finds_the_true_latent_size(latent_study, capsys):
    _, out = latent_study
    table = pd.read_csv(out / "trials.csv")
    assert sorted(table["model.latent_dim"]) == [1, 2, 3, 4, 5, 6]  # the whole grid
    finished = table[table.state.isin(["COMPLETE", "PRUNED"])]
    assert len(finished) == 6
    best = table.loc[table[table.state == "COMPLETE"]["value"].idxmin()]
    print(table[["number", "state", "model.latent_dim", "value"]].to_string(index=False))
    assert best["model.latent_dim"] == 3
    # every smaller size loses a factor: clearly worse
    smaller = table[table["model.latent_dim"] < 3]["value"]
    assert (smaller > best["value"] + 2.0).all()
    config = yaml.safe_load((out / "best_config.yaml").read_text())
    assert config["model"]["latent_dim"] == 3
    assert config["preprocess"]["preset"] == "none" and config["train"]["max_epochs"] == 80


@pytest.mark.slow
@pytest.mark.long  # the 45-s latent-size study: `make test-long`
def test_best_config_trains_the_same_model(latent_study, tmp_path):
    data, out = latent_study
    table = pd.read_csv(out / "trials.csv")
    best = table.loc[table[table.state == "COMPLETE"]["value"].idxmin()]
    run = tmp_path / "best"
    assert (
        main(["train", str(data), "--config", str(out / "best_config.yaml"), "--out", str(run)])
        == 0
    )
    history = pd.read_csv(run / "history.csv")
    assert history["val_loss"].min() == pytest.approx(best["value"], rel=1e-6)
    assert yaml.safe_load((run / "config.yaml").read_text()) == yaml.safe_load(
        (out / "best_config.yaml").read_text()
    )


@pytest.mark.slow
@pytest.mark.long  # the 45-s latent-size study: `make test-long`
def test_report_history_and_importances(latent_study):
    _, out = latent_study
    report = (out / "tune_report.md").read_text()
    assert "validation loss at the best epoch" in report
    assert "| `model.latent_dim` | 1.000 |" in report  # the one tuned setting explains all
    for png in ("tune_history.png", "tune_importances.png"):
        assert (out / "figures" / png).stat().st_size > 5000
    assert (out / "study.db").is_file()


# -- workers, resumption ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("quick")
    data = root / "small.h5ad"
    linear_data(300, 20, 3, seed=1).write_h5ad(data)
    return data, write_yaml(root / "quick.yaml", QUICK)


def test_two_workers_share_one_storage(quick, tmp_path):
    data, cfg = quick
    journal = tmp_path / "study.journal"
    out = tmp_path / "study"
    args = ["tune", data, "--out", out, "--config", cfg, "--space", QUICK_SPACE]
    args += ["--trials", 10, "--storage", f"journal:{journal}"]
    procs = [geneae_process(*args) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, text in zip(procs, outputs, strict=True):
        assert p.returncode == 0, text
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    states = by_state(trials_of(JournalStorage(JournalFileBackend(str(journal)))))
    finished = states.get(TrialState.COMPLETE, []) + states.get(TrialState.PRUNED, [])
    assert len(finished) == 10  # none lost, none beyond the target
    failed = [t for t in states.get(TrialState.FAIL, []) if not t.user_attrs.get("surplus")]
    assert failed == [] and TrialState.RUNNING not in states
    started = started_numbers(out / "logs")
    assert len(started) == 2 and all(started.values()), started  # both workers ran trials
    runs = [n for numbers in started.values() for n in numbers]
    assert len(runs) == len(set(runs))  # no trial started twice
    assert set(runs) >= {t.number for t in finished}
    pids = {t.user_attrs["pid"] for t in finished}
    assert len(pids) == 2


def test_a_killed_study_resumes(quick, tmp_path):
    data, cfg = quick
    out = tmp_path / "study"
    args = ["tune", data, "--out", out, "--config", cfg, "--space", QUICK_SPACE]
    args += ["--trials", 8, "--epochs", 40]
    proc = geneae_process(*args, "--workers", 2, start_new_session=True)
    storage = f"sqlite:///{out / 'study.db'}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            counts = sqlite_states(out / "study.db")
        except Exception:  # noqa: BLE001 - not created yet, or locked
            continue
        finally:
            assert proc.poll() is None, proc.communicate()[0]
        # Not while a worker is between creating a trial and stamping it: such a trial is
        # recovered only after UNSTAMPED_GRACE_S (the test below); this one is about trials
        # that were running.
        if (
            counts.get("COMPLETE", 0) >= 2
            and counts.get("RUNNING_WITH_PARAMS", 0) >= 1
            and counts.get("RUNNING_UNSTAMPED", 0) == 0
        ):
            break
    os.killpg(proc.pid, signal.SIGKILL)  # the job and its workers, as a scheduler would
    proc.wait()
    before = by_state(trials_of(storage))
    killed = before[TrialState.RUNNING]
    kept = {t.number: t.value for t in before[TrialState.COMPLETE]}
    assert killed and len(kept) >= 2

    assert main([str(a) for a in args]) == 0  # the same command, one worker
    after = by_state(trials_of(storage))
    finished = after.get(TrialState.COMPLETE, []) + after.get(TrialState.PRUNED, [])
    assert len(finished) == 8 and TrialState.RUNNING not in after
    assert {t.number: t.value for t in after[TrialState.COMPLETE] if t.number in kept} == kept
    # each trial the kill interrupted failed, and its parameters ran again (a trial killed
    # before it drew its parameters has none: a new trial took its place)
    failed = {t.number for t in after.get(TrialState.FAIL, [])}
    assert {t.number for t in killed} <= failed
    retried = {t.user_attrs.get("retry_of"): t for t in finished if "retry_of" in t.user_attrs}
    assert any(t.params for t in killed)
    for t in killed:
        if t.params:
            # the values it had drawn run again; one killed between two draws draws the
            # rest anew
            assert retried[t.number].params.items() >= t.params.items()
        else:
            assert t.number not in retried
    assert len(pd.read_csv(out / "trials.csv")) == len(after.get(TrialState.COMPLETE, [])) + len(
        after.get(TrialState.PRUNED, [])
    ) + len(failed)


def test_a_trial_whose_worker_died_before_stamping_it_is_replaced(quick, tmp_path, monkeypatch):
    # A worker killed between study.ask() and its stamp leaves a running trial with no
    # heartbeat, host or process id; the next run must not count it as running forever.
    from geneae.tune import storage as st
    from geneae.tune import worker

    data, cfg = quick
    out = tmp_path / "study"
    args = ["tune", data, "--out", out, "--config", cfg, "--space", QUICK_SPACE, "--trials"]
    assert main([str(a) for a in [*args, 2]]) == 0
    storage = f"sqlite:///{out / 'study.db'}"
    orphan = optuna.load_study(study_name="geneae", storage=storage).ask()  # never stamped
    # A grace that outlasts the run's start (reading the data, loading the study: over a
    # second on a loaded machine), so that the run finds the orphan still in it.
    monkeypatch.setattr(st, "UNSTAMPED_GRACE_S", 4.0)
    monkeypatch.setattr(worker, "UNSTAMPED_POLL_S", 0.2)

    assert main([str(a) for a in [*args, 3]]) == 0
    states = by_state(trials_of(storage))
    finished = states.get(TrialState.COMPLETE, []) + states.get(TrialState.PRUNED, [])
    assert len(finished) == 3 and TrialState.RUNNING not in states
    assert [t.number for t in states[TrialState.FAIL]] == [orphan.number]
    assert not any("retry_of" in t.user_attrs for t in finished)  # it had no parameters
    log = "".join(f.read_text() for f in (out / "logs").glob("worker-*.log"))
    assert f"trial {orphan.number}: created but not started yet; waiting for it" in log


def test_a_worker_whose_trial_was_taken_before_its_stamp_asks_again(quick, tmp_path, monkeypatch):
    # The other side of the grace: a stamp delayed past it finds the trial failed by another
    # worker's recovery; the worker leaves that trial and asks for a new one.
    from geneae.tune import storage as st

    data, cfg = quick
    out = tmp_path / "study"
    stamp, taken = st.worker_attrs, []

    def stamp_too_late():
        study = optuna.load_study(study_name="geneae", storage=f"sqlite:///{out / 'study.db'}")
        running = study.get_trials(states=(TrialState.RUNNING,))
        if running and not taken:  # the first trial: another worker's recovery fails it
            study.tell(running[0].number, state=TrialState.FAIL)
            taken.append(running[0].number)
        return stamp()

    monkeypatch.setattr(st, "worker_attrs", stamp_too_late)
    args = ["tune", data, "--out", out, "--config", cfg, "--space", QUICK_SPACE, "--trials", 2]
    assert main([str(a) for a in args]) == 0
    states = by_state(trials_of(f"sqlite:///{out / 'study.db'}"))
    finished = states.get(TrialState.COMPLETE, []) + states.get(TrialState.PRUNED, [])
    assert len(finished) == 2 and [t.number for t in states[TrialState.FAIL]] == taken
    log = "".join(f.read_text() for f in (out / "logs").glob("worker-*.log"))
    assert f"trial {taken[0]}: recovered by another worker before it started" in log


# -- settings -------------------------------------------------------------------------------
def test_a_study_continues_only_with_its_own_settings(quick, tmp_path, capsys):
    data, cfg = quick
    values = yaml.safe_load(cfg.read_text())
    values["tune"] = {"space": {"model.latent_dim": "int:1:4"}, "trials": 2}
    study_yaml = write_yaml(tmp_path / "study.yaml", values)
    out = tmp_path / "study"
    assert main(["tune", str(data), "--out", str(out), "--config", str(study_yaml)]) == 0
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 2 and "model.latent_dim" in table
    # more trials of the same study: continued
    args = ["tune", str(data), "--out", str(out), "--config", str(study_yaml)]
    assert main([*args, "--trials", "3"]) == 0
    assert len(pd.read_csv(out / "trials.csv")) == 3
    capsys.readouterr()
    # another space (a --space entry overrides the YAML's, key by key): refused
    assert main([*args, "--trials", "4", "--space", "model.latent_dim=int:1:6"]) == 2
    err = capsys.readouterr().err
    assert "another search space" in err and "--study-name" in err
    # another base configuration: refused, naming what differs (it printed two prefixes)
    assert main([*args, "--trials", "4", "--epochs", "7"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "another base configuration" in err and "train.max_epochs:" in err
    assert "7 now" in err


def test_label_objective_warns_and_maximises(tmp_path, capsys):
    from geneae import datasets

    data = tmp_path / "counts.h5ad"
    datasets.synthetic_counts(n_cells=240, n_genes=40, n_clusters=3, seed=0).write_h5ad(data)
    out = tmp_path / "study"
    args = ["tune", str(data), "--out", str(out), "--space", "model.latent_dim=2,4"]
    args += ["--objective", "ari", "--trials", "2", "--epochs", "3", "--quiet"]
    # The clustering phase's default epochs grow as data shrink (334 on these 240 cells).
    args += ["--config", str(write_yaml(tmp_path / "quick.yaml", {"train": {"cluster_epochs": 2}}))]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "warning: --objective ari tunes the model to the known labels" in text
    table = pd.read_csv(out / "trials.csv")
    assert table.state.eq("COMPLETE").all() and table["value"].between(-1, 1).all()
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}")
    assert optuna.load_study(study_name="geneae", storage=storage).direction.name == "MAXIMIZE"
    storage.engine.dispose()
    # without labels the label objective cannot be scored
    unlabelled = tmp_path / "unlabelled.h5ad"
    adata = ad.read_h5ad(data)
    del adata.obs["label"]
    adata.write_h5ad(unlabelled)
    args[1], args[3] = str(unlabelled), str(tmp_path / "s2")
    assert main(args) == 2
    assert "needs known labels" in capsys.readouterr().err
    assert not (tmp_path / "s2").exists()  # refused before a study or a trial was made
