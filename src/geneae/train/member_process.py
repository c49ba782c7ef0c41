"""Training the members of an ensemble in processes of their own, beside each other.

A member process is a plain ``python -m geneae.train.member_child PARENT_PID`` (its side
of the exchange: :mod:`geneae.train.member_child`): it
imports what training needs (torch, Lightning: seconds of CPU) and then waits for its jobs.
The parent writes the data tensors and each member's job (its untrained module,
configuration and data-dependent start) to a private temporary folder and sends their paths
and the thread count, one line each, on the process's standard input; each member is trained
exactly as the parent would (:func:`geneae.model_training.train_one`), and its trained
weights, history and metrics, or the error that stopped it, are written back. A plain
subprocess rather than :mod:`multiprocessing`: nothing of the caller's ``__main__`` is run
again (a user's script without a main guard stays safe). Every process dies with its
parent (Linux), so a killed run leaves no training behind it.

On Linux one process serves all the members of a wave: it reads the data once and forks a
copy of itself per job, and the copies share its imports and its data instead of each
paying for them (on the project's 2-core machine an import is ~7.5 s of CPU). A run that
started such a process ahead (``geneae train``) hands it every member, the first included,
so that the run's own process never imports Lightning (:func:`delegates_all`). Forking is
safe there because the process has run no torch operation before it forks: OpenMP's
threads are made in each copy, at its first parallel operation, never inherited. Elsewhere
(macOS forks unsafely once its system frameworks are loaded, Windows cannot fork) each
member has a process of its own (:data:`FORKS`).

Since a process imports before it has a job, ``geneae train`` starts its member processes
first thing (:func:`spares`), so that their imports run beside its own imports and its
reading of the data instead of beside member 0's training; :func:`take` hands them out, and
those a run does not use are ended.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from geneae.config import RunConfig
    from geneae.data_start import DataStart
    from geneae.model_training import TrainedModule
    from geneae.prepared import Prepared

#: Lines of a failed child's stderr quoted in the parent's error.
STDERR_TAIL_LINES = 20
#: Whether one member process forks a copy of itself per member it is sent (see above).
FORKS = sys.platform.startswith("linux")


def processes_for(members: int) -> int:
    """How many member processes train ``members`` members at once (:data:`FORKS`)."""
    return min(members, 1) if FORKS else members


@dataclass
class MemberJob:
    """Everything :func:`geneae.model_training.train_one` needs for one member."""

    member: int
    module: torch.nn.Module
    config: RunConfig  # the member's own (geneae.model_training.member_config)
    prepared: Prepared  # its AnnData reduced to the cell names (Prepared.for_worker)
    """The data: in a process, read once from the file the parent wrote them to, shared by
    its copies."""
    start: DataStart
    n_genes: int
    threads: int
    """The run's CPU threads (reported in its metrics)."""
    run_dir: Path | None
    resume: bool


@dataclass
class MemberResult:
    """What the child sends back: the trained weights and what the parent reports."""

    state: dict[str, torch.Tensor]
    history: pd.DataFrame
    model_metrics: dict[str, Any]
    train_s: float
    epoch_s: float | None


class MemberProcess:
    """A child process that trains members: started first, then sent its jobs.

    The child imports what training needs as soon as it starts; :meth:`send` gives it the
    members to train (several only where it forks, :data:`FORKS`) and :meth:`result` waits
    for them.
    """

    def __init__(self) -> None:
        self.members: list[int] = []
        self.folder: Path | None = None
        # Unnamed: nothing to clean up, whatever ends the parent.
        self.stderr: IO[bytes] = tempfile.TemporaryFile()
        # The child imports the geneae this process runs, wherever it was imported from.
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [package_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        )
        # Member 0's progress bar goes to this run's terminal, as if it trained here.
        terminal = os.dup(sys.stderr.fileno()) if _on_terminal() else None
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "geneae.train.member_child", str(os.getpid())]
                + ([] if terminal is None else [str(terminal)]),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self.stderr,
                env=env,
                pass_fds=() if terminal is None else (terminal,),
            )
        finally:
            if terminal is not None:
                os.close(terminal)

    @property
    def waiting(self) -> bool:
        """Whether the child is alive and has no job yet."""
        return not self.members and self.process.poll() is None

    def send(self, jobs: Sequence[MemberJob], folder: Path, threads: int) -> None:
        """Have the child train ``jobs``' members at once, ``threads`` each (files in ``folder``).

        One job unless the child forks (:data:`FORKS`). The data go as
        :meth:`Prepared.for_worker` gives them.
        """
        assert jobs and (FORKS or len(jobs) == 1), "one job per process where it cannot fork"
        assert all(job.prepared is jobs[0].prepared for job in jobs), "one data set per wave"
        self.members = [job.member for job in jobs]
        self.folder = folder
        data_path = folder / f"data-{self.process.pid}.pickle"
        _write(data_path, jobs[0].prepared.for_worker())
        lines = [f"data\t{data_path}\n"]
        for job in jobs:
            job_path = folder / f"member{job.member}.job"
            _write(job_path, dataclasses.replace(job, prepared=None))
            result_path = self.result_path(job.member)
            lines.append(f"{job.member}\t{job_path}\t{result_path}\t{threads}\n")
        assert self.process.stdin is not None
        try:
            self.process.stdin.write("".join(lines).encode())
            self.process.stdin.close()
        except BrokenPipeError:  # the child has died: result() says how
            pass

    def result_path(self, member: int) -> Path:
        """Where the child writes member ``member``'s result."""
        assert self.folder is not None, "send() the jobs first"
        return self.folder / f"member{member}.result"

    def result(self, member: int) -> MemberResult:
        """Member ``member``, trained; re-raises its error, or says how the child ended.

        Waits for every member sent to the child.
        """
        code = self.process.wait()
        path = self.result_path(member)
        if not path.exists():
            self.stderr.seek(0)
            text = self.stderr.read().decode(errors="replace")
            tail = text.splitlines()[-STDERR_TAIL_LINES:]
            raise RuntimeError(
                f"the process training member {member} of the ensemble ended with "
                f"exit code {code} before it finished"
                + ("; its last output:\n" + "\n".join(tail) if tail else "")
            )
        with open(path, "rb") as fh:
            status, payload = pickle.load(fh)
        if status == "error":
            error, text = payload
            error.add_note(f"(in the process training member {member}):\n{text}")
            raise error
        return payload

    def stop(self) -> None:
        """End the child (and its copies) if it still runs (unused, or the parent stops early)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        self.stderr.close()


def _on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced, or closed
        return False


def _write(path: Path, value: Any) -> None:
    with open(path, "wb") as fh:
        pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)


def delegates_all(callbacks: Sequence[Any]) -> bool:
    """Whether a wave's first member also goes to a member process, not only the others.

    Where one process trains them all (:data:`FORKS`) and it was started ahead of its jobs
    (:func:`spares`), its imports are done: the caller then need not import Lightning
    (seconds of CPU before its members could start). Callbacks (a tuning trial pruned on
    member 0) keep the first member in the caller's process.
    """
    return FORKS and not callbacks and any(spare.waiting for spare in _spares)


def send_wave(jobs: Sequence[MemberJob], folder: Path, threads: int) -> list[MemberProcess]:
    """Start ``jobs`` in member processes (:func:`take`), ``threads`` each; the processes."""
    groups = [list(jobs)] if FORKS else [[job] for job in jobs]
    processes: list[MemberProcess] = []
    try:
        for group in groups:
            processes.append(take())
            processes[-1].send(group, folder, threads)
    except BaseException:
        for process in processes:
            process.stop()
        raise
    return processes


# Member processes started ahead of their jobs by spares(), handed out by take().
_spares: list[MemberProcess] = []


def take() -> MemberProcess:
    """A member process: a spare still waiting for a job if there is one, else a new one."""
    while _spares:
        spare = _spares.pop(0)
        if spare.waiting:
            return spare
        spare.stop()
    return MemberProcess()


def end_spares() -> None:
    """End the spares no one took (the run trains its members another way)."""
    while _spares:
        _spares.pop().stop()


@contextlib.contextmanager
def spares(config: RunConfig) -> Iterator[int]:
    """Start, before anything else of a run of ``config``, the member processes it will use.

    Those that train the ensemble's members beside the first (:func:`processes_for`) when
    they may train side by side, as far as the configuration tells
    (:func:`allows_side_by_side`; none where ``auto`` will probably pick a GPU,
    :func:`gpu_likely`; the data and the device may still say no: then they are ended,
    unused). The idle cores are measured before, and that measurement holds for the whole
    run (:func:`geneae.threads.hold_idle_cores`). Yields the number started.
    """
    from geneae.resolve import members
    from geneae.threads import choose_threads, hold_idle_cores, member_waves, usable_cores

    with hold_idle_cores():
        train = config.train
        count = 0
        if allows_side_by_side(train) and not (train.accelerator == "auto" and gpu_likely()):
            # The members beside the first in training's first wave (none at one thread).
            threads = choose_threads(train.num_threads, usable_cores())[0]
            count = processes_for(len(member_waves(members(config), threads)[0][0]) - 1)
        _spares.extend(MemberProcess() for _ in range(count))
        try:
            yield count
        finally:
            end_spares()


def gpu_likely() -> bool:
    """Whether ``accelerator: auto`` will probably train on a GPU here, told without torch.

    Apple silicon has MPS; a loaded NVIDIA driver shows in ``/proc/driver/nvidia``. Only the
    spares follow this guess (a GPU run never uses them, and they hold ~1 GB while they
    import): a wrong guess on a CPU run costs the head start, not the members side by
    side, which training decides from the device torch reports.
    """
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return True
    return os.path.exists("/proc/driver/nvidia/version")


def allows_side_by_side(train: Any) -> bool:
    """Whether the training settings ``train`` let an ensemble's members train at once.

    ``train.members_side_by_side`` on, an accelerator that may be the CPU, one device and
    node, no data-parallel strategy (:func:`geneae.model_training.side_by_side` adds what
    the data and the device in use tell).
    """
    return train.members_side_by_side and train.one_device


def train_here(job: MemberJob, callbacks: Sequence[Any] = ()) -> TrainedModule:
    """Train ``job``'s member in this process, with the threads torch has now."""
    from geneae.model_training import train_one

    return train_one(
        job.module,
        job.config,
        job.prepared,
        job.start,
        n_genes=job.n_genes,
        threads=job.threads,
        run_dir=job.run_dir,
        resume=job.resume,
        callbacks=callbacks,
    )
