"""What training changes in the process, put back for the caller afterwards.

Training seeds the global random generators (Lightning's ``seed_everything``: Python's,
NumPy's and torch's, and ``PL_GLOBAL_SEED`` in the environment) and sets torch's threads
for the machine's load (:func:`geneae.threads.apply_threads`). A user's own draws and torch
work after :meth:`geneae.GeneAE.fit` must not change because they called it.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

#: Environment variables Lightning's seeding sets.
SEED_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")


@contextlib.contextmanager
def caller_state_kept() -> Iterator[None]:
    """Run the block, then restore the global generators, seeding variables and threads."""
    # NumPy's legacy global generator is the one seeding changes: its state is the point.
    numpy = np.random.get_state()  # noqa: NPY002
    python, cpu = random.getstate(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    threads = torch.get_num_threads()
    environ = {name: os.environ.get(name) for name in SEED_VARIABLES}
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)  # noqa: NPY002
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        for name, value in environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
