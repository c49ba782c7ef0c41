"""A member process's side: import, wait for the jobs, train each member, write results.

Run as ``python -m geneae.train.member_child PARENT_PID [TERMINAL_FD]`` by
:class:`geneae.train.member_process.MemberProcess`, which describes the exchange. Where it
forks (:data:`~geneae.train.member_process.FORKS`) each member trains in a copy of this
process, which dies with it, as this process dies with its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import pickle
import signal
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geneae._atomic import atomic_path
from geneae.allocator import keep_freed_memory
from geneae.train.member_process import FORKS, MemberJob, MemberResult, train_here

if TYPE_CHECKING:
    from geneae.prepared import Prepared

#: prctl(2) option: the signal this process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


def _read_once(path: Path) -> Any:
    """Unpickle ``path`` and remove it at once.

    Gone at once, so that a parent killed before its clean-up leaves no copy of the data
    behind.
    """
    with open(path, "rb") as fh:
        value = pickle.load(fh)
    path.unlink()
    return value


def run(job: MemberJob, threads: int) -> MemberResult:
    """Train ``job``'s member in this (child) process with ``threads``."""
    import torch

    torch.set_num_threads(threads)
    trained = train_here(job)
    state = {k: v.detach().to("cpu") for k, v in trained.module.state_dict().items()}
    return MemberResult(
        state, trained.history, trained.model_metrics, trained.train_s, trained.epoch_s
    )


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # best effort
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _train_job(
    job_path: Path, result_path: Path, threads: int, data: Prepared, terminal: int | None
) -> None:
    """Train the member of the job in ``job_path`` on ``data``; its outcome to ``result_path``.

    Member 0 writes to ``terminal`` (the run's, where it has one): its progress bar (on
    standard output, shown when standard error is a terminal) shows there as it would in the
    run's own process.
    """
    job: MemberJob = dataclasses.replace(_read_once(job_path), prepared=data)
    if job.member == 0 and terminal is not None:
        for stream in (sys.stdout, sys.stderr):
            os.dup2(terminal, stream.fileno())
    try:
        outcome: tuple[str, Any] = ("ok", run(job, threads))
    except Exception as error:  # handed to the parent, which raises it
        outcome = ("error", (error, traceback.format_exc()))
        try:
            pickle.dumps(error)
        except Exception:
            outcome = ("error", (RuntimeError(str(error)), traceback.format_exc()))
    _write_outcome(result_path, outcome)


def _write_outcome(result_path: Path, outcome: tuple[str, Any]) -> None:
    with atomic_path(result_path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(outcome, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _fork_job(
    job_path: Path, result_path: Path, threads: int, data: Prepared, terminal: int | None
) -> int:
    """Train the job in a forked copy of this process, which dies with it; the copy's pid."""
    server = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the copy: never returns into its parent's loop
        _die_with_parent(server)
        _train_job(job_path, result_path, threads, data, terminal)
        code = 0
    finally:
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str]) -> int:
    """``PARENT_PID [TERMINAL_FD]``; then ``data PATH`` and ``MEMBER JOB RESULT THREADS`` lines.

    Trains each member on the data and writes its result.

    Where this process forks (:data:`FORKS`) each member trains in a copy of it, all at
    once; a copy that dies without its result gets one that says how it ended. No job
    (stdin closed first: the parent did not need this process) ends it quietly.
    """
    _die_with_parent(int(argv[0]))
    keep_freed_memory()  # before the data is read; the forked copies inherit it
    terminal = int(argv[1]) if len(argv) > 1 else None
    # What reading the jobs and training import (torch, Lightning, AnnData: seconds of
    # CPU), imported while no job is here yet, and shared by the forked copies.
    import geneae.model_training
    import geneae.prepared
    import geneae.train.cluster_phase
    import geneae.train.plan
    import geneae.train.trainer  # noqa: F401

    copies: dict[int, tuple[int, Path]] = {}
    data = None
    for line in sys.stdin:
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if fields[0] == "data":
            data = _read_once(Path(fields[1]))
            continue
        member, job_file, result_file, threads = fields
        job_path, result_path = Path(job_file), Path(result_file)
        if not FORKS:
            _train_job(job_path, result_path, int(threads), data, terminal)
            continue
        pid = _fork_job(job_path, result_path, int(threads), data, terminal)
        copies[pid] = (int(member), result_path)
    for pid, (member, result_path) in copies.items():
        _, status = os.waitpid(pid, 0)
        if not result_path.exists():
            code = os.waitstatus_to_exitcode(status)
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            error = RuntimeError(
                f"the process training member {member} of the ensemble ended with {how} "
                "before it finished"
            )
            _write_outcome(result_path, ("error", (error, "")))
    return 0


if __name__ == "__main__":
    # Run as the imported module, so that what it pickles names geneae.train.member_child
    # (not __main__) and the parent can load it.
    from geneae.quick_exit import exit_quickly
    from geneae.train import member_child

    exit_quickly(member_child.main(sys.argv[1:]))
