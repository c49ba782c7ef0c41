"""An ensemble's members trained at once, one process each (geneae.threads.member_waves,
geneae.train.member_process): the same members as one after the other, errors carried
back to the caller."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from test_model import quick_config, tiny_counts

import geneae.model_training
import geneae.threads
import geneae.train.member_folders
import geneae.train.member_process
from geneae import GeneAE
from geneae.threads import member_waves
from geneae.train.member_process import FORKS, processes_for
from geneae.train.member_process import spares as member_spares

ENSEMBLE = {"model.members": 2, "train.cluster_epochs": 2}
# The guess itself, before the fixture below replaces it.
GPU_LIKELY = geneae.train.member_process.gpu_likely


@pytest.fixture(autouse=True)
def no_gpu_guessed(monkeypatch):
    """These tests train on the CPU wherever they run (a Mac or a GPU host included)."""
    monkeypatch.setattr(geneae.train.member_process, "gpu_likely", lambda: False)


def test_member_waves_share_the_threads_and_take_every_member_once() -> None:
    assert member_waves(3, 2) == [([0, 1, 2], 1)]
    assert member_waves(3, 1) == [([0], 1), ([1], 1), ([2], 1)]
    assert member_waves(3, 8) == [([0, 1, 2], 2)]
    assert member_waves(1, 4) == [([0], 4)]
    for members in range(1, 6):
        for threads in range(1, 9):
            waves = member_waves(members, threads)
            assert [i for wave, _ in waves for i in wave] == list(range(members))
            # Each member at least one thread; no more threads at once than there are,
            # unless every member already has only one.
            for wave, each in waves:
                assert each == max(1, threads // len(wave))
                assert len(wave) * each <= threads or each == 1


@pytest.fixture
def counted(monkeypatch):
    """The members sent to member processes, in order."""
    sent: list[int] = []
    send = geneae.train.member_process.MemberProcess.send

    def counted_send(self, jobs, folder, threads):
        sent.extend(job.member for job in jobs)
        return send(self, jobs, folder, threads)

    monkeypatch.setattr(geneae.train.member_process.MemberProcess, "send", counted_send)
    return sent


@pytest.fixture
def started(monkeypatch):
    """The member processes started, in order."""
    made: list = []
    init = geneae.train.member_process.MemberProcess.__init__

    def remembered(self):
        init(self)
        made.append(self)

    monkeypatch.setattr(geneae.train.member_process.MemberProcess, "__init__", remembered)
    return made


def test_members_side_by_side_are_the_members_one_after_the_other(counted) -> None:
    adata = tiny_counts()
    # Two threads: both members at once, one thread each, member 1 in a child process.
    side = GeneAE(quick_config(**ENSEMBLE, **{"train.num_threads": 2})).fit(adata)
    assert counted == [1]
    # One thread: one member after the other in this process, each at one thread.
    alone = GeneAE(quick_config(**ENSEMBLE, **{"train.num_threads": 1})).fit(adata)
    assert counted == [1]
    state = alone.module.state_dict()
    for name, value in side.module.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)
    pd.testing.assert_frame_equal(side.history, alone.history)
    for key in ("epochs_trained", "best_epoch", "cluster_phase"):
        side_value, alone_value = side.metrics["model"][key], alone.metrics["model"][key]
        if key == "cluster_phase":  # its seconds differ
            side_value = {k: v for k, v in side_value.items() if k != "seconds"}
            alone_value = {k: v for k, v in alone_value.items() if k != "seconds"}
        assert side_value == alone_value
    assert side.metrics["model"]["cpu_threads"] == 2  # the run's count, as it was asked


def test_one_process_forks_a_copy_per_member_and_they_train_as_one_after_the_other(
    started, counted
) -> None:
    # Three members at two threads: all at once, one thread each. On Linux one process,
    # started ahead, takes all three (this process imports no Lightning) and forks a copy
    # per member; elsewhere members 1 and 2 go to two processes, member 0 trains here.
    three = {**ENSEMBLE, "model.members": 3}
    adata = tiny_counts()
    config = quick_config(**three, **{"train.num_threads": 2})
    with member_spares(config) as count:
        assert count == len(started) == processes_for(2)
        side = GeneAE(config).fit(adata)
    assert counted == ([0, 1, 2] if FORKS else [1, 2]) and len(started) == processes_for(2)
    if FORKS:
        assert started[0].members == [0, 1, 2]
    alone = GeneAE(quick_config(**three, **{"train.num_threads": 1})).fit(adata)
    state = alone.module.state_dict()
    for name, value in side.module.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)
    pd.testing.assert_frame_equal(side.history, alone.history)


class ExitOnLoad:
    """A job part whose unpickling ends the process that reads it, with exit code 3."""

    def __reduce__(self):
        return os._exit, (3,)


def test_a_member_process_that_dies_is_named_with_how_it_ended(tmp_path) -> None:
    # The process (or, where it forks, the copy) that reads this job exits before training:
    # the parent's error names the member and the exit code.
    job = geneae.train.member_process.MemberJob(
        member=1,
        module=ExitOnLoad(),
        config=None,
        prepared=SimpleNamespace(for_worker=lambda: None),
        start=None,
        n_genes=1,
        threads=1,
        run_dir=None,
        resume=False,
    )
    (process,) = geneae.train.member_process.send_wave([job], tmp_path, 1)
    try:
        with pytest.raises(RuntimeError, match="training member 1 .* exit code 3"):
            process.result(1)
    finally:
        process.stop()
    assert process.process.returncode == (0 if FORKS else 3)


@pytest.mark.parametrize(
    "setting",
    [
        {"train.members_side_by_side": False},  # asked
        {"train.memory_budget_gb": 1e-6},  # a copy of the data would exceed the budget
    ],
)
def test_members_one_after_the_other_when_asked_or_beyond_the_budget(setting, counted) -> None:
    config = {**ENSEMBLE, "train.num_threads": 2, **setting}
    GeneAE(quick_config(**config)).fit(tiny_counts())
    assert counted == []


def test_an_error_in_a_member_process_is_raised_by_the_caller(tmp_path, counted) -> None:
    # Member 1 is told to resume from a resume point that is not there: its process fails,
    # and the caller raises that error, saying which member it was.
    (tmp_path / "checkpoints" / "member1").mkdir(parents=True)
    model = GeneAE(quick_config(**ENSEMBLE, **{"train.num_threads": 2}))
    with pytest.raises(Exception, match="last.ckpt") as caught:
        model.fit(tiny_counts(), run_dir=tmp_path, resume=True)
    assert counted == [1]
    assert any("member 1" in note for note in getattr(caught.value, "__notes__", []))


def test_a_member_process_removes_its_copy_of_the_data_once_read(tmp_path, monkeypatch) -> None:
    # A parent killed before its clean-up must not leave a copy of the data in /tmp.
    folders = []
    made = geneae.model_training.tempfile.TemporaryDirectory

    def remembered(*args, **kwargs):
        folder = made(*args, dir=tmp_path, **kwargs)
        folders.append(folder.name)
        return folder

    monkeypatch.setattr(geneae.model_training.tempfile, "TemporaryDirectory", remembered)
    seen = []
    result = geneae.train.member_process.MemberProcess.result

    def look_then_wait(self, member):
        self.process.wait()
        seen.append(sorted(p.name for p in self.folder.iterdir()))
        return result(self, member)

    monkeypatch.setattr(geneae.train.member_process.MemberProcess, "result", look_then_wait)
    GeneAE(quick_config(**ENSEMBLE, **{"train.num_threads": 2})).fit(tiny_counts())
    assert seen == [["member1.result"]]
    assert folders and not any(Path(f).exists() for f in folders)


def test_a_run_takes_the_member_processes_it_started_first(started) -> None:
    # geneae train starts its members' processes before reading the data (their imports
    # then run beside its own); training hands the job to them, not to new processes.
    config = quick_config(**ENSEMBLE, **{"train.num_threads": 2})
    with member_spares(config) as count:
        assert count == 1 and len(started) == 1
        spare = started[0]
        model = GeneAE(config).fit(tiny_counts())
        assert len(started) == 1  # no process but the spare
        assert spare.members == ([0, 1] if FORKS else [1]) and spare.process.returncode == 0
    assert model.metrics["model"]["members"] == 2


@pytest.mark.parametrize(
    "setting, count",
    [
        ({"train.num_threads": 1}, 0),  # one thread: members one after the other
        ({"train.num_threads": 2, "train.members_side_by_side": False}, 0),
        ({"train.num_threads": 2, "model.members": 1}, 0),
        ({"train.num_threads": 2, "train.memory_budget_gb": 1e-6}, 1),  # the data say no
    ],
)
def test_spares_are_started_only_when_they_may_serve_and_ended_when_not(setting, count) -> None:
    config = quick_config(**{**ENSEMBLE, **setting})
    with member_spares(config) as started:
        assert started == count
        spares = list(geneae.train.member_process._spares)
        GeneAE(config).fit(tiny_counts())
        # Not taken: ended as soon as training knew (not at the end of the run).
        assert all(spare.process.poll() is not None for spare in spares)
    assert not geneae.train.member_process._spares


def test_a_spare_that_died_is_replaced_and_an_unused_one_exits_quietly() -> None:
    with member_spares(quick_config(**ENSEMBLE, **{"train.num_threads": 2})):
        spare = geneae.train.member_process._spares[0]
        spare.process.kill()
        spare.process.wait()
        fresh = geneae.train.member_process.take()
        assert fresh is not spare and fresh.waiting
        fresh.stop()
    # A process sent no job (its stdin closed) ends by itself, with exit code 0.
    unused = geneae.train.member_process.MemberProcess()
    assert unused.process.stdin is not None
    unused.process.stdin.close()
    assert unused.process.wait(timeout=120) == 0
    unused.stop()


def test_the_idle_cores_are_measured_once_while_held(monkeypatch) -> None:
    calls = []

    def measured(seconds=geneae.threads.SAMPLE_SECONDS):
        calls.append(seconds)
        return len(calls)  # a new answer on every measurement

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(geneae.threads, "idle_cores", measured)
    with geneae.threads.hold_idle_cores():
        assert calls == []  # measured when first asked, not before
        first = geneae.threads.choose_threads(None, 8)
        assert geneae.threads.choose_threads(None, 8) == first == (1, "1 of the usable cores idle")
    assert len(calls) == 1
    assert geneae.threads.choose_threads(None, 8)[0] == 2  # measured again outside


def test_the_folders_of_killed_runs_are_removed_and_no_other(tmp_path) -> None:
    # A SIGKILLed run cannot remove its members' folder; the next run that trains members
    # removes every folder whose run no longer runs.
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    # Only in this pid namespace: elsewhere (another container sharing the folder) the same
    # pid may be a live run.
    base = geneae.train.member_folders.FOLDER_PREFIX
    prefix = geneae.train.member_folders.folder_prefix()
    assert prefix.startswith(base) and prefix.endswith(f"-{os.getpid()}-")
    ours = prefix[: -len(f"{os.getpid()}-")]
    killed = tmp_path / f"{ours}{ended.pid}-abc"
    running = tmp_path / f"{ours}{os.getpid()}-def"
    other = tmp_path / f"{ours}xyz"  # not a name of ours with a pid: left alone
    elsewhere = tmp_path / f"{base}0123456789ab-{ended.pid}-ghi"  # another namespace
    for folder in (killed, running, other, elsewhere):
        folder.mkdir()
        (folder / "member1.result").write_bytes(b"x")
    removed = geneae.train.member_folders.sweep_folders(tmp_path)
    assert removed == [killed]
    assert not killed.exists() and running.exists() and other.exists() and elsewhere.exists()


def test_the_pid_namespace_key_follows_the_namespace(monkeypatch) -> None:
    key = geneae.train.member_folders.pid_namespace()
    assert key == geneae.train.member_folders.pid_namespace()  # stable within a process
    real_stat = os.stat

    def other_namespace(path, *args, **kwargs):
        if str(path) == "/proc/self/ns/pid":
            return os.stat_result((0, 12345, 0, 0, 0, 0, 0, 0, 0, 0))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", other_namespace)
    assert geneae.train.member_folders.pid_namespace() != key


def test_no_spares_where_auto_will_probably_pick_a_gpu(monkeypatch) -> None:
    monkeypatch.setattr(geneae.train.member_process, "gpu_likely", lambda: True)
    auto = quick_config(**ENSEMBLE, **{"train.num_threads": 2})
    with member_spares(auto) as started:
        assert started == 0 and not geneae.train.member_process._spares
    # The CPU asked for: the guess does not matter.
    cpu = quick_config(**ENSEMBLE, **{"train.num_threads": 2, "train.accelerator": "cpu"})
    with member_spares(cpu) as started:
        assert started == 1


def test_the_gpu_guess_reads_the_platform(monkeypatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(geneae.train.member_process.platform, "machine", lambda: "arm64")
    assert GPU_LIKELY()
    monkeypatch.setattr(sys, "platform", "linux")
    real_exists = os.path.exists
    nvidia = "/proc/driver/nvidia/version"
    for driver in (True, False):
        monkeypatch.setattr(
            os.path, "exists", lambda p, d=driver: d if p == nvidia else real_exists(p)
        )
        assert GPU_LIKELY() is driver


@pytest.mark.parametrize("accelerator", ["cuda", "gpu", "mps"])
def test_no_spares_when_a_gpu_is_asked_for(accelerator) -> None:
    config = quick_config(**ENSEMBLE, **{"train.num_threads": 2, "train.accelerator": accelerator})
    with member_spares(config) as started:
        assert started == 0 and not geneae.train.member_process._spares


def test_the_member_process_is_started_before_torch_is_imported(in_fresh_interpreter) -> None:
    # Its imports run beside the run's own only if starting it needs none of them.
    code = (
        "import sys\n"
        "from geneae.config import RunConfig\n"
        "from geneae.train.member_process import spares\n"
        "train = {'num_threads': 2, 'accelerator': 'cpu'}\n"
        "config = RunConfig.model_validate({'train': train})\n"
        "with spares(config) as started:\n"
        "    assert started == 1, started\n"
        "    assert 'torch' not in sys.modules\n"
    )
    in_fresh_interpreter(code)
