"""One benchmark run in its own process: ``python -m benchmarks.worker SPEC.json RESULT.json``.

Its own process means its peak memory (``ru_maxrss``) belongs to this run alone and a crash
cannot take the other runs with it. The result (or the traceback) goes to RESULT.json.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from benchmarks.common import peak_rss_mb, ru_maxrss_mb, write_json_atomic


def main(argv: list[str]) -> int:
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    result: dict = {"status": "failed"}
    try:
        if spec["task"] == "quality":
            from benchmarks.quality import run_one
        elif spec["task"] == "scaling":
            from benchmarks.scaling import run_one
        elif spec["task"] == "speed":
            from benchmarks.speed import run_one
        elif spec["task"] == "gpu":
            from benchmarks.gpu import run_one
        elif spec["task"] == "profile":
            from benchmarks.profile_step import run_one
        elif spec["task"] == "outofcore":
            from benchmarks.outofcore import run_one
        else:
            raise ValueError(f"unknown task {spec['task']!r}")
        result = run_one(spec)
        result.setdefault("status", "ok")
        code = 0
    except Exception as exc:
        traceback.print_exc()
        result = {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
        code = 1
    result["peak_rss_mb"] = peak_rss_mb()
    result["ru_maxrss_mb"] = ru_maxrss_mb()
    result["process_s"] = time.perf_counter() - t0
    write_json_atomic(result_path, result)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
