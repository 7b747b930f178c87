"""The accuracy-vs-latency benchmark: report files, rows, reference agreement, skips, plot, pytest-benchmark JSON.

One tiny real run (dwpose-t, torch + onnxruntime, 2 repeats, 4 persons, 1 thread) in its own cache.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dwpose_edge.bench.plot import pareto_front
from dwpose_edge.bench.report import from_pytest_benchmark, markdown, write_report

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("bench_cache")
    mp.setenv("DWPOSE_EDGE_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def bench_run(cache, tmp_path_factory):
    from dwpose_edge.bench.runner import run_bench

    out = tmp_path_factory.mktemp("bench_out")
    report = run_bench(models=["dwpose-t"], runtimes=["torch", "onnxruntime"], precisions=["fp32", "fp16", "int8"],
                       batches=(1, 2), threads=1, out_dir=out, weights="random", repeats=2, warmup=1,
                       persons=(1, 2), scaling_repeats=1, peer_persons=2, max_persons=4, progress=False,
                       skip_precisions={"int8": "left out by this test (calibrated export takes minutes)"})
    return report, out


def _row(report, runtime, precision):
    return next(r for r in report["rows"] if r["runtime"] == runtime and r["precision"] == precision)


def test_report_files_exist_and_parse(bench_run):
    report, out = bench_run
    doc = json.loads((out / "report.json").read_text())
    assert doc["format"] == "dwpose-edge-bench/1" and doc["rows"] == json.loads(json.dumps(report["rows"]))
    with open(out / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["runtime"], r["precision"]) for r in rows] == [(r["runtime"], r["precision"]) for r in report["rows"]]
    md = (out / "report.md").read_text()
    assert "| torch **(ref)** | fp32 | ok |" in md and "| onnxruntime | fp32 | ok |" in md
    assert "NO TRAINED WEIGHTS" in md and "sha256" in md
    png = (out / "accuracy_vs_latency.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_expected_rows_and_skips(bench_run):
    report, _ = bench_run
    keys = [(r["runtime"], r["precision"]) for r in report["rows"]]
    assert keys[0] == ("torch", "fp32")  # the reference runs first
    assert sorted(keys) == sorted((rt, p) for rt in ("torch", "onnxruntime") for p in ("fp32", "fp16", "int8"))
    assert _row(report, "torch", "fp16")["status"].startswith("skipped: torch fp16 runs on CUDA only")
    reason = "skipped: left out by this test (calibrated export takes minutes)"
    assert _row(report, "onnxruntime", "int8")["status"] == reason
    assert _row(report, "torch", "int8")["status"].startswith("skipped:")
    for r in report["rows"]:
        assert r["status"] == "ok" or r["status"].startswith("skipped: "), r


def test_exported_rows_carry_the_device_check(bench_run):
    report, out = bench_run
    for precision in ("fp32", "fp16"):
        check = _row(report, "onnxruntime", precision)["device_check"]
        assert check["passed"] and check["got"] >= check["needed"] and check["radius_px"] == 1.0
    assert "device_check" not in _row(report, "torch", "fp32")  # no export: nothing to re-check
    assert "Device check (each export's gate re-run on this CPU when opened): onnxruntime/fp32 pass" in (
        out / "report.md").read_text()


def test_reference_row_agrees_with_itself(bench_run):
    report, _ = bench_run
    ref = _row(report, "torch", "fp32")
    assert ref["reference"] and report["models"]["dwpose-t"]["reference"] == "torch fp32 (cpu)"
    a = ref["agreement"]
    assert a["within_1px"] == 1.0 and a["within_5px"] == 1.0 and a["mean_px_error"] == 0.0
    assert a["max_logit_diff"] == 0.0
    assert ref["ap_vs_ref"]["wholebody"] == pytest.approx(1.0)
    assert set(ref["ap_gt"]) == {"body", "foot", "face", "lefthand", "righthand", "wholebody"}


def test_latency_memory_and_scaling_recorded(bench_run):
    report, _ = bench_run
    assert report["settings"]["threads"] == 1 and report["machine"]["cpu"]
    assert len(report["models"]["dwpose-t"]["crops_sha256"]) == 64
    for runtime in ("torch", "onnxruntime"):
        r = _row(report, runtime, "fp32")
        assert set(r["latency"]) == {"b1", "b2"} and r["latency"]["b1"]["median_ms"] > 0
        assert r["load_ms"] > 0 and r["peak_rss_mb"] >= r["rss_before_load_mb"] > 0
        assert set(r["scaling"]) == {"1", "2"}
        assert r["scaling"]["2"]["looped"]["per_person"]["median_ms"] > 0
        assert r["e2e_ms_per_person"] > 0
    assert _row(report, "onnxruntime", "fp32")["agreement"]["within_1px"] >= 0.995
    assert _row(report, "torch", "fp32")["speedup_vs_torch"] == 1.0


def test_peers_recorded(bench_run):
    report, out = bench_run
    peers = report["peers"]["dwpose-t"]
    assert peers["status"] == "ok" and peers["persons"] == 2
    loop = peers["peers"]["ort_loop"]
    assert loop["status"] == "ok" and loop["agreement"]["within_1px"] == 1.0
    ov = peers["peers"]["ours_openvino"]  # the same ONNX file on OpenVINO: the same keypoints
    assert ov["status"] == "ok" and ov["agreement"]["within_1px"] >= 0.995 and ov["rounds"] == report["peers"][
        "dwpose-t"]["rounds"]
    rtm = peers["peers"]["rtmlib"]
    assert rtm["status"] == "ok" or rtm["status"].startswith("skipped: rtmlib not installed")
    goal = report["goal"]["dwpose-t"]
    assert goal["target"].startswith(">= 1.5x rtmlib")
    if rtm["status"] == "ok":
        assert goal["ratio"] > 0 and goal["status"] in ("met", "NOT met")
        fastest = min(peers["ours"]["per_person"]["median_ms"], ov["per_person"]["median_ms"])
        assert goal["best_ms_per_person"] == fastest and goal["ratio"] == round(rtm["per_person"]["median_ms"] / fastest, 2)
        assert "rtmlib" in (out / "report.md").read_text()


def test_pareto_front():
    pts = [(10, 0.5), (5, 0.4), (20, 0.6), (15, 0.45), (5, 0.3)]
    assert pareto_front(pts) == [(5, 0.4), (10, 0.5), (20, 0.6)]


def test_pytest_benchmark_json_to_report(cache, tmp_path):
    """Run the real suite on one case in a subprocess and turn its JSON into the same report."""
    out_json = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "pytest", "bench/benchmarks/", "-q", "-p", "no:cacheprovider",
           "--bench-runtimes", "onnxruntime",
           "--bench-precisions", "fp32", "--bench-batches", "2", "--bench-persons", "2", "--bench-max-persons", "2",
           "--bench-threads", "1", "--bench-weights", "random", "-k", "test_infer_crops and onnxruntime and fp32",
           "--benchmark-json", str(out_json), "--benchmark-min-rounds", "2", "--benchmark-max-time", "0.05"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = from_pytest_benchmark(out_json)
    (row,) = report["rows"]
    assert (row["runtime"], row["precision"], row["threads"]) == ("onnxruntime", "fp32", 1)
    assert row["latency"]["b2"]["median_ms"] > 0 and row["load_ms"] > 0 and row["model_mb"] > 1
    assert row["agreement"]["within_1px"] >= 0.995
    assert report["cases"][0]["persons"] == 2 and report["machine"]["cpu"]
    paths = write_report(report, tmp_path / "report")
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert "| onnxruntime | fp32 | ok |" in markdown(report)


def test_cli_from_pytest_benchmark_rejects_foreign_json(tmp_path):
    import argparse

    from dwpose_edge.bench.cli import add_parser
    from dwpose_edge.errors import DwposeEdgeError

    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"benchmarks": [{"name": "t", "extra_info": {}, "stats": {}}]}))
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "--from-pytest-benchmark", str(bad), "--out", str(tmp_path / "o")])
    with pytest.raises(DwposeEdgeError, match="pytest-benchmark"):
        args.func(args)
