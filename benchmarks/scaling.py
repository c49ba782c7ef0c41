"""Cost in cells: seconds per epoch and peak memory of the default geneae count model.

Each size runs in its own process on a synthetic sparse NB matrix (:mod:`benchmarks.synthetic`)
of n cells x 2,000 genes, so the peak memory (``ru_maxrss``) is that size's alone. Raw
records go to ``scaling.json``; the figure (log-log) to ``scaling.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    loadavg,
    machine_info,
    merge_records,
    now,
    read_json,
    run_worker,
    save_figure_atomic,
    versions,
)

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
N_GENES = 2000
N_CLUSTERS = 10


def scaling_epochs(n_cells: int) -> int:
    return 3 if n_cells <= 10_000 else 2 if n_cells <= 100_000 else 1


def run_scaling(
    out_dir: Path,
    sizes: list[int],
    *,
    epochs: int | None = None,
    timeout: float | None = None,
    fresh: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    path = out_dir / "scaling.json"
    doc: dict[str, Any] = {}
    for i, n in enumerate(sizes):
        ep = epochs or scaling_epochs(n)
        spec = {"task": "scaling", "n_cells": n, "epochs": ep, "seed": seed}
        t0 = time.perf_counter()
        load0 = loadavg()
        log = out_dir / "logs" / "scaling" / f"cells{n}.log"
        result, tail = run_worker(spec, log_path=log, timeout=timeout)
        rec = {
            "n_cells": n,
            "n_genes": N_GENES,
            "epochs_requested": ep,
            "seed": seed,
            "versions": versions(),
            "machine": machine_info(),
            **(result or {"status": "failed"}),
        }
        if tail and rec.get("status") == "failed":
            rec.setdefault("error", tail.splitlines()[-1])
            rec["log_tail"] = tail
        rec["finished"] = now()
        rec["loadavg_start"], rec["loadavg_end"] = load0, loadavg()
        rec["wall_s"] = time.perf_counter() - t0
        doc = merge_records(
            path, "scaling", [rec], lambda r: (int(r["n_cells"]),), fresh=fresh and i == 0
        )
        print(_progress_line(rec), flush=True)
    plot_scaling(read_json(path) or doc, out_dir / "scaling.png")
    print(f"wrote {path} and {out_dir / 'scaling.png'}")
    return doc


def _progress_line(rec: dict[str, Any]) -> str:
    head = f"[scaling] {rec['n_cells']:>9,} cells: "
    if rec.get("status") != "ok":
        return head + f"{rec.get('status')}: {rec.get('error')}"
    return head + (
        f"{rec['seconds_per_epoch']:.2f} s/epoch over {rec['epochs']} epoch(s), "
        f"peak {rec['peak_rss_mb']:.0f} MB (data {rec['data_mb']:.0f} MB, "
        f"after imports {rec['rss_after_imports_mb']:.0f} MB), "
        f"zeros {100 * rec['sparsity']:.1f}%, generated in {rec['generate_s']:.1f} s"
    )


# -- the worker: one size -----------------------------------------------------------------------
def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    import anndata as ad
    import numpy as np
    import pandas as pd
    import torch

    from benchmarks.common import current_rss_mb, peak_rss_mb, reset_peak_rss
    from benchmarks.synthetic import csr_nbytes, synthetic_counts
    from geneae.config import RunConfig
    from geneae.model import GeneAE
    from geneae.resolve import default_cluster_epochs

    n, epochs, seed = int(spec["n_cells"]), int(spec["epochs"]), int(spec["seed"])
    rss_imports = peak_rss_mb()
    t0 = time.perf_counter()
    x, labels = synthetic_counts(n, N_GENES, N_CLUSTERS, seed=seed)
    generate_s = time.perf_counter() - t0
    obs = pd.DataFrame(
        {"label": pd.Categorical(labels.astype(str))},
        index=pd.RangeIndex(n).astype(str),
    )
    adata = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(N_GENES)]))
    adata.layers["counts"] = x  # the same object: no second copy
    rss_data = current_rss_mb()
    peak_data = peak_rss_mb()
    # Generating the data concatenates blocks (a transient 2x); geneae's own peak starts here.
    fit_peak_measurable = reset_peak_rss()

    # The sparse path: the default count model's standardised input is dense (n x 2,000
    # float32), which would measure densification rather than the training engine.
    config = RunConfig().updated(
        {
            "train.max_epochs": epochs,
            # The default's phase, which a run given few epochs would shorten to them.
            "train.cluster_epochs": default_cluster_epochs(n),
            "train.seed": seed,
            "train.quiet": True,
            "preprocess.scale": False,
        }
    )
    model = GeneAE(config)
    t1 = time.perf_counter()
    model.fit(adata)
    fit_s = time.perf_counter() - t1
    peak_fit = peak_rss_mb() if fit_peak_measurable else None
    timings = model.metrics.get("timings", {})
    minfo = model.metrics.get("model", {})
    return {
        "status": "ok",
        "data_mb": csr_nbytes(x) / 2**20,
        "dense_mb": n * N_GENES * 4 / 2**20,
        "nnz": int(x.nnz),
        "sparsity": float(1 - x.nnz / (n * N_GENES)),
        "n_labels": int(len(np.unique(labels))),
        "generate_s": generate_s,
        "rss_after_imports_mb": rss_imports,
        "rss_after_data_mb": rss_data,
        "peak_rss_after_data_mb": peak_data,
        # Peak RSS from the data in memory to the fitted model: data + geneae's fit.
        "peak_rss_fit_mb": peak_fit,
        "fit_s": fit_s,
        "train_s": timings.get("train_s"),
        "preprocess_s": timings.get("preprocess_s"),
        "seconds_per_epoch": timings.get("seconds_per_epoch"),
        "epochs": minfo.get("epochs_trained"),
        "device": minfo.get("device"),
        "data_resident_on_device": minfo.get("data_resident_on_device"),
        "n_parameters": minfo.get("n_parameters"),
        "torch_threads": torch.get_num_threads(),
        "config": model.config.model_dump(mode="json"),
    }


# -- figure -----------------------------------------------------------------------------------
def plot_scaling(doc: dict[str, Any] | None, path: Path) -> Path | None:
    """Log-log: seconds per epoch vs cells (with a slope-1 guide) and memory vs cells."""
    recs = sorted(
        (r for r in (doc or {}).get("records", []) if r.get("status") == "ok"),
        key=lambda r: r["n_cells"],
    )
    if not recs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["n_cells"] for r in recs]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    spe = [r["seconds_per_epoch"] for r in recs]
    a1.loglog(n, spe, "o-", label="geneae default model")
    a1.loglog(n, [spe[0] * m / n[0] for m in n], "k:", label="linear in cells (guide)")
    a1.set_xlabel("cells")
    a1.set_ylabel("seconds per epoch")
    a1.set_title("Training time per epoch")
    a1.legend()
    a2.loglog(n, [r["peak_rss_mb"] for r in recs], "o-", label="peak RSS of the run")
    if all(r.get("peak_rss_fit_mb") for r in recs):
        fit_peak = [r["peak_rss_fit_mb"] for r in recs]
        a2.loglog(n, fit_peak, "D-", label="peak RSS while fitting (data in memory)")
    a2.loglog(n, [r["data_mb"] for r in recs], "s--", label="sparse counts (CSR)")
    a2.loglog(n, [r["dense_mb"] for r in recs], "kx:", label="same matrix dense float32")
    a2.loglog(n, [r["rss_after_imports_mb"] for r in recs], "^-.", label="process after imports")
    a2.set_xlabel("cells")
    a2.set_ylabel("MB")
    a2.set_title("Memory")
    a2.legend(fontsize=8)
    fig.suptitle(f"synthetic NB counts x {N_GENES} genes")
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)
    return path
