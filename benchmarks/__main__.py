"""``python -m benchmarks [quality|speed|scaling|ablation|outofcore|design|report|all] [...]``.

See README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.common import ALL_DATASETS, BENCHMARKS_MD, DATASETS, DEFAULT_OUT, dataset_name

PARTS = ("quality", "speed", "scaling", "ablation", "outofcore", "design", "report", "all")


def parse(argv: list[str]) -> argparse.Namespace:
    from benchmarks.quality import METHODS
    from benchmarks.scaling import DEFAULT_SIZES
    from benchmarks.wallclock import BUSY_EPOCHS, TIME_TO_MODEL_DATASETS, WALLCLOCK_EPOCHS

    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="geneae side-by-side benchmarks against scanpy PCA and scvi-tools.",
    )
    p.add_argument("part", nargs="?", default="all", choices=PARTS)
    p.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        type=dataset_name,
        help="default: every set for the quality part (the count sets, *_lognorm "
        "(log-normalised), the bulk sets, fine_subtypes (synthetic counts)), the count "
        "sets for the other parts",
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="cap the epochs of every trained model (quality; default: each method's own)",
    )
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    p.add_argument(
        "--report-path",
        type=Path,
        default=BENCHMARKS_MD,
        help="where report writes the Markdown (default: BENCHMARKS.md at the repo root)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=4 * 3600,
        help="seconds per worker process (a quality run, a scaling size, speed)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start the results file over instead of replacing matching records",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="quality: worker processes at a time (each with cpu_count // jobs threads)",
    )
    p.add_argument(
        "--speed-epochs",
        type=int,
        default=10,
        help="speed: time fits of N and 2N epochs; per-epoch time = difference / N",
    )
    p.add_argument(
        "--wallclock-epochs",
        type=int,
        default=WALLCLOCK_EPOCHS,
        help="speed (epoch part): whole processes of N and 2N epochs; more epochs, less "
        "of the run-to-run noise of start-up in the per-epoch figure",
    )
    p.add_argument(
        "--busy-epochs",
        type=int,
        default=BUSY_EPOCHS,
        help="speed (busy part): whole processes of N and 2N epochs with one core busy "
        "(scvi-tools slows down most there; more epochs, less start-up noise)",
    )
    p.add_argument("--speed-dataset", default="pbmc_10x", choices=list(DATASETS))
    p.add_argument(
        "--speed-parts",
        nargs="+",
        default=["step", "epoch", "busy", "to-model", "profile", "gpu"],
        choices=["step", "epoch", "busy", "to-model", "profile", "gpu"],
        help="speed: which measurements to (re)run; the others keep their last results "
        "(gpu: only where there is a GPU; benchmarks.gpu)",
    )
    p.add_argument(
        "--to-model-datasets",
        nargs="+",
        default=list(TIME_TO_MODEL_DATASETS),
        choices=list(TIME_TO_MODEL_DATASETS),
        help="speed: the datasets timed from file to model (others keep their last times)",
    )
    p.add_argument(
        "--ablation",
        default="all",
        choices=("weighting", "ensemble", "all"),
        help="ablation: which study (default both; see benchmarks/ablation.py)",
    )
    p.add_argument(
        "--kmeans-runs",
        type=int,
        default=5,
        help="ablation: KMeans random states averaged per score",
    )
    p.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES))
    p.add_argument(
        "--scaling-epochs",
        type=int,
        default=None,
        help="scaling: epochs per size (default 3 up to 10k cells, 2 up to 100k, 1 beyond)",
    )
    p.add_argument(
        "--ooc-budget-gb", type=float, default=0.25, help="outofcore: train.memory_budget_gb"
    )
    p.add_argument(
        "--ooc-factor",
        type=float,
        default=3.0,
        help="outofcore: the peak-memory file's matrix is this many times the budget",
    )
    p.add_argument(
        "--ooc-cells", type=int, default=None, help="outofcore: cells of that file instead"
    )
    p.add_argument(
        "--ooc-epoch-cells",
        type=int,
        default=100_000,
        help="outofcore: cells of the per-epoch comparison (in memory vs streamed)",
    )
    p.add_argument(
        "--ooc-quality-cells", type=int, default=10_000, help="outofcore: cells of the ARI runs"
    )
    p.add_argument(
        "--ooc-parts",
        nargs="+",
        default=["peak", "epoch", "quality"],
        choices=["peak", "epoch", "quality"],
        help="outofcore: which measurements to (re)run",
    )
    p.add_argument("--design-name", default=None, help="design: the records' config name")
    p.add_argument(
        "--set",
        dest="settings",
        nargs="+",
        action="extend",  # a second --set adds to the first instead of replacing it
        default=[],
        metavar="KEY=VALUE",
        help="design: settings of the default to change, e.g. model.members=3",
    )
    p.add_argument(
        "--samples-seen",
        type=float,
        default=None,
        help="design: epochs from this budget of samples seen (geneae.resolve.default_epochs)",
    )
    p.add_argument("--design-note", default="", help="design: a note kept with the records")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    part = args.part
    # Every BENCHMARKS.md section comes from the quality part; the ablations and design
    # screens are of the count sets.
    count_sets = args.datasets or list(DATASETS)
    if part in ("quality", "all"):
        from benchmarks.quality import run_quality

        run_quality(
            args.datasets or list(ALL_DATASETS),
            args.methods,
            args.seeds,
            args.max_epochs,
            out,
            timeout=args.timeout,
            fresh=args.fresh,
            jobs=args.jobs,
        )
    if part in ("speed", "all"):
        from benchmarks.speed import run_speed

        if "step" in args.speed_parts:
            run_speed(
                out, epochs=args.speed_epochs, dataset=args.speed_dataset, timeout=args.timeout
            )
        from benchmarks.wallclock import write_wallclock

        if "profile" in args.speed_parts:
            from benchmarks.profile_step import run_profile

            run_profile(out, dataset=args.speed_dataset, timeout=args.timeout)
        if "gpu" in args.speed_parts:
            from benchmarks.gpu import run_gpu

            run_gpu(out, timeout=args.timeout)
        wall_parts = tuple(p for p in args.speed_parts if p not in ("step", "profile", "gpu"))
        if wall_parts:
            write_wallclock(
                out,
                wall_parts,
                dataset=args.speed_dataset,
                to_model_datasets=tuple(args.to_model_datasets),
                epochs=args.wallclock_epochs,
                busy_epochs=args.busy_epochs,
            )
    if part in ("scaling", "all"):
        from benchmarks.scaling import run_scaling

        run_scaling(
            out, args.sizes, epochs=args.scaling_epochs, timeout=args.timeout, fresh=args.fresh
        )
    if part in ("ablation", "all"):
        from benchmarks.ablation import run_ablation

        path = run_ablation(out, args.ablation, count_sets, args.seeds, args.kmeans_runs)
        print(f"wrote {path}")
    if part in ("outofcore", "all"):
        from benchmarks.outofcore import run_outofcore

        run_outofcore(
            out,
            budget_gb=args.ooc_budget_gb,
            factor=args.ooc_factor,
            big_cells=args.ooc_cells,
            epoch_cells=args.ooc_epoch_cells,
            quality_cells=args.ooc_quality_cells,
            seeds=tuple(args.seeds),
            parts=tuple(args.ooc_parts),
            timeout=args.timeout,
        )
    if part == "design":
        from benchmarks.design import parse_settings, run_design

        if not args.design_name:
            raise SystemExit("design: name the experiment with --design-name")
        run_design(
            args.design_name,
            count_sets,
            args.seeds,
            parse_settings(args.settings),
            out,
            samples_seen=args.samples_seen,
            note=args.design_note,
            jobs=args.jobs,
            timeout=args.timeout,
        )
    if part in ("report", "all"):
        from benchmarks.report import write_report

        path = write_report(out, args.report_path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
