"""pytest-benchmark suite: model x runtime x precision x batch x persons on the same saved crops.

    pytest bench/benchmarks/ --benchmark-json out/bench.json [--bench-runtimes onnxruntime,openvino] [--bench-persons 1,8,16]
    dwpose-edge bench --from-pytest-benchmark out/bench.json --out out/bench_report

Each case times `Estimator.infer_crops(crops[:persons])` with `batch_size = batch` (inference only,
after two warm-up calls); extra_info carries the device, threads, load time, model size and the
accuracy of that runtime (agreement with torch fp32, AP) so the JSON alone makes a report.
Not collected by `pytest tests` (pyproject testpaths = tests).
"""
from __future__ import annotations


def test_infer_crops(benchmark, case, bench_runtime, case_crops):
    est, info = bench_runtime(case)
    est.batch_size = case.batch
    for _ in range(2):  # warm-up: first calls allocate / pick kernels
        est.infer_crops(case_crops)
    benchmark.group = f"{case.model} {case.runtime}"
    benchmark.extra_info.update(info)
    benchmark.extra_info.update(batch=case.batch, persons=case.persons)
    sx, sy = benchmark(est.infer_crops, case_crops)
    assert sx.shape[0] == case.persons and sy.shape[0] == case.persons
