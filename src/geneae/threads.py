"""How many CPU threads torch and the evaluation's libraries use: the one place that decides it.

An autoencoder step on a CPU is a few small matrix products and element-wise passes;
torch splits each over its threads and the threads meet at a barrier after every
operation. When another process holds one of the cores, the thread placed there runs only
in its time slices, and every barrier waits for it: on a two-core machine with one core
busy, two threads made training ~11x slower than with the machine idle (issue 16), while
one thread would have lost nothing. So the default is the number of cores that are idle
when training starts (``geneae train``: when the run starts, before it starts its members'
processes, :func:`hold_idle_cores`), measured over a fraction of a second, never more than
torch's own default; ``train.num_threads`` or ``OMP_NUM_THREADS`` overrides it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

# How long the idle cores are measured for, and how idle a core must be to count.
SAMPLE_SECONDS = 0.15
IDLE_SHARE = 0.6


def choose_threads(requested: int | None, default: int) -> tuple[int, str]:
    """``(threads, why)``: ``requested`` if given, else ``OMP_NUM_THREADS``, else the idle cores.

    Parameters
    ----------
    requested
        ``train.num_threads`` (None: decide).
    default
        torch's own choice (its ``get_num_threads()`` at start-up: the cores it may use).
    """
    if requested is not None:
        return max(1, requested), "train.num_threads"
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    idle = _held_idle() if _holding is not None else idle_cores()
    if idle is None:
        return default, "torch's default (core load unknown)"
    threads = max(1, min(default, idle))
    return threads, f"{idle} of the usable cores idle"


def idle_cores(seconds: float = SAMPLE_SECONDS) -> int | None:
    """How many of the cores this process may use were idle over ``seconds`` (Linux).

    A core counts as idle when at least 60% of its time was idle. None where
    ``/proc/stat`` cannot be read (other systems).
    """
    usable = _usable_cpus()
    if usable is None:
        return None
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(seconds)
    second = _cpu_times()
    if second is None:
        return None
    idle = 0
    for cpu in usable:
        if cpu not in first or cpu not in second:
            continue
        (busy0, idle0), (busy1, idle1) = first[cpu], second[cpu]
        total = (busy1 - busy0) + (idle1 - idle0)
        if total > 0 and (idle1 - idle0) / total >= IDLE_SHARE:
            idle += 1
    return idle


def _cpu_times() -> dict[int, tuple[int, int]] | None:
    """Per-core ``(busy, idle)`` jiffies from ``/proc/stat``."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    times = {}
    for line in lines:
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        values = [int(v) for v in fields]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        times[int(name[3:])] = (sum(values[:8]) - idle, idle)
    return times


# Inside hold_idle_cores(): the idle cores, measured at most once ([] until measured).
_holding: list[int | None] | None = None


def _held_idle() -> int | None:
    assert _holding is not None
    if not _holding:
        _holding.append(idle_cores())
    return _holding[0]


@contextlib.contextmanager
def hold_idle_cores() -> Iterator[None]:
    """Measure the idle cores once, when first asked, and keep that for every choice inside.

    A run that starts its own processes before training (its ensemble's members,
    :mod:`geneae.train.member_process`) measures first: those processes would otherwise
    make the cores look busy when training asks.
    """
    global _holding
    outer, _holding = _holding, []
    try:
        yield
    finally:
        _holding = outer


def usable_cores() -> int:
    """How many cores this process may run on (without importing torch)."""
    usable = _usable_cpus()
    return len(usable) if usable is not None else os.cpu_count() or 1


def _usable_cpus() -> list[int] | None:
    """The CPUs this process may run on; None where the system does not say (not Linux)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None


# torch's default: the number of usable cores, remembered before anything here changes it.
_torch_default: int | None = None


def apply_threads(requested: int | None) -> int:
    """Set torch's intra-op threads for this process (see :func:`choose_threads`).

    Called when training starts, so that the load of the machine is measured then.
    """
    global _torch_default
    import torch

    if _torch_default is None:
        _torch_default = int(torch.get_num_threads())
    threads, why = choose_threads(requested, _torch_default)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    logger.info("CPU threads: %d (%s)", threads, why)
    return threads


@contextlib.contextmanager
def library_threads(requested: int | None) -> Iterator[int]:
    """Hold numpy's BLAS and the OpenMP of scikit-learn and torch to the idle cores, inside.

    The evaluation after training (KMeans and its repeats, neighbour searches, PCA) splits
    its work over threads that meet at barriers as torch's do, and by default takes every
    core: with one of two cores busy it took 16-18 s instead of 3.7 s on 10x PBMC (a
    2-epoch run, this project's machine), the collapse :func:`choose_threads` spares
    training. The count is chosen as for training (``requested`` is ``train.num_threads``)
    and applied with threadpoolctl to the libraries loaded; yields it.
    """
    from threadpoolctl import threadpool_limits

    threads, why = choose_threads(requested, usable_cores())
    logger.debug("library threads: %d (%s)", threads, why)
    with threadpool_limits(limits=threads):
        yield threads


def member_waves(members: int, threads: int) -> list[tuple[list[int], int]]:
    """How an ensemble's members share ``threads`` cores: ``[(members, threads each), ...]``.

    A member's training step is a few small matrix products and element-wise passes that a
    second thread barely speeds up, so with two threads or more all the members train at
    once, one process each, with ``threads // members`` threads each (at least one: three
    single-threaded members share two cores well, none of them waits at a barrier for
    another's core). With one thread they train one after the other. On this project's
    2-core machine, mouse bladder, the default's three members: `geneae train` 81.6 s
    against 106.7 s one after the other at two threads (whole process, median of two
    paired runs). Two members at once and then the third on both threads gains nothing:
    90.7 and 91.9 s against 92.3 and 89.0 s all at once (alternated, an Intel Xeon host).
    Each member's thread count follows from ``(members, threads)`` alone, so a run repeated
    with the same count repeats bit for bit.
    """
    at_once = members if threads > 1 else 1
    waves = []
    for first in range(0, members, at_once):
        wave = list(range(first, min(first + at_once, members)))
        waves.append((wave, max(1, threads // len(wave))))
    return waves
