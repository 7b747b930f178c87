"""Fixtures of the pytest-benchmark suite (`pytest bench/benchmarks/ --benchmark-json FILE`); never part of `pytest tests`.

Options (all comma lists): --bench-models, --bench-runtimes, --bench-precisions, --bench-batches,
--bench-persons, plus --bench-threads, --bench-weights, --bench-max-persons. Every case runs
`Estimator.infer_crops` on the same saved crops; runtimes that are not installed (or precisions
not exportable yet) skip with the reason.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import pytest

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OPENVINO_TELEMETRY", "0")

pytest.importorskip("pytest_benchmark", reason="pip install pytest-benchmark (extra dwpose-edge[bench])")


@dataclass(frozen=True)
class Case:
    model: str
    runtime: str
    precision: str
    batch: int
    persons: int

    @property
    def id(self) -> str:
        return f"{self.model}-{self.runtime}-{self.precision}-b{self.batch}-p{self.persons}"


def _csv(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("dwpose-edge bench")
    g.addoption("--bench-models", default="dwpose-t")
    g.addoption("--bench-runtimes", default="torch,onnxruntime,openvino,ncnn")
    g.addoption("--bench-precisions", default="fp32,fp16,int8")
    g.addoption("--bench-batches", default="1,8")
    g.addoption("--bench-persons", default="1,8")
    g.addoption("--bench-threads", type=int, default=None, help="threads per runtime (default: usable cores)")
    g.addoption("--bench-weights", default=None, help="default: embedded, else 'random'")
    g.addoption("--bench-max-persons", type=int, default=16, help="crops taken from the bench data")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    opt = metafunc.config.getoption
    cases = [Case(m, r, p, int(b), int(n)) for m in _csv(opt("--bench-models")) for r in _csv(opt("--bench-runtimes"))
             for p in _csv(opt("--bench-precisions")) for b in _csv(opt("--bench-batches"))
             for n in _csv(opt("--bench-persons"))]
    metafunc.parametrize("case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def bench_threads(pytestconfig) -> int:
    t = pytestconfig.getoption("--bench-threads")
    return int(t) if t else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@pytest.fixture(scope="session")
def bench_env(pytestconfig, bench_threads):
    """Data, machine description and per-model crops/weights/references, built lazily once per session."""
    from dwpose_edge.bench.crops import default_bench_data
    from dwpose_edge.bench.measure import cuda_info, machine_info
    from dwpose_edge.bench.runner import busy_note

    return {"data": default_bench_data(), "busy": busy_note(bench_threads), "machine": machine_info(bench_threads),
            "cuda": cuda_info(),
            "weights_opt": pytestconfig.getoption("--bench-weights"),
            "max_persons": pytestconfig.getoption("--bench-max-persons"), "models": {}, "runtimes": {}}


def _model_env(env: dict, model: str, threads: int) -> dict:
    """Crops (built once, saved, reloaded), weights and the torch fp32 reference's outputs for `model`."""
    if model in env["models"]:
        return env["models"][model]
    from dwpose_edge.bench.crops import BenchCrops, build_crops
    from dwpose_edge.bench.runner import resolve_bench_weights

    from dwpose_edge.specs import get_spec
    from dwpose_edge.weights import cache_dir

    spec = get_spec(model)
    weights, note = resolve_bench_weights(model, env["weights_opt"])
    data = env["data"]
    crops = build_crops(data.ann_file, data.image_dir, spec.input_size, env["max_persons"])
    path = crops.save(cache_dir() / "bench_crops" / f"{model}_{crops.sha256[:16]}.npz")
    crops = BenchCrops.load(path)  # every case runs on the saved tensors
    m = {"crops": crops, "crops_path": str(path), "weights": weights, "note": note, "reference": None}
    try:
        from dwpose_edge.estimator import Estimator
        from dwpose_edge.postprocess import decode_simcc

        ref = Estimator(model=model, weights=weights, runtime="torch", threads=threads, batch_size=8)
        logits = ref.infer_crops(crops.crops)
        m["reference"] = (logits, decode_simcc(*logits, crops.centers, crops.scales, crops.input_size)[0])
    except Exception as exc:  # noqa: BLE001 - no reference: accuracy fields stay empty
        m["reference_error"] = f"{type(exc).__name__}: {exc}"
    env["models"][model] = m
    return m


def _accuracy(m: dict, est, tmp_dir) -> dict:
    from dwpose_edge.bench.accuracy import ap_table, write_pseudo_gt
    from dwpose_edge.export.validate import agreement

    from dwpose_edge.postprocess import decode_simcc

    crops = m["crops"]
    est.batch_size = 8
    logits = est.infer_crops(crops.crops)
    kp, sc = decode_simcc(*logits, crops.centers, crops.scales, crops.input_size)
    out: dict = {}
    try:
        out["ap_gt"] = ap_table(crops.ann_file, crops, kp, sc)
    except ImportError as exc:
        out["ap_note"] = str(exc).splitlines()[0]
    if m["reference"] is not None:
        ref_logits, ref_kp = m["reference"]
        out["agreement"] = agreement(ref_logits, logits).as_dict()
        if "ap_gt" in out:
            out["ap_vs_ref"] = ap_table(write_pseudo_gt(tmp_dir / "pseudo_gt.json", crops, ref_kp), crops, kp, sc)
    return out


@pytest.fixture(scope="session")
def bench_runtime(bench_env, bench_threads, tmp_path_factory):
    """`get(case)` -> (Estimator, extra_info dict), loaded once per model x runtime x precision; skips with a reason."""

    def get(case: Case):
        key = (case.model, case.runtime, case.precision)
        if key not in bench_env["runtimes"]:
            bench_env["runtimes"][key] = _load(case)
        value = bench_env["runtimes"][key]
        if isinstance(value, str):
            pytest.skip(value)
        return value

    def _load(case: Case):
        from dwpose_edge.bench.runner import ensure_export, skip_reason

        from dwpose_edge.estimator import Estimator

        m = _model_env(bench_env, case.model, bench_threads)
        onnx_source = str(m["weights"]).lower().endswith(".onnx")
        reason = skip_reason(case.runtime, case.precision, "cpu", onnx_source)
        if reason:
            return f"{case.runtime} {case.precision}: {reason}"
        try:
            model_dir = None if case.runtime == "torch" else ensure_export(
                case.model, m["weights"], case.runtime, case.precision, bench_threads)
            t0 = time.perf_counter()
            est = Estimator(model=case.model, weights=None if model_dir else m["weights"], runtime=case.runtime,
                            precision=case.precision, threads=bench_threads, model_dir=model_dir)
            load_ms = (time.perf_counter() - t0) * 1000
        except Exception as exc:  # noqa: BLE001
            return f"{case.runtime} {case.precision} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        crops = m["crops"]
        info = {"model": case.model, "runtime": case.runtime, "precision": case.precision, "device": "cpu",
                "threads": bench_threads, "load_ms": round(load_ms, 1), "weights": str(m["weights"]),
                "reference": case.runtime == "torch" and case.precision == "fp32",
                "reference_name": "torch fp32 (cpu)", "input_size": list(crops.input_size), "n_crops": len(crops),
                "crops_sha256": crops.sha256, "notes": [n for n in (m["note"], bench_env["busy"]) if n],
                "machine": bench_env["machine"],
                "cuda": bench_env["cuda"], "data": {"description": bench_env["data"].description,
                                                    "ann_file": str(bench_env["data"].ann_file)}}
        if model_dir is not None:
            from dwpose_edge.manifest import read_manifest

            art = read_manifest(model_dir).find(case.runtime, case.precision)
            info["model_mb"] = round(sum(p.stat().st_size for p in art.paths(model_dir).values()) / 1e6, 2)
        else:
            info["model_mb"] = round(sum(t.numel() * t.element_size()
                                         for t in est.runtime.model.state_dict().values()) / 1e6, 2)
        ip = getattr(est.runtime, "inference_precision", None)
        if ip is not None:
            from dwpose_edge.bench.measure import precision_name

            info["inference_precision"] = precision_name(ip)
        info.update(_accuracy(m, est, tmp_path_factory.mktemp("acc")))
        return est, info

    return get


@pytest.fixture
def case_crops(case, bench_runtime, bench_env) -> np.ndarray:
    """The first `persons` saved crops (cycled when the data has fewer); skips like `bench_runtime`."""
    bench_runtime(case)
    crops = bench_env["models"][case.model]["crops"].crops
    return np.ascontiguousarray(crops[np.resize(np.arange(len(crops)), case.persons)])
