"""Training one member of an ensemble in a process of its own, beside the others.

The parent writes the member's job (its untrained module, configuration, data tensors and
data-dependent start) to a private temporary folder and starts ``python -m
geneae.train.member_process JOB RESULT``; the child trains the member exactly as the parent
would (:func:`geneae.model_training.train_one`) with the threads it is given, and writes
back the trained weights, history and metrics, or the error that stopped it. A plain
subprocess rather than :mod:`multiprocessing`: nothing of the caller's ``__main__`` is run
again in the child (a user's script without a main guard stays safe). The child dies with
its parent (Linux), so a killed run leaves no training behind it.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from geneae._atomic import atomic_path

if TYPE_CHECKING:
    import pandas as pd

    from geneae.config import RunConfig
    from geneae.model_training import DataStart, TrainedModule
    from geneae.prepared import Prepared

#: prctl(2) option: the signal this process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1
#: Lines of a failed child's stderr quoted in the parent's error.
STDERR_TAIL_LINES = 20


@dataclass
class MemberJob:
    """Everything :func:`geneae.model_training.train_one` needs for one member."""

    member: int
    module: torch.nn.Module
    config: RunConfig  # the member's own (geneae.model_training.member_config)
    prepared: Prepared  # its AnnData reduced to the cell names (Prepared.for_worker)
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


class MemberProcess:
    """One member training in a child process; :meth:`result` waits for it.

    Parameters
    ----------
    job
        The member's job (its data are sent as :meth:`Prepared.for_worker` gives them).
    folder
        A private folder for the job and result files (the parent's temporary folder).
    threads
        The threads the member trains with (:func:`geneae.threads.member_waves`).
    """

    def __init__(self, job: MemberJob, folder: Path, threads: int) -> None:
        self.member = job.member
        self.job_path = folder / f"member{job.member}.job"
        self.result_path = folder / f"member{job.member}.result"
        self.stderr_path = folder / f"member{job.member}.stderr"
        sent = dataclasses.replace(job, prepared=job.prepared.for_worker())
        with open(self.job_path, "wb") as fh:
            pickle.dump(sent, fh, protocol=pickle.HIGHEST_PROTOCOL)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        # The child imports the geneae this process runs, wherever it was imported from.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            [package_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        )
        with open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    __name__,
                    str(self.job_path),
                    str(self.result_path),
                    str(threads),
                    str(os.getpid()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
            )

    def result(self) -> MemberResult:
        """The trained member; re-raises the child's error, or says how the child ended."""
        code = self.process.wait()
        if not self.result_path.exists():
            tail = self.stderr_path.read_text(errors="replace").splitlines()[-STDERR_TAIL_LINES:]
            raise RuntimeError(
                f"the process training member {self.member} of the ensemble ended with "
                f"exit code {code} before it finished"
                + ("; its last output:\n" + "\n".join(tail) if tail else "")
            )
        with open(self.result_path, "rb") as fh:
            status, payload = pickle.load(fh)
        if status == "error":
            error, text = payload
            error.add_note(f"(in the process training member {self.member}):\n{text}")
            raise error
        return payload

    def stop(self) -> None:
        """End the child if it still runs (the parent stops early: an error, a signal)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


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


def run(job: MemberJob, threads: int) -> MemberResult:
    """Train ``job``'s member in this (child) process with ``threads``."""
    torch.set_num_threads(threads)
    trained = train_here(job)
    state = {k: v.detach().to("cpu") for k, v in trained.module.state_dict().items()}
    return MemberResult(state, trained.history, trained.model_metrics, trained.train_s)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # best effort
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def main(argv: list[str]) -> int:
    """``JOB RESULT THREADS PARENT_PID``: train the job's member, write its result."""
    job_path, result_path, threads, parent = Path(argv[0]), Path(argv[1]), *map(int, argv[2:4])
    _die_with_parent(parent)
    with open(job_path, "rb") as fh:
        job: MemberJob = pickle.load(fh)
    # Read once: gone at once, so that a parent killed before its clean-up leaves no copy
    # of the data behind.
    job_path.unlink()
    try:
        outcome: tuple[str, Any] = ("ok", run(job, threads))
    except Exception as error:  # handed to the parent, which raises it
        outcome = ("error", (error, traceback.format_exc()))
        try:
            pickle.dumps(error)
        except Exception:
            outcome = ("error", (RuntimeError(str(error)), traceback.format_exc()))
    with atomic_path(result_path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(outcome, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return 0


if __name__ == "__main__":
    # Run as the imported module, so that what it pickles names geneae.train.member_process
    # (not __main__) and the parent can load it.
    from geneae.train import member_process

    sys.exit(member_process.main(sys.argv[1:]))
