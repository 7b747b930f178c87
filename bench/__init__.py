"""dwpose_edge.bench: accuracy-vs-latency benchmark of every runtime x precision on the same crops.

    from dwpose_edge.bench import run_bench
    report = run_bench(models=["dwpose-t"], out_dir="out/bench")   # report.md/.json/.csv + png

`pytest bench/ --benchmark-json FILE` runs the same cases under pytest-benchmark, and
`dwpose-edge bench --from-pytest-benchmark FILE` turns that JSON into the same report.
Imports stay lazy: importing this package loads neither torch nor a runtime by itself.
"""
from __future__ import annotations

from typing import Any

__all__ = ["run_bench", "default_bench_data", "write_report", "from_pytest_benchmark", "QUICK"]

# `dwpose-edge bench --quick`: ~2-3 minutes on 2 cores with a cold export cache, well under 1 with a warm one
QUICK: dict[str, Any] = {"repeats": 5, "warmup": 2, "persons": (1, 4, 8, 16), "scaling_repeats": 3,
                         "peer_rounds": 2, "max_persons": 16, "max_time_s": 2.0, "cold_repeats": 1,
                         "skip_precisions": {"int8": "left out by --quick (a calibrated int8 export takes minutes per "
                                                     "runtime); run without --quick, or --precisions int8"}}


def __getattr__(name: str):
    if name == "run_bench":
        from .runner import run_bench
        return run_bench
    if name == "default_bench_data":
        from .crops import default_bench_data
        return default_bench_data
    if name in ("write_report", "from_pytest_benchmark"):
        from . import report
        return getattr(report, name)
    raise AttributeError(name)
