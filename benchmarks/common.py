"""Shared plumbing: paths, datasets, machine and version facts, atomic JSON, subprocess runs.

This module imports only the standard library at import time, so the parent process that
orchestrates the runs stays small; the heavy packages load inside the worker processes.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
#: The prefix of the folder that carries a worker's spec and result (named by the pid of
#: the harness, so that the next harness removes what a killed one left).
WORKER_FOLDER = "geneae-bench-"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"

# name -> file under the shared data folder (None: loaded from geneae.datasets)
DATASETS: dict[str, str | None] = {
    "pbmc_10x": "pbmc_10x/10X_PBMC_top2000.h5",
    "worm_neuron": "worm_neuron/worm_neuron_cell_top2000.h5",
    "mouse_bladder": "mouse_bladder/mouse_bladder_cell_top2000.h5",
    "cite_cbmc": "cite_cbmc/CITE_CBMC_counts_top2000.h5",
    "pbmc_10x_bundled": None,
    # Whole-genome counts, as most users' files come (every gene; the bladder file is the
    # source's selection of 2,100 cells).
    "worm_neuron_allgenes": "worm_neuron/worm_neuron_cell.h5",
    "mouse_bladder_allgenes": "mouse_bladder/mouse_bladder_cell_select_2100.h5",
}

# Data that are not raw counts (issue 14: geneae is also judged on log-valued and bulk
# data). name -> how it is made: the ``*_lognorm`` sets are the same cells as the count
# set of that name as log1p(normalize_total(1e4)) of its 2,000 HVGs (seurat_v3 on counts,
# as every method's input), with no counts anywhere; ``pbmc68k_lognorm`` is scanpy's
# bundled pbmc68k_reduced (its log-normalised ``raw.X``, 700 x 765, 10 labels); the
# ``*_allgenes_lognorm`` sets are the whole-genome count sets (every gene seen in a cell) as
# log1p(normalize_total(1e4)), the shape a scanpy user holds before any gene selection;
# ``bulk_tcga_like`` is benchmarks.synthetic.synthetic_bulk
# (600 samples x 20,000 genes in TPM, 8 tumour types); ``bulk_estimated_counts`` the same
# tumours as RSEM expected counts (fractional, each sample's depth left in);
# ``bulk_log2_centred`` the same tumours as UCSC Xena's pan-cancer tables (log2(TPM + 1)
# minus each gene's mean: log values, centred, not scaled). The
# ``*_lnmedian`` sets are log1p(normalize_total()) at scanpy's default total, each cell
# scaled to the median of the cells' totals (of the same 2,000 genes): the newer scanpy
# tutorials' form, at a total far below 1e4 on shallow cells. The ``*_lncounts`` sets are
# log1p of the counts themselves (no normalisation) of the same 2,000 genes: what
# ``sc.pp.log1p`` gives when ``normalize_total`` was skipped.
LOGNORM_DATASETS: tuple[str, ...] = (
    "pbmc_10x_lognorm",
    "worm_neuron_lognorm",
    "mouse_bladder_lognorm",
    "cite_cbmc_lognorm",
    "pbmc68k_lognorm",
    "worm_neuron_allgenes_lognorm",
    "mouse_bladder_allgenes_lognorm",
    "pbmc_10x_lnmedian",
    "worm_neuron_lnmedian",
    "mouse_bladder_lnmedian",
    "pbmc_10x_lncounts",
    "worm_neuron_lncounts",
    "mouse_bladder_lncounts",
)
# Single cells in counts per million, not logged (GEO's supplementary tables of many studies;
# what counts become after ambient-RNA removal is of the same kind: not integers, not
# logged): the ``*_cpm`` sets are the count set of that name as normalize_total(1e6) of its
# 2,000 HVGs (seurat_v3 on counts), with no counts anywhere.
CPM_DATASETS: tuple[str, ...] = ("pbmc_10x_cpm", "worm_neuron_cpm", "mouse_bladder_cpm")
# ``bulk_small``: a small study with a weak signal (120 samples x 3,000 genes in TPM, the
# same generator's first draw at that size: seed 41), where the types move few genes.
# ``bulk_tiny``: a cohort of the size of many GEO studies (80 samples x 2,000 genes, 6 types,
# some of 5 samples; the first draw at that size: seed 20).
# ``bulk_pseudo_bladder`` and ``bulk_pseudo_worm``: bulk samples built from real cells
# (benchmarks.pseudobulk: 400 samples in TPM, each a mixture of the cell types of the
# whole-genome count set of that name, 20-60% of it the sample's own type, one of the set's 8
# largest), for real genes' abundances and real types' profiles where the synthetic sets
# draw them. ``bulk_pseudo_bladder_counts``: the same bladder samples as their read counts
# (integers, each sample's depth left in), as featureCounts or HTSeq give them, and
# ``bulk_pseudo_worm_counts`` the worm samples so; ``bulk_read_counts`` the synthetic
# tumours of ``bulk_tcga_like`` so (synthetic_bulk's ``read_counts``). ``bulk_vst`` and
# ``bulk_pseudo_bladder_vst``: the read counts of ``bulk_read_counts`` and
# ``bulk_pseudo_bladder_counts`` as DESeq2's variance-stabilising transformation gives them
# (benchmarks.vst: genes of 10 reads or more, as DESeq2's vignette keeps them, as log2-like
# values with a floor of a few units: the input of DESeq2's plotPCA and of many GEO tables).
# ``bulk_logcpm`` and ``bulk_pseudo_bladder_logcpm``: the same reads as edgeR's log-CPM after
# TMM factors (benchmarks.logcpm, prior count 2, the same genes): the input of limma and of
# many more GEO tables. ``bulk_pseudo_bladder_ntd`` and ``bulk_pseudo_worm_ntd``: the
# bladder and worm samples' reads as DESeq2's normTransform, log2(normalised counts + 1).
BULK_DATASETS: tuple[str, ...] = (
    "bulk_tcga_like",
    "bulk_estimated_counts",
    "bulk_log2_centred",
    "bulk_small",
    "bulk_tiny",
    "bulk_pseudo_bladder",
    "bulk_pseudo_worm",
    "bulk_pseudo_bladder_counts",
    "bulk_pseudo_worm_counts",
    "bulk_read_counts",
    "bulk_vst",
    "bulk_pseudo_bladder_vst",
    "bulk_logcpm",
    "bulk_pseudo_bladder_logcpm",
    "bulk_pseudo_bladder_ntd",
    "bulk_pseudo_worm_ntd",
)
#: Bulk sets held as a log transformation of another bulk set's read counts: the source set
#: and the transformation (``vst`` and ``ntd``, DESeq2's vst and normTransform:
#: benchmarks.vst; ``logcpm``: benchmarks.logcpm).
LOGGED_READS: dict[str, tuple[str, str]] = {
    "bulk_vst": ("bulk_read_counts", "vst"),
    "bulk_pseudo_bladder_vst": ("bulk_pseudo_bladder_counts", "vst"),
    "bulk_logcpm": ("bulk_read_counts", "logcpm"),
    "bulk_pseudo_bladder_logcpm": ("bulk_pseudo_bladder_counts", "logcpm"),
    "bulk_pseudo_bladder_ntd": ("bulk_pseudo_bladder_counts", "ntd"),
    "bulk_pseudo_worm_ntd": ("bulk_pseudo_worm_counts", "ntd"),
}
#: Bulk sets whose values are logs already: the PCA peers take them as given.
LOGGED_BULK: frozenset[str] = frozenset({"bulk_log2_centred", *LOGGED_READS})
#: synthetic_bulk's arguments for each bulk set.
BULK_ARGS: dict[str, dict[str, Any]] = {
    "bulk_tcga_like": {"values": "tpm"},
    "bulk_estimated_counts": {"values": "estimated_counts"},
    "bulk_log2_centred": {"values": "log2_centred"},
    "bulk_read_counts": {"values": "read_counts"},
    "bulk_small": {"n_samples": 120, "n_genes": 3000, "seed": 41},
    "bulk_tiny": {"n_samples": 80, "n_genes": 2000, "n_types": 6, "seed": 20},
}
#: Bulk sets built from the cells of a count set (benchmarks.pseudobulk): the source set and
#: the values returned (pseudobulk's ``values``).
PSEUDOBULK_SETS: dict[str, tuple[str, str]] = {
    "bulk_pseudo_bladder": ("mouse_bladder_allgenes", "tpm"),
    "bulk_pseudo_worm": ("worm_neuron_allgenes", "tpm"),
    "bulk_pseudo_bladder_counts": ("mouse_bladder_allgenes", "counts"),
    "bulk_pseudo_worm_counts": ("worm_neuron_allgenes", "counts"),
}
# Synthetic counts that probe one property, reported in a section of their own (not in the
# count sets' tables across datasets): ``fine_subtypes`` is
# benchmarks.synthetic.synthetic_hierarchy (8,000 cells, 40 subtypes in 5 lineages: labels
# finer than the groups a clustering finds first).
SYNTHETIC_COUNT_DATASETS: tuple[str, ...] = ("fine_subtypes",)
# Small count sets, the size of many plate-based and pilot studies (a few hundred cells):
# ``<set>_n500`` is 500 cells of the count set of that name drawn at random without
# replacement (one fixed draw, the same for every method and seed), all of its genes.
# Reported in a section of their own, not in the count sets' tables across datasets.
SMALL_CELLS = 500
SMALL_COUNT_DATASETS: tuple[str, ...] = tuple(
    f"{name}_n{SMALL_CELLS}" for name in ("pbmc_10x", "worm_neuron", "mouse_bladder", "cite_cbmc")
)
ALL_DATASETS: tuple[str, ...] = (
    *DATASETS,
    *LOGNORM_DATASETS,
    *CPM_DATASETS,
    *BULK_DATASETS,
    *SYNTHETIC_COUNT_DATASETS,
    *SMALL_COUNT_DATASETS,
)


def subsample_of(name: str) -> tuple[str, int] | None:
    """``(count set, cells)`` for a name ``<count set>_n<cells>``, else None.

    The ``*_n500`` sets are reported; other sizes serve design screens across sample counts
    (the same fixed draw for every method and seed).
    """
    match = re.fullmatch(r"(.+)_n(\d+)", name)
    if match is None or match.group(1) not in DATASETS:
        return None
    return match.group(1), int(match.group(2))


def dataset_name(name: str) -> str:
    """argparse type: a known set, or ``<count set>_n<cells>``."""
    if name in ALL_DATASETS or subsample_of(name) is not None:
        return name
    raise argparse.ArgumentTypeError(
        f"unknown dataset {name!r}; choose from {', '.join(ALL_DATASETS)} or <count set>_n<cells>"
    )


def dataset_kind(name: str) -> str:
    """``counts`` (raw counts), ``lognorm`` (single cells' values without counts: logged,
    or CPM) or ``bulk`` (TPM)."""
    if name in LOGNORM_DATASETS or name in CPM_DATASETS:
        return "lognorm"
    return "bulk" if name in BULK_DATASETS else "counts"


def unlogged(name: str) -> float | None:
    """The total each sample is scaled to before the PCA peers' log1p, where a set's values
    are unlogged: a million for bulk TPM and estimated counts (log TPM, edgeR's log-CPM),
    scanpy's 1e4 for single cells in CPM (the peers' input on the ``*_lognorm`` sets); None
    for log values."""
    if name in CPM_DATASETS:
        return 1e4
    if name in BULK_DATASETS and name not in LOGGED_BULK:
        return 1e6
    return None


# Published ARI / NMI on these data (shared/data/README.md); reference ranges, not targets.
PUBLISHED: dict[str, dict[str, Any]] = {
    "pbmc_10x": {
        "ari": 0.7841,
        "nmi": 0.7736,
        "method": "scDeepCluster (Keras), ttgump/scDeepCluster README",
    },
    "worm_neuron": {"ari": 0.52, "nmi": None, "method": "scDeepCluster, original paper"},
    "mouse_bladder": {"ari": 0.58, "nmi": None, "method": "scDeepCluster, original paper"},
}


def shared_data_dir() -> Path:
    """The shared data folder: ``$GENEAE_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("GENEAE_SHARED_DATA")
    return Path(env).expanduser() if env else (REPO.parent / "shared" / "data")


def dataset_path(name: str) -> Path | None:
    rel = DATASETS[name]
    return None if rel is None else shared_data_dir() / rel


def load_dataset(name: str) -> Any:
    """Raw counts (``X`` and ``layers["counts"]``) and labels (``obs["label"]``) as AnnData.

    Every method gets a copy of this same object: raw counts plus labels, nothing else.
    """
    import numpy as np
    import scipy.sparse as sp

    if name in LOGNORM_DATASETS or name in CPM_DATASETS or name in BULK_DATASETS:
        return _load_values(name)
    drawn = subsample_of(name)
    if drawn is not None:
        whole = load_dataset(drawn[0])
        if drawn[1] >= whole.n_obs:
            raise SystemExit(f"{name}: {drawn[0]} has only {whole.n_obs:,} cells")
        draw = np.random.default_rng(0).choice(whole.n_obs, drawn[1], replace=False)
        return whole[np.sort(draw)].copy()
    if name in SYNTHETIC_COUNT_DATASETS:
        from benchmarks.synthetic import synthetic_hierarchy

        counts, types = synthetic_hierarchy()
        return counts_anndata(sp.csr_matrix(counts), types)
    if name not in DATASETS:
        raise SystemExit(f"unknown dataset {name!r}; choose from {', '.join(ALL_DATASETS)}")
    path = dataset_path(name)
    if path is None:
        from geneae import datasets

        raw = datasets.pbmc_10x()
    else:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: dataset file not found; set GENEAE_SHARED_DATA to the shared data folder"
            )
        from geneae.io import read

        raw = read(path)
    counts = raw.layers["counts"] if "counts" in raw.layers else raw.X
    counts = counts.astype(np.float32)
    if sp.issparse(counts):
        counts = sp.csr_matrix(counts)
    label_key = next(
        (k for k in ("label", "labels", "cell_type", "celltype", "Y") if k in raw.obs), None
    )
    if label_key is None:
        raise ValueError(f"{name}: no labels found in obs ({list(raw.obs.columns)})")
    adata = counts_anndata(
        counts, raw.obs[label_key].astype(str).to_numpy(), raw.obs_names, raw.var_names
    )
    adata.obs_names_make_unique()
    adata.var_names_make_unique()
    return adata


def counts_anndata(counts: Any, labels: Any, cells: Any = None, genes: Any = None) -> Any:
    """Counts in ``X`` and ``layers["counts"]``, labels in ``obs["label"]``, nothing else."""
    import anndata as ad
    import pandas as pd

    cells = [f"c{i}" for i in range(counts.shape[0])] if cells is None else list(cells)
    genes = [f"g{j}" for j in range(counts.shape[1])] if genes is None else list(genes)
    obs = pd.DataFrame({"label": [str(v) for v in labels]}, index=cells)
    adata = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=genes))
    adata.layers["counts"] = counts
    return adata


def _load_values(name: str) -> Any:
    """A non-count dataset (see LOGNORM_DATASETS / BULK_DATASETS): ``X`` and obs["label"]."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    if name in LOGGED_READS:
        from benchmarks.logcpm import log_cpm
        from benchmarks.vst import normalised_log2, prefiltered, vst

        source, transform = LOGGED_READS[name]
        reads = load_dataset(source)
        reads = reads[:, prefiltered(reads.X)]
        how = {"vst": vst, "ntd": normalised_log2, "logcpm": log_cpm}[transform]
        x = how(np.asarray(reads.X))
        return ad.AnnData(X=x, obs=reads.obs[["label"]].copy(), var=reads.var[[]])
    if name in PSEUDOBULK_SETS:
        from benchmarks.pseudobulk import PSEUDOBULK_ARGS, pseudobulk

        source, values = PSEUDOBULK_SETS[name]
        cells = load_dataset(source)
        x, types = pseudobulk(
            cells.X, cells.obs["label"].to_numpy(), **PSEUDOBULK_ARGS, values=values
        )
    elif name in BULK_DATASETS:
        from benchmarks.synthetic import synthetic_bulk

        x, types = synthetic_bulk(**BULK_ARGS[name])
    if name in BULK_DATASETS:
        obs = pd.DataFrame(
            {"label": [f"type{t}" for t in types]}, index=[f"s{i}" for i in range(len(types))]
        )
        var = pd.DataFrame(index=[f"g{j}" for j in range(x.shape[1])])
        return ad.AnnData(X=x, obs=obs, var=var)
    if name == "pbmc68k_lognorm":
        import h5py

        path = shared_data_dir() / "pbmc68k_reduced" / "10x_pbmc68k_reduced.h5ad"
        with h5py.File(path, "r") as f:  # a legacy (anndata 0.5) file: read by hand
            names = [c.decode() for c in f["uns/bulk_labels_categories"][()]]
            labels = np.array([names[i] for i in f["obs"][()]["bulk_labels"]])
            g = f["raw.X"]
            shape = tuple(g.attrs["h5sparse_shape"])
            x = sp.csr_matrix((g["data"][()], g["indices"][()], g["indptr"][()]), shape=shape)
            genes = [v.decode() for v in f["raw.var"][()]["index"]]
        obs = pd.DataFrame({"label": labels}, index=[f"c{i}" for i in range(len(labels))])
        return ad.AnnData(X=x.toarray().astype(np.float32), obs=obs, var=pd.DataFrame(index=genes))
    import scanpy as sc

    from benchmarks.quality import select_genes

    source = name.rsplit("_", 1)[0]  # less _lognorm, _lnmedian, _lncounts or _cpm
    a = load_dataset(source)
    if name.endswith("_allgenes_lognorm"):
        sc.pp.filter_genes(a, min_cells=1)
    else:
        a = select_genes(a)
    if name.endswith("_cpm"):
        sc.pp.normalize_total(a, target_sum=1e6)
    elif not name.endswith("_lncounts"):
        # scanpy's default total (None) is the median of the cells' totals
        sc.pp.normalize_total(a, target_sum=None if name.endswith("_lnmedian") else 1e4)
    if not name.endswith("_cpm"):
        sc.pp.log1p(a)
    x = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X)
    return ad.AnnData(
        X=x.astype(np.float32), obs=a.obs[["label"]].copy(), var=pd.DataFrame(index=a.var_names)
    )


# -- facts about the run -------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": cpu or platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "ram_gb": ram_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("geneae", "torch", "scanpy", "scvi-tools", "anndata", "scikit-learn", "scipy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def command_line() -> str:
    """The command as a user would type it (``python -m benchmarks ...``)."""
    return " ".join(["python -m benchmarks", *(shlex.quote(a) for a in sys.argv[1:])])


def ru_maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MB (Linux reports KiB).

    Caveat: Linux carries the parent's peak at fork time over into the child's ru_maxrss
    (through exec), so a worker started by a large parent reports at least the parent's
    size. The parent here stays small (standard library only) for that reason.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far: VmHWM of /proc (this process's own
    address space, nothing inherited), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return ru_maxrss_mb()


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ``clear_refs``); False if unsupported.

    Lets a run measure the peak of one stage (e.g. training) after a stage whose transient
    peak (e.g. generating the data) should not count.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- results files ---------------------------------------------------------------------------
def _mkstemp_beside(path: Path, suffix: str) -> tuple[int, str]:
    """A temporary file next to ``path`` with the usual permissions (mkstemp gives 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return fd, tmp


def write_json_atomic(path: Path, obj: Any) -> None:
    fd, tmp = _mkstemp_beside(path, ".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=1, allow_nan=True, default=_json_default)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = _mkstemp_beside(path, ".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure_atomic(fig: Any, path: Path) -> None:
    fd, tmp = _mkstemp_beside(path, path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def merge_records(
    path: Path,
    kind: str,
    new: Iterable[dict[str, Any]],
    key: Callable[[dict[str, Any]], tuple],
    *,
    fresh: bool = False,
) -> dict[str, Any]:
    """Rewrite ``path`` with ``new`` records replacing those with the same key."""
    old = None if fresh else read_json(path)
    records = {key(r): r for r in (old or {}).get("records", [])}
    for rec in new:
        records[key(rec)] = rec
    commands = [] if old is None else list(old.get("commands", []))
    cmd = command_line()
    if cmd not in commands:
        commands.append(cmd)
    doc = {
        "kind": kind,
        "schema": 1,
        "updated": now(),
        "machine": machine_info(),
        "versions": versions(),
        "commands": commands,
        "records": list(records.values()),
    }
    write_json_atomic(path, doc)
    return doc


# -- worker subprocesses -------------------------------------------------------------------
def run_worker(
    spec: dict[str, Any], *, log_path: Path, timeout: float | None, threads: int | None = None
) -> tuple[dict[str, Any] | None, str]:
    """Run ``python -m benchmarks.worker`` on ``spec`` in its own process.

    ``threads`` caps the worker's OpenMP / MKL threads (default: the libraries' own choice).
    Returns the worker's result (None if it wrote none) and a short error text (the tail of
    its output) for failures.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    from geneae.train.member_folders import folder_prefix, sweep_folders

    # A harness killed mid-run cannot remove its folder: the next one does.
    sweep_folders(base=WORKER_FOLDER)
    with tempfile.TemporaryDirectory(prefix=folder_prefix(WORKER_FOLDER)) as tmp:
        spec_path = Path(tmp) / "spec.json"
        result_path = Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        if threads is not None:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[var] = str(threads)
        cmd = [sys.executable, "-m", "benchmarks.worker", str(spec_path), str(result_path)]
        with open(log_path, "w", encoding="utf-8") as log:
            try:
                proc = subprocess.run(
                    cmd,
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
                rc: int | str = proc.returncode
            except subprocess.TimeoutExpired:
                rc = f"timeout after {timeout:.0f} s"
        result = None
        if result_path.is_file():
            result = json.loads(result_path.read_text(encoding="utf-8"))
    tail = ""
    if result is None or result.get("status") == "failed":
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        tail = f"worker exit {rc}; log {log_path.name}:\n" + "\n".join(lines[-25:])
    return result, tail


def run_part(
    spec: dict[str, Any], out_dir: Path, name: str, timeout: float | None
) -> dict[str, Any] | None:
    """Run a one-worker part (``spec["task"]``) and write its result to ``NAME.json``.

    The worker's output goes to ``logs/NAME.log``; a failed run prints the log's tail and
    leaves the previous ``NAME.json`` as it was. Returns the result, or None on failure.
    """
    result, tail = run_worker(spec, log_path=out_dir / "logs" / f"{name}.log", timeout=timeout)
    path = out_dir / f"{name}.json"
    if result is None or result.get("status") != "ok":
        print(f"[{name}] failed; {path} left as it was.\n{tail}", flush=True)
        return None
    write_json_atomic(path, result)
    return result


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    import math

    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return None, None, 0
    m = sum(vals) / len(vals)
    sd = (sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
    return m, sd, len(vals)


def current_rss_mb() -> float | None:
    """Resident memory of this process now (from /proc; None where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def loadavg() -> list[float] | None:
    """1-, 5- and 15-minute load averages (other processes competing for the cores)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
