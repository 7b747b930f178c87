"""dwpose_edge.bench: accuracy-vs-latency benchmark of every runtime x precision on the same crops.

    from dwpose_edge.bench import run_bench
    report = run_bench(models=["dwpose-t"], out_dir="out/bench")   # report.md/.json/.csv + png

`pytest bench/benchmarks/ --benchmark-json FILE` runs the same cases under pytest-benchmark, and
`dwpose-edge bench --from-pytest-benchmark FILE` turns that JSON into the same report.
Importing this package loads neither torch nor a runtime package by itself.
"""
from __future__ import annotations

from .crops import default_bench_data
from .report import from_pytest_benchmark, write_report
from .runner import QUICK, run_bench

__all__ = ["run_bench", "default_bench_data", "write_report", "from_pytest_benchmark", "QUICK"]
