"""Freed memory kept for reuse in geneae's own processes (glibc's malloc), not handed back.

A training step makes and frees tensors of a few MB each (a batch of 256 x 2,000 float32
values is 2 MB), and the evaluation arrays of tens of MB. glibc serves allocations above its
mmap threshold (128 KB, raised on the fly up to 32 MB) with pages fresh from the kernel, and
hands the top of its heap back once more than twice that lies free there; every such page
faults again when it is next used. That happened at every step in the member processes of
a three-member run (one member at two threads faulted no more at 30 epochs than at 10). A
default `geneae train` on 10x PBMC (report off) took 6.3-6.7 million page faults and 12.7 s
of system time that way; with the two limits below, 0.41 million and 3.9 s, and 67.0 s of
wall time instead of 79.2 (medians of three runs in turn, 0.91x paired; peak memory 1,027
MiB instead of 989; this 2-core machine).

:func:`keep_freed_memory` sets both limits in the calling process, where geneae owns it
(the ``geneae`` command and its member processes; forked copies inherit the setting). It
does nothing where the C library is not glibc, or where the user set either limit
(``GLIBC_TUNABLES``' ``glibc.malloc.mmap_threshold`` / ``trim_threshold``, or
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``). Setting any of glibc's other
malloc variables (``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_``) turns its on-the-fly raise of
the threshold off: each allocation above 128 KB is then fresh pages (with
``MALLOC_TOP_PAD_`` set, that run took 143 s and 78 million faults); this setting prevents
it too (70.8 s, 0.43 million).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

#: mallopt's parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Allocations from this size on are mapped (and unmapped when freed): glibc's largest
#: allowed value, so that a training step's and an evaluation's arrays come from the heap.
MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the heap's top beyond this is handed back to the kernel.
TRIM_THRESHOLD = 256 * 2**20

_done = False


def user_chose_malloc_limits(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment sets malloc's mmap or trim threshold (then geneae does not)."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    if any(f"glibc.malloc.{name}=" in tunables for name in ("mmap_threshold", "trim_threshold")):
        return True
    return any(f"MALLOC_{name}_" in environ for name in ("MMAP_THRESHOLD", "TRIM_THRESHOLD"))


def keep_freed_memory() -> bool:
    """Set malloc's mmap and trim thresholds in this process; whether they were set.

    Called once per process; later calls return the first call's answer.
    """
    global _done
    if _done or user_chose_malloc_limits():
        return _done
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # only glibc has it  # noqa: B018
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # no such library (Windows: no CDLL(None))
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _done
