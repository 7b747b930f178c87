"""`run_bench`: every runtime x precision on the same crops; accuracy, latency, memory, peers, persons scaling.

Plan of one run, per model:
1. crops built once from the data (ground-truth boxes), saved, sha256 recorded;
2. exports (validated, cached under the cache dir) for every non-torch row;
3. the reference row first (torch fp32 on CUDA when present, else on CPU; onnxruntime fp32 for an
   .onnx source), then every other row, each in its own process (see `worker.py`);
4. the peers (rtmlib, a plain onnxruntime loop) against our onnxruntime fp32 on the same ONNX file;
5. AP against the ground truth and against the reference's keypoints (pseudo ground truth);
6. report.md / report.json / report.csv / accuracy_vs_latency.png.
"""
from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dwpose_edge.bench.accuracy import ap_table, write_pseudo_gt
from dwpose_edge.auto import choose
from dwpose_edge.bench.coldstart import cold_start_table
from dwpose_edge.bench.crops import BenchCrops, DataSource, build_crops, default_bench_data, default_calibration_data
from dwpose_edge.bench.derive import derive
from dwpose_edge.bench.measure import cuda_info, machine_info, summarize
from dwpose_edge.bench.report import write_report
from dwpose_edge.embedded import default_weights
from dwpose_edge.errors import DwposeEdgeError, InputError, WeightsError
from dwpose_edge.export.cache import cached_export
from dwpose_edge.manifest import read_manifest
from dwpose_edge.onnx_file import is_onnx_path
from dwpose_edge.runtimes import precisions as table
from dwpose_edge.specs import get_spec

RUNTIMES = table.RUNTIMES
PRECISIONS = table.PRECISIONS
# runtime -> Python packages it needs (to run, and for ncnn to convert)
RUNTIME_PACKAGES = {"torch": ("torch",), "onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino",),
                    "ncnn": ("ncnn", "pnnx"), "litert": ("ai_edge_litert", "litert_torch")}
EXTRAS = {"openvino": "dwpose-edge[openvino]", "ncnn": "dwpose-edge[ncnn]",
          "litert": "dwpose-edge[litert,litert-export]"}
RANDOM_NOTE = ("NO TRAINED WEIGHTS: the benchmark runs UNTRAINED seeded weights ('random'). Every AP against "
               "the ground truth is meaningless (near 0), and an untrained model's keypoints hardly depend on the "
               "input, so agreement with the reference and AP vs reference are trivially ~100% too: they only show "
               "the plumbing works (max logit diff still shows the numeric error). Latency and memory are valid. "
               "Pass --weights <mmpose .pth | registry name | .onnx> for real accuracy.")
WORKER_TIMEOUT_S = 3600


# `dwpose-edge bench --quick`: ~2-3 minutes on 2 cores with a cold export cache, well under 1 with a warm one
QUICK: dict[str, Any] = {"repeats": 5, "warmup": 2, "persons": (1, 4, 8, 16), "scaling_repeats": 3,
                         "peer_rounds": 2, "max_persons": 16, "max_time_s": 2.0, "cold_repeats": 1,
                         "skip_precisions": {"int8": "left out by --quick (a calibrated int8 export takes minutes per "
                                                     "runtime); run without --quick, or --precisions int8"}}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ORT_DISABLE_TELEMETRY", "1")
    env.setdefault("OPENVINO_TELEMETRY", "0")
    return env


def busy_note(threads: int) -> str | None:
    """A warning when other processes already keep the cores busy (timings then inflate and scatter)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load < 0.5 * cores:
        return None
    return (f"BUSY MACHINE: load average {load:.1f} on {cores} cores before the run. Multi-threaded runtimes "
            f"suffer most (threads wait on descheduled threads), so latencies are inflated and noisy; compare "
            f"rows of this run only, rerun on an idle machine, or try --threads 1 (this run: {threads}).")


def resolve_bench_weights(model: str, weights: Any) -> tuple[Any, str | None]:
    """(weights to use, note): the embedded default when there is one, else 'random' with the loud note."""
    if weights is not None:
        return weights, (RANDOM_NOTE if weights == "random" else None)

    try:
        return os.fspath(default_weights(model)), None
    except WeightsError:
        return "random", RANDOM_NOTE


def _missing_packages(runtime: str) -> list[str]:
    return [p for p in RUNTIME_PACKAGES[runtime] if importlib.util.find_spec(p) is None]


def skip_reason(runtime: str, precision: str, device: str, onnx_source: bool) -> str | None:
    """Why a row cannot run here, or None."""
    if runtime not in RUNTIMES:
        return f"unknown runtime (choose from {', '.join(RUNTIMES)})"
    if precision not in PRECISIONS:
        return f"unknown precision (choose from {', '.join(PRECISIONS)})"
    missing = _missing_packages(runtime)
    if missing:
        return f"package {', '.join(missing)} not installed (pip install '{EXTRAS.get(runtime, missing[0])}')"
    if runtime == "torch" and onnx_source:
        return "torch cannot run an .onnx source"
    entry = table.SUPPORT.get((runtime, precision))
    if entry is None:
        return (f"{runtime} {precision} is not a supported runtime "
                f"(use {'/'.join(table.runtimes_of(precision)) or 'another precision'} {precision})")
    if entry.devices is not None and device not in entry.devices:
        where = "the CPU" if entry.devices == ("cpu",) else "/".join(d.upper() for d in entry.devices)
        return f"{runtime} {precision} runs on {where} only (" + (
            "no CUDA GPU here)" if "cuda" in entry.devices else f"not on {device})")
    return table.cpu_feature_missing(runtime, precision)


def ensure_export(model: str, weights: Any, runtime: str, precision: str, threads: int | None,
                  calib: DataSource | None = None) -> Path:
    """The Estimator's export cache folder of this runtime x precision (exported and validated once).

    int8 is calibrated on `calib` (default: `default_calibration_data()`) with allow_accuracy_loss=True:
    the benchmark measures the loss (gate result in the row) instead of refusing the row.
    """
    if precision != "int8":
        return cached_export(model, weights, runtime, precision, threads=threads)
    calib = calib or default_calibration_data()
    return cached_export(model, weights, runtime, precision, threads=threads, calib=os.fspath(calib.ann_file),
                         calib_images=os.fspath(calib.image_dir), allow_accuracy_loss=True)


def _export_validation(model_dir: str, runtime: str, precision: str) -> dict:
    """The export's own check of this artifact (manifest.json), e.g. the int8 accuracy gate."""
    return dict(read_manifest(model_dir).find(runtime, precision).validation)


def _run_worker(job: dict, work: Path, name: str) -> dict:
    """Run one job in a fresh interpreter; returns its result or {'status': 'failed: ...'}."""
    job_path = work / f"{name}.job.json"
    job["out"] = os.fspath(work / f"{name}.result.json")
    job_path.write_text(json.dumps(job))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "dwpose_edge.bench.worker", os.fspath(job_path)],
                              capture_output=True, text=True, env=_env(), timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"status": f"failed: timed out after {WORKER_TIMEOUT_S} s"}
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return {"status": f"failed: {lines[-1][:300] if lines else f'exit code {proc.returncode}'}",
                "stderr_tail": "\n".join(lines[-15:])}
    result = json.loads(Path(job["out"]).read_text())
    result["process_s"] = round(time.perf_counter() - t0, 2)
    return result


def _weights_label(weights: Any) -> str:
    if weights == "random":
        return "random (untrained, seeded)"
    return os.path.basename(os.fspath(weights)) if isinstance(weights, (str, os.PathLike)) else str(weights)


def run_bench(models: Sequence[str] = ("dwpose-t",), runtimes: Sequence[str] = RUNTIMES,
              precisions: Sequence[str] = PRECISIONS, data_ann: str | os.PathLike | None = None,
              data_images: str | os.PathLike | None = None, batches: Sequence[int] = (1, 8),
              threads: int | None = None, out_dir: str | os.PathLike = "out/bench", weights: Any = None,
              repeats: int = 20, progress: bool = True, *, warmup: int = 3, persons: Sequence[int] = (1, 4, 8, 16),
              scaling_repeats: int = 10, peers: bool = True, peer_persons: int = 8, peer_rounds: int = 4,
              max_persons: int | None = None,
              max_time_s: float | None = None, calib: DataSource | None = None,
              skip_precisions: dict[str, str] | None = None, plot: bool = True, cold_repeats: int = 3) -> dict:
    """Benchmark accuracy and latency of every runtime x precision; write the report files into `out_dir`.

    `weights`: None = the embedded default (or 'random' with a loud note until one exists), an mmpose
    .pth / registry name, 'random', or an .onnx file (then the reference is onnxruntime fp32).
    `threads`: intra-op threads for every runtime (default: all usable cores), recorded in the report.
    `max_time_s`: time budget of one measurement (at least 3 timed calls), None = always `repeats`.
    `calib`: int8 calibration data (default: a procedural set other than the evaluated one).
    `skip_precisions`: precision -> reason, rows listed as skipped without running (--quick skips int8).
    `persons`: persons per image for the end-to-end scaling; `peer_persons`: for the peers and the
    end-to-end column; `peer_rounds`: alternating rounds of ours / rtmlib / plain loop (each a fresh
    process: more rounds average out the machine's drift); `max_persons`: crops taken from the data (None = all).
    `cold_repeats`: fresh processes per runtime for the cold-start table (import, load, first keypoints,
    peak RSS) of every fp32 row that ran; 0 = none.
    Returns the report dict (also written as report.json).
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if (data_ann is None) != (data_images is None):
        raise InputError("give both data_ann and data_images, or neither (default bench data)")
    source = (default_bench_data() if data_ann is None else
              DataSource(Path(data_ann), Path(data_images), f"{os.path.basename(os.fspath(data_ann))}"))
    if report_busy := busy_note(threads):
        print(f"\n*** {report_busy}\n", file=sys.stderr)
    gpu = cuda_info() if importlib.util.find_spec("torch") else None
    device = "cuda" if gpu else "cpu"
    batches = [int(b) for b in batches]
    persons = [int(p) for p in persons]
    report: dict = {
        "format": "dwpose-edge-bench/1", "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(threads), "cuda": gpu,
        "settings": {"models": list(models), "runtimes": list(runtimes), "precisions": list(precisions),
                     "batches": batches, "threads": threads, "repeats": repeats, "warmup": warmup,
                     "persons": persons, "scaling_repeats": scaling_repeats, "peer_persons": peer_persons,
                     "peer_rounds": peer_rounds, "max_persons": max_persons, "max_time_s": max_time_s},
        "data": {"ann_file": os.fspath(source.ann_file), "image_dir": os.fspath(source.image_dir),
                 "description": source.description, "synthetic": source.synthetic},
        "method": {
            "latency": "inference only (runtime.infer on the saved crops), ms per crop = call time / batch; "
                       f"{warmup} warm-up calls then median and IQR over {repeats} calls",
            "end_to_end": "Estimator(image, boxes): crop + infer + decode, ms per image and per person; "
                          "batched = batch_size 16, looped = batch_size 1",
            "memory": "each row runs in a fresh process; peak RSS = VmHWM after load + timings (before the "
                      "accuracy pass); 'before load' = RSS after imports",
            "cold_start": "a fresh `python -c` per run: import dwpose_edge, Estimator(...) on the row's export "
                          "folder (torch: the weights), first keypoints of one person; medians over interleaved "
                          "runs; total = from process launch, interpreter start included; peak RSS = VmHWM (the child's own)",
            "agreement": "argmax keypoints vs the reference on the same crops, in crop (model input) pixels",
            "ap_vs_reference": "COCO-WholeBody AP with the reference's keypoints as ground truth (all 133 "
                               "labelled, area = box area)",
        },
        "notes": [report_busy] if report_busy else [], "models": {}, "rows": [], "peers": {},
    }
    jobs_total = sum(len(runtimes) * len(precisions) + 1 for _ in models)
    bar = tqdm(total=jobs_total, desc="bench", unit="row", disable=not progress)
    work = Path(tempfile.mkdtemp(prefix="dwpose_bench_"))
    try:
        for model in models:
            spec = get_spec(model)
            w, note = resolve_bench_weights(model, weights)
            if note and note not in report["notes"]:
                report["notes"].append(note)
                print(f"\n*** {note}\n", file=sys.stderr)
            onnx_source = is_onnx_path(w)
            bar.set_description(f"{model}: crops")
            crops = build_crops(source.ann_file, source.image_dir, spec.input_size, max_persons)
            crops_path = crops.save(work / f"{model}_crops.npz")
            ref_key = ("onnxruntime", "fp32", "cpu") if onnx_source else ("torch", "fp32", device)
            report["models"][model] = {"weights": _weights_label(w), "input_size": list(spec.input_size),
                                       "n_crops": len(crops), "crops_sha256": crops.sha256,
                                       "reference": f"{ref_key[0]} {ref_key[1]} ({ref_key[2]})"}
            plan = []  # (runtime, precision, device)
            for runtime in runtimes:
                for precision in precisions:
                    dev = device if runtime == "torch" else "cpu"
                    plan.append((runtime, precision, dev))
                    if runtime == "torch" and dev == "cuda" and precision == "fp32":
                        plan.append((runtime, precision, "cpu"))  # the CPU user's torch too
            if ref_key not in plan:
                plan.insert(0, ref_key)
            plan.sort(key=lambda k: k != ref_key)
            rows = []
            ref_logits = work / f"{model}_ref_logits.npz"
            for runtime, precision, dev in plan:
                name = f"{model}_{runtime}_{precision}_{dev}"
                row: dict = {"model": model, "runtime": runtime, "precision": precision, "device": dev,
                             "reference": (runtime, precision, dev) == ref_key, "threads": threads}
                reason = (skip_precisions or {}).get(precision) or skip_reason(runtime, precision, dev, onnx_source)
                if reason:
                    row["status"] = f"skipped: {reason}"
                    rows.append(row)
                    bar.update(1)
                    continue
                model_dir = None
                if runtime != "torch":
                    bar.set_description(f"{model}: export {runtime} {precision}")
                    try:
                        t_export = time.perf_counter()
                        model_dir = os.fspath(ensure_export(model, w, runtime, precision, threads, calib))
                        row["export_s"] = round(time.perf_counter() - t_export, 1)  # ~0 when cached
                        row["export_validation"] = _export_validation(model_dir, runtime, precision)
                    except Exception as exc:  # noqa: BLE001 - an export failure fails its row only
                        row["status"] = f"failed: export: {type(exc).__name__}: {str(exc).splitlines()[0][:250]}"
                        rows.append(row)
                        bar.update(1)
                        continue
                bar.set_description(f"{model}: {runtime} {precision} {dev}")
                job = {"kind": "row", "model": model, "runtime": runtime, "precision": precision, "device": dev,
                       "threads": threads, "weights": None if model_dir else w, "model_dir": model_dir,
                       "crops": os.fspath(crops_path), "batches": batches, "repeats": repeats, "warmup": warmup,
                       "persons": persons, "scaling_repeats": scaling_repeats, "max_time_s": max_time_s,
                       "keypoints_out": os.fspath(work / f"{name}_kpts.npz")}
                if row["reference"]:
                    job["save_logits"] = job["reference_logits"] = os.fspath(ref_logits)
                elif ref_logits.is_file():
                    job["reference_logits"] = os.fspath(ref_logits)
                row.update(_run_worker(job, work, name))
                row["model_dir"] = model_dir
                if row["status"] == "ok":
                    row["_kpts"] = job["keypoints_out"]
                rows.append(row)
                bar.update(1)
            bar.set_description(f"{model}: peers")
            report["peers"][model] = _peers(model, w, crops_path, work, threads, repeats, peer_persons, peers,
                                            max_time_s, rounds=peer_rounds)
            bar.update(1)
            bar.set_description(f"{model}: auto")
            try:  # what runtime='auto', precision='auto' picks on this machine for these weights, and why
                report.setdefault("auto", {})[model] = choose(model, w, threads=threads).as_dict()
            except DwposeEdgeError as exc:
                report.setdefault("auto", {})[model] = {"status": f"failed: {exc}"}
            if cold_repeats:
                bar.set_description(f"{model}: cold start")
                ran = {r["runtime"]: r.get("model_dir") for r in rows
                       if r.get("status") == "ok" and r["precision"] == "fp32" and r["device"] == "cpu"}
                report.setdefault("cold_start", {})[model] = cold_start_table(
                    list(ran), ran, threads, cold_repeats, model, None if w is None else os.fspath(w))
            bar.set_description(f"{model}: AP")
            _score_rows(rows, crops, work / f"{model}_pseudo_gt.json")
            report["rows"] += rows
    finally:
        bar.close()
    derive(report, peer_persons)
    report["duration_s"] = round(time.perf_counter() - t_start, 1)
    report["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None

    write_report(report, out, plot=plot)

    shutil.rmtree(work, ignore_errors=True)
    return report


def _peers(model: str, weights: Any, crops_path: Path, work: Path, threads: int, repeats: int, persons: int,
           enabled: bool, max_time_s: float | None, rounds: int = 2) -> dict:
    """Ours (onnxruntime fp32, batched; OpenVINO fp32, and bf16 on a bf16 CPU, when installed), rtmlib and a plain
    onnxruntime loop: own process each, same weights (the same ONNX file but for the bf16 export of it).

    They run in `rounds` alternating rounds (ours, ours on OpenVINO, rtmlib, loop, ours, ...) of `repeats` calls each
    and the medians pool all calls, so a burst of load from other processes does not land on one alone.
    (One process for all three would be worse: an onnxruntime session's spinning threads slow the next.)
    """
    if not enabled:
        return {"status": "skipped: peers disabled"}
    if _missing_packages("onnxruntime"):
        return {"status": "skipped: onnxruntime not installed"}
    try:
        model_dir = ensure_export(model, weights, "onnxruntime", "fp32", threads)
    except Exception as exc:  # noqa: BLE001
        return {"status": f"failed: export: {type(exc).__name__}: {exc}"}

    onnx = model_dir / read_manifest(model_dir).find("onnxruntime", "fp32").files["model"]
    base = {"kind": "peer", "model": model, "model_dir": os.fspath(model_dir), "onnx": os.fspath(onnx),
            "threads": threads, "crops": os.fspath(crops_path), "repeats": max(3, -(-repeats // rounds)),
            "peer_persons": persons, "max_time_s": max_time_s,
            "ours_keypoints": os.fspath(work / f"{model}_peer_ours.npz")}
    runs: dict[str, list[dict]] = {"ours": [], "ours_openvino": [], "ours_openvino_bf16": [], "ours_torch_bf16": [],
                                   "rtmlib": [], "ort_loop": []}
    if _missing_packages("torch") or is_onnx_path(weights):
        runs["ours_torch_bf16"] = [{"status": "skipped: torch not installed or ONNX weights"}]
    elif why := table.cpu_feature_missing("torch", "bf16"):
        runs["ours_torch_bf16"] = [{"status": f"skipped: {why}"}]
    else:
        base["weights"] = None if weights is None else os.fspath(weights)
    if _missing_packages("openvino"):
        runs["ours_openvino"] = [{"status": "skipped: openvino not installed (pip install 'dwpose-edge[openvino]')"}]
        runs["ours_openvino_bf16"] = list(runs["ours_openvino"])
    elif why := table.cpu_feature_missing("openvino", "bf16"):
        runs["ours_openvino_bf16"] = [{"status": f"skipped: {why}"}]
    else:
        try:  # the bf16 export is gated against fp32 like any other: its figures are in the bf16 row
            base["bf16_dir"] = os.fspath(ensure_export(model, weights, "openvino", "bf16", threads))
        except Exception as exc:  # noqa: BLE001 - a failed bf16 export fails this peer only
            runs["ours_openvino_bf16"] = [{"status": f"failed: export: {type(exc).__name__}: {exc}"}]
    for r in range(max(1, rounds)):
        for name in runs:
            if runs[name] and runs[name][0].get("status") != "ok":  # skipped or failed: not rerun
                continue
            res = _run_worker(dict(base, peer=name), work, f"{model}_peer_{name}_{r}")
            runs[name].append(res)
            if name == "ours" and res["status"] != "ok":
                return {"status": res["status"]}
    merged = {}
    for name, results in runs.items():
        first = dict(results[0])
        seconds = [t for res in results for t in res.pop("seconds", [])]
        first.pop("seconds", None)
        if seconds:
            first["per_person"] = summarize(seconds, per=first["persons"])
            first["rounds"] = len(results)
        merged[name] = first
    ours = merged.pop("ours")
    return {"status": "ok", "persons": ours["persons"], "image": ours["image"], "onnx": ours["onnx"],
            "rounds": max(1, rounds), "ours": ours, "peers": merged}


def _score_rows(rows: list[dict], crops: BenchCrops, pseudo_gt: Path) -> None:
    """AP vs ground truth and vs the reference's keypoints for every row that ran."""
    ref = next((r for r in rows if r.get("reference") and r.get("status") == "ok"), None)
    if ref is not None:
        with np.load(ref["_kpts"]) as z:
            write_pseudo_gt(pseudo_gt, crops, z["keypoints"])
    for row in rows:
        path = row.pop("_kpts", None)
        if path is None:
            continue
        with np.load(path) as z:
            kp, sc = z["keypoints"], z["scores"]
        try:
            row["ap_gt"] = ap_table(crops.ann_file, crops, kp, sc)
            if ref is not None:
                row["ap_vs_ref"] = ap_table(pseudo_gt, crops, kp, sc)
        except ImportError as exc:  # xtcocotools missing or built for another numpy
            row["ap_note"] = f"AP not computed: {str(exc).splitlines()[0][:200]}"
