"""One benchmark row (or the peer comparison) in a process of its own: `python -m dwpose_edge.bench.worker JOB.json`.

Why a process per row: peak RSS (VmHWM) is per process, thread pools of one runtime (ORT spin
waits, OpenVINO streams, torch's intra-op pool) cannot steal cores from the next one, and a
crashing backend only fails its own row. Order inside: load -> latency -> scaling -> peak RSS ->
accuracy pass (so the comparison arrays never count towards the peak).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from dwpose_edge.bench.crops import BenchCrops, scaling_scene
from dwpose_edge.bench.measure import peak_rss_mb, precision_name, rss_mb, summarize, time_calls
from dwpose_edge.bench.peers import compare_keypoints, ort_loop, ort_loop_session, rtmlib_pose
from dwpose_edge.estimator import Estimator
from dwpose_edge.export.validate import agreement
from dwpose_edge.manifest import read_manifest
from dwpose_edge.postprocess import decode_simcc


def _model_mb(est, model_dir: str | None, runtime: str, precision: str) -> float:
    if model_dir:
        artifact = read_manifest(model_dir).find(runtime, precision)
        return round(sum(p.stat().st_size for p in artifact.paths(Path(model_dir)).values()) / 1e6, 2)
    model = getattr(est.runtime, "model", None)
    if model is None:
        return float("nan")
    return round(sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6, 2)


def run_row(job: dict) -> dict:
    """Load one runtime x precision, time it, and decode its keypoints on the shared crops."""
    crops = BenchCrops.load(job["crops"])
    rss_before = rss_mb()
    t0 = time.perf_counter()
    est = Estimator(model=job["model"], weights=job.get("weights"), runtime=job["runtime"],
                    precision=job["precision"], device=job.get("device"), threads=job.get("threads"),
                    model_dir=job.get("model_dir"), batch_size=16)
    load_ms = (time.perf_counter() - t0) * 1000
    rss_loaded = rss_mb()
    n = len(crops)
    latency = {}
    for b in job["batches"]:
        batch = np.ascontiguousarray(crops.crops[np.resize(np.arange(n), b)])
        sec = time_calls(lambda batch=batch: est.runtime.infer(batch), job["repeats"], job["warmup"],
                         job.get("max_time_s"))
        latency[f"b{b}"] = summarize(sec, per=b)
    scaling = {}
    if job.get("persons"):
        for persons in job["persons"]:
            path, boxes = scaling_scene(crops, persons)
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            entry = {}
            for mode, bs in (("batched", 16), ("looped", 1)):
                est.batch_size = bs
                sec = time_calls(lambda image=image, boxes=boxes: est(image, boxes), job["scaling_repeats"], 1,
                                 job.get("max_time_s"))
                entry[mode] = {"per_image": summarize(sec), "per_person": summarize(sec, per=persons)}
            scaling[str(persons)] = entry
    peak = peak_rss_mb()

    est.batch_size = 8
    simcc_x, simcc_y = est.infer_crops(crops.crops)
    keypoints, scores = decode_simcc(simcc_x, simcc_y, crops.centers, crops.scales, crops.input_size)
    np.savez(job["keypoints_out"], keypoints=keypoints, scores=scores)
    result = {"load_ms": round(load_ms, 1), "rss_before_load_mb": rss_before, "rss_loaded_mb": rss_loaded,
              "peak_rss_mb": peak, "latency": latency, "scaling": scaling,
              "model_mb": _model_mb(est, job.get("model_dir"), job["runtime"], job["precision"])}
    if getattr(est.runtime, "validation", None):  # gated on open (torch bf16): the figures on the real photos
        result["open_validation"] = est.runtime.validation
    check = getattr(est.runtime, "device_check", None)  # the export's gate re-run on this machine (device_check.py)
    if check is not None:
        result["device_check"] = {"passed": check.passed, "got": round(check.got, 4), "needed": check.needed,
                                  "radius_px": check.radius_px, "gate": check.gate, "cached": check.cached,
                                  "within_1px_of_reference": round(check.vs_reference.within_1px, 4)}
    ip = getattr(est.runtime, "inference_precision", None)
    if ip is not None:
        result["inference_precision"] = precision_name(ip)
    if job.get("save_logits"):
        np.savez(job["save_logits"], simcc_x=simcc_x, simcc_y=simcc_y)
    if job.get("reference_logits"):
        with np.load(job["reference_logits"]) as ref:
            result["agreement"] = agreement((ref["simcc_x"], ref["simcc_y"]), (simcc_x, simcc_y)).as_dict()
    return result


def run_peer(job: dict) -> dict:
    """One implementation on the peers' image and boxes, in its own process: 'ours' (onnxruntime fp32 Estimator,
    batched; saves its keypoints), 'ours_openvino' (the same ONNX file on OpenVINO fp32), 'ours_openvino_bf16' /
    'ours_torch_bf16' (the same weights in bf16, gated), 'rtmlib' or
    'ort_loop' (all compared with the saved keypoints)."""
    crops = BenchCrops.load(job["crops"])
    path, boxes = scaling_scene(crops, job["peer_persons"])
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    name, onnx_path, persons = job["peer"], job["onnx"], len(boxes)
    result: dict = {"persons": persons, "image": os.path.basename(path), "onnx": os.path.basename(onnx_path)}
    if name == "ours":
        est = Estimator(model=job["model"], runtime="onnxruntime", precision="fp32", model_dir=job["model_dir"],
                        threads=job.get("threads"), batch_size=16)
        res = est(image, boxes)
        np.savez(job["ours_keypoints"], keypoints=res.keypoints, scores=res.scores)
        fn = lambda: est(image, boxes)  # noqa: E731
        result.update(what="dwpose_edge Estimator, onnxruntime fp32, batch_size 16", threads=job.get("threads"))
    else:
        with np.load(job["ours_keypoints"]) as z:
            ours_kp, ours_sc = z["keypoints"], z["scores"]
        if name == "ours_torch_bf16":
            est = Estimator(model=job["model"], runtime="torch", precision="bf16", weights=job["weights"],
                            threads=job.get("threads"), batch_size=16)
            res = est(image, boxes)
            result.update(what="dwpose_edge Estimator, torch bf16 autocast on the same weights (gated on open), "
                               "batch_size 16", threads=job.get("threads"),
                          agreement=compare_keypoints(ours_kp, ours_sc, res.keypoints, res.scores))
            fn = lambda: est(image, boxes)  # noqa: E731
        elif name in ("ours_openvino", "ours_openvino_bf16"):
            if name == "ours_openvino":
                est = Estimator(model=job["model"], runtime="openvino", weights=onnx_path,
                                threads=job.get("threads"), batch_size=16)
                what = "dwpose_edge Estimator, OpenVINO fp32 on the same ONNX file, batch_size 16"
            else:
                est = Estimator(model=job["model"], runtime="openvino", precision="bf16", model_dir=job["bf16_dir"],
                                threads=job.get("threads"), batch_size=16)
                what = "dwpose_edge Estimator, OpenVINO bf16 hint on the same weights (gated export), batch_size 16"
            res = est(image, boxes)
            result.update(what=what, threads=job.get("threads"),
                          agreement=compare_keypoints(ours_kp, ours_sc, res.keypoints, res.scores))
            fn = lambda: est(image, boxes)  # noqa: E731
        elif name == "rtmlib":
            rtm, why = rtmlib_pose(onnx_path, crops.input_size, job.get("threads"))
            if rtm is None:
                return {"status": f"skipped: {why}"}
            box_list = [list(map(float, b)) for b in boxes]
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            kp_bgr, sc_bgr = rtm(image, box_list)  # as rtmlib's docs call it: the BGR frame from cv2
            kp_rgb, sc_rgb = rtm(rgb, box_list)    # fed RGB, the colour order the model was trained on
            result.update(what="rtmlib.RTMPose(backend='onnxruntime', device='cpu'): loop over boxes at batch 1",
                          threads=job.get("threads"),
                          agreement_bgr_input=compare_keypoints(ours_kp, ours_sc, kp_bgr, sc_bgr),
                          agreement_rgb_input=compare_keypoints(ours_kp, ours_sc, kp_rgb, sc_rgb))
            fn = lambda: rtm(image, box_list)  # noqa: E731
        else:
            sess = ort_loop_session(onnx_path, job.get("threads"))
            kp, sc = ort_loop(sess, image, boxes, crops.input_size)
            result.update(what="plain onnxruntime loop: per-box float64 crop (rtmlib-like, RGB), batch 1, default "
                               "session options but the thread count", threads=job.get("threads"),
                          agreement=compare_keypoints(ours_kp, ours_sc, kp, sc))
            fn = lambda: ort_loop(sess, image, boxes, crops.input_size)  # noqa: E731
    seconds = time_calls(fn, job["repeats"], warmup=2, max_time_s=job.get("max_time_s"))
    result["seconds"] = seconds  # the runner merges the rounds
    result["per_person"] = summarize(seconds, per=persons)
    return result


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    kind = job["kind"]
    result = run_row(job) if kind == "row" else run_peer(job)
    result.setdefault("status", "ok")
    Path(job["out"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
