"""Helpers of the reliability suite: tiny data, trivial training, the CLI two ways.

In process (:func:`geneae_cli`) where only the exit code and stderr matter, and in a
subprocess (:func:`cli`, :func:`start`) where the test kills it, races it, or limits it:
``python -m geneae`` with ``PYTHONPATH`` set, so the code under test runs, not whatever
``geneae`` script is installed.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"

# Training made trivial: what these tests check is what happens around it.
FAST = {
    # The clustering phase's default epochs grow as data shrink (400 on these 120 cells);
    # 20, its floor: the runs these tests time their kills and collisions against.
    "train": {"max_epochs": 2, "batch_size": 64, "quiet": True, "cluster_epochs": 20},
    "model": {"hidden": [16], "latent_dim": 2, "members": 1},
    "preprocess": {"n_top_genes": 0},
    "evaluate": {"tsne": False, "umap": False, "max_plot_cells": 100, "report": False},
}


def counts_table(n_cells: int = 120, n_genes: int = 30, seed: int = 0) -> pd.DataFrame:
    """Clustered counts as a cells x genes table with a ``cell_type`` text column."""
    from geneae import datasets

    adata = datasets.synthetic_counts(
        n_cells=n_cells, n_genes=n_genes, n_clusters=3, seed=seed, sparse=False
    )
    frame = pd.DataFrame(
        np.asarray(adata.X, dtype=np.int64), index=adata.obs_names, columns=adata.var_names
    )
    frame["cell_type"] = adata.obs["label"].astype(str).to_numpy()
    return frame


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``python -m geneae`` child: the code under test first."""
    env = dict(os.environ)
    paths = [str(SRC), str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("GENEAE_DEBUG", None)
    env.update(extra or {})
    return env


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command(*args: object) -> list[str]:
    return [sys.executable, "-m", "geneae", *(str(a) for a in args)]


def cli(*args: object, cwd: Path | None = None, timeout: float = 300, **popen) -> Result:
    """Run ``geneae ARGS`` in a subprocess; its exit code, stdout and stderr."""
    done = subprocess.run(
        command(*args),
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **popen,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def start(*args: object, cwd: Path | None = None, **popen) -> subprocess.Popen:
    """Start ``geneae ARGS`` in a subprocess (stdout piped, line-buffered text)."""
    return subprocess.Popen(
        command(*args),
        cwd=cwd,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        **popen,
    )


class Result:
    """Exit code and output of one command."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, err={self.err[-2000:]!r})"

    @property
    def error(self) -> str:
        """The one error line (asserts there is exactly one, and no traceback)."""
        assert "Traceback" not in self.err, self.err
        lines = [line for line in self.err.splitlines() if line.startswith("geneae: error:")]
        assert len(lines) == 1, self.err
        return lines[0]


def geneae_cli(*args: object) -> Result:
    """Run ``geneae ARGS`` in this process (fast: no interpreter start, no imports)."""
    from geneae.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


def refused(result: Result, *fragments: str) -> str:
    """Assert a clean refusal: exit 2, one line on stderr naming each of ``fragments``."""
    assert result.code == 2, result
    line = result.error
    assert len(result.err.strip().splitlines()) == 1, result.err
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def assert_complete_run(run: Path) -> None:
    """``run`` is a finished run: every file, checksums that match, and a model that loads."""
    from geneae.model import GeneAE
    from geneae.saved_model import MODEL_FILES, verify_checksums

    for name in (
        *MODEL_FILES,
        "checksums.sha256",
        "fingerprint.json",
        "results.h5ad",
    ):
        assert (run / name).is_file(), name
    verify_checksums(run)
    GeneAE.load(run)
