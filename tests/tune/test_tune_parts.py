"""The pieces of a study: liveness of trials, the target count, retries, the reporter."""

import os
import socket
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from geneae.config import RunConfig, TuneConfig
from geneae.errors import ConfigError
from geneae.tune import build_space, parse_space_text
from geneae.tune import storage as st
from geneae.tune.objective import comparability_notes
from geneae.tune.reporter import TrialReporter
from geneae.tune.study import grid_size
from geneae.tune.worker import count_trials, is_surplus, recover_stale


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def space(text):
    return build_space(parse_space_text(text), RunConfig())


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_trials():
    here = socket.gethostname()
    now = time.time()
    alive = {"host": here, "pid": os.getpid(), "heartbeat": now}
    assert not st.is_stale(alive, 60)
    assert st.is_stale({**alive, "pid": dead_pid()}, 60)  # its process is gone
    elsewhere = {"host": here + "-other", "pid": 1, "heartbeat": now - 30}
    assert not st.is_stale(elsewhere, 60)
    assert st.is_stale({**elsewhere, "heartbeat": now - 90}, 60)  # no news for too long
    assert not st.is_stale({}, 60)  # nothing known about it: left alone
    # created but never stamped: its worker stopped in between, once the grace has passed
    grace = st.UNSTAMPED_GRACE_S
    assert not st.is_stale({}, 3600, now, started=now - grace / 2)
    assert st.is_stale({}, 3600, now, started=now - grace - 1)
    assert st.is_stale({}, 10, now, started=now - 11)  # never longer than stale_after


def test_target_count_and_surplus():
    study = optuna.create_study()
    for x in (1.0, 2.0):
        t = study.ask()
        study.tell(t, x)
    pruned = study.ask()
    study.tell(pruned, state=TrialState.PRUNED)
    failed = study.ask()
    study.tell(failed, state=TrialState.FAIL)
    a, b = study.ask(), study.ask()  # two workers asked at once
    assert count_trials(study) == (3, 2)
    assert not is_surplus(study, a.number, 4)  # the first of the two fills the target
    assert is_surplus(study, b.number, 4)
    assert not is_surplus(study, b.number, 5)


def _stale(trial):
    """Make ``trial`` look like one whose worker process is gone."""
    attrs = {"host": socket.gethostname(), "pid": dead_pid(), "heartbeat": time.time()}
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def test_recover_stale_fails_the_trial_and_runs_its_parameters_again():
    study = optuna.create_study()
    trial = study.ask()
    trial.suggest_int("model.latent_dim", 1, 8)
    _stale(trial)
    live = study.ask()
    live.set_user_attr("host", socket.gethostname())
    live.set_user_attr("pid", os.getpid())
    live.set_user_attr("heartbeat", time.time())
    assert recover_stale(study, 3600) == [trial.number]
    assert study.trials[trial.number].state == TrialState.FAIL
    assert study.trials[live.number].state == TrialState.RUNNING
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == trial.number
    again = study.ask()  # the queued parameters come first
    assert again.suggest_int("model.latent_dim", 1, 8) == trial.params["model.latent_dim"]
    assert recover_stale(study, 3600) == []  # nothing left to recover


def test_recover_stale_keeps_the_queued_parameters_of_a_trial_that_had_not_drawn_them():
    study = optuna.create_study()
    study.enqueue_trial({"model.latent_dim": 7})
    queued = study.ask()  # killed before its objective suggested anything
    _stale(queued)
    assert queued.params == {}
    assert recover_stale(study, 3600) == [queued.number]
    again = study.ask()
    assert again.user_attrs["retry_of"] == queued.number
    assert again.suggest_int("model.latent_dim", 1, 8) == 7


def test_recover_stale_fails_a_trial_without_parameters_and_queues_nothing():
    study = optuna.create_study()
    empty = study.ask()
    _stale(empty)
    assert recover_stale(study, 3600) == [empty.number]
    assert study.trials[empty.number].state == TrialState.FAIL
    assert study.get_trials(states=(TrialState.WAITING,)) == []


class FakeTrial:
    def __init__(self, prune_at):
        self.reports, self.attrs, self.prune_at = [], {}, prune_at

    def report(self, value, step):
        self.reports.append((step, value))

    def set_user_attr(self, key, value):
        self.attrs[key] = value

    def should_prune(self):
        return len(self.reports) > self.prune_at


class FakeTrainer:
    sanity_checking = False

    def __init__(self, epoch, loss):
        self.current_epoch = epoch
        self.callback_metrics = {"val_loss": loss}


def test_reporter_reports_every_epoch_and_prunes():
    trial = FakeTrial(prune_at=2)
    reporter = TrialReporter(trial, prune=True)
    reporter.on_train_epoch_end(FakeTrainer(0, 3.0), None)
    reporter.on_train_epoch_end(FakeTrainer(1, 2.0), None)
    with pytest.raises(optuna.TrialPruned, match="epoch 2"):
        reporter.on_train_epoch_end(FakeTrainer(2, float("inf")), None)
    assert trial.reports[:2] == [(0, 3.0), (1, 2.0)] and trial.reports[2][1] != trial.reports[2][1]
    assert reporter.pruned_epoch == 2 and "heartbeat" in trial.attrs
    quiet = TrialReporter(FakeTrial(prune_at=0), prune=False)
    quiet.on_train_epoch_end(FakeTrainer(0, 1.0), None)  # reports, never prunes
    assert quiet.pruned_epoch is None


def test_comparability_notes():
    assert (
        comparability_notes(space("model.latent_dim=int:2:8 model.likelihood=nb,zinb"), "loss")
        == []
    )
    notes = comparability_notes(
        space("model.likelihood=nb,gaussian train.kl_weight=float:0.1:1"), "loss"
    )
    assert any("kl_weight" in n for n in notes) and any("different units" in n for n in notes)
    assert (
        "preprocess.n_top_genes"
        in comparability_notes(space("preprocess.n_top_genes=500,1000"), "loss")[0]
    )
    assert (
        "tunes the model to the known labels"
        in comparability_notes(space("model.latent_dim=2,4"), "ari")[0]
    )


def test_grid_and_storage_settings(tmp_path):
    assert grid_size(space("model.latent_dim=int:1:4 model.likelihood=nb,zinb")) == 8
    with pytest.raises(ConfigError, match="storage URL"):
        st.open_storage("study.db")
    with pytest.raises(ConfigError, match="does not exist"):
        st.open_storage(f"journal:{tmp_path / 'missing' / 'study.log'}")
    assert st.storage_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'study.db'}"
    with pytest.raises(ValueError):
        TuneConfig(trials=0)


def test_grid_needs_a_finite_space(tmp_path):
    from geneae.tune import tune

    settings = TuneConfig(space={"train.lr": "log:1e-4:1e-2"}, sampler="grid")
    with pytest.raises(ConfigError, match="continuous"):
        tune(tmp_path / "x.h5ad", tmp_path / "out", RunConfig(), settings)
    settings = TuneConfig(space={"train.validation": "0.1,0.2"})
    with pytest.raises(ConfigError, match="held-out cells"):
        tune(tmp_path / "x.h5ad", tmp_path / "out", RunConfig(), settings)


def test_help_of_the_new_commands(capsys):
    from geneae.cli import main

    for command in ("tune", "similar-genes"):
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "Example" in text
    assert main(["tune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--space", "--space-file", "--storage", "--workers", "--objective", "--epochs"):
        assert flag in text
    assert main(["train", "--help"]) == 0
    assert "--genes-as-samples" in capsys.readouterr().out


def test_cli_import_loads_neither_torch_nor_optuna():
    code = "import sys, geneae.cli; print(any(m in sys.modules for m in ('torch', 'optuna')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_study_identity_is_recorded_once_and_checked():
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(storage=storage, study_name="s")
    second = optuna.load_study(storage=storage, study_name="s")  # another worker, same study
    wanted = st.identity({"model.latent_dim": "int:1:4"}, "base: 1\n", "loss", {"n_obs": 10})
    st.check_identity(first, wanted, "here")
    st.check_identity(second, wanted, "here")  # the same settings continue
    assert first.user_attrs[st.IDENTITY] == wanted  # one attribute, written in one step
    other = {**wanted, "objective": "ari"}
    with pytest.raises(ConfigError, match="another objective"):
        st.check_identity(second, other, "here")
    other = st.identity({"model.latent_dim": "int:1:5"}, "base: 1\n", "loss", {"n_obs": 10})
    with pytest.raises(ConfigError, match="another search space"):
        st.check_identity(second, other, "here")


def test_label_objective_scores_the_labelled_cells_of_clusters_made_among_all():
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from geneae import GeneAE, datasets
    from geneae.evaluate import cluster
    from geneae.tune.objective import label_score

    adata = datasets.synthetic_counts(n_cells=200, n_genes=40, n_clusters=3, seed=0)
    settings = {"train.max_epochs": 3, "train.quiet": True, "train.cluster_epochs": 2}
    settings.update({"model.members": 1, "model.latent_dim": 3, "preprocess.n_top_genes": 0})
    model = GeneAE(RunConfig().updated(settings)).fit(adata)
    labels = adata.obs["label"].astype(object).to_numpy()
    labels[::7] = None
    adata.obs["label"] = labels
    prepared = model.preprocess(adata)
    latent = model.encode(adata)
    labelled = np.array([v is not None for v in labels])
    k = len(set(labels[labelled]))
    clusters = cluster(latent, n_clusters=k, seed=model.config.train.seed)
    expected = adjusted_rand_score(labels[labelled].astype(str), clusters[labelled])
    assert label_score(model, prepared, "ari") == pytest.approx(expected)


def test_trials_table_keeps_whole_numbers_whole_beside_a_failed_trial():
    from geneae.tune.outputs import trials_table

    study = optuna.create_study()
    space = build_space(parse_space_text("model.latent_dim=int:2:6"), RunConfig())
    done = study.ask({"model.latent_dim": optuna.distributions.IntDistribution(2, 6)})
    done.set_user_attr("best_epoch", 7)
    study.tell(done, 1.5)
    failed = study.ask()  # failed before it drew its parameters
    study.tell(failed, state=TrialState.FAIL)
    table = trials_table(study, space)
    assert str(table["model.latent_dim"].dtype) == "Int64"
    assert str(table["best_epoch"].dtype) == "Int64" and table["best_epoch"][0] == 7
    assert table["model.latent_dim"].isna().tolist() == [False, True]
    assert table.to_csv(index=False).splitlines()[1].split(",")[3].isdigit()
