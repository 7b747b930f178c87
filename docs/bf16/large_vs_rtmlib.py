"""dwpose-l-384 (what ControlNet pipelines run) end to end per person against rtmlib, timing only.

The official dwpose-l-384 weights cannot be downloaded here, so the model carries seeded random weights: the
timings are the real model's (same graph, same FLOPs; weights with no denormals), the accuracy of bf16 on it
cannot be measured (its near-flat random logits fail any gate; the gate is measured on the embedded dwpose-t).
Each implementation runs in its own process, in alternating rounds, on the same image, boxes and ONNX file:
rtmlib (BGR fed as documented, its session rebuilt with the thread count), our Estimator on OpenVINO fp32, and
the same fp32 IR under OpenVINO's bf16 inference hint, and torch bf16 autocast + channels_last (both opened
without the gate: random weights).

    python docs/bf16/large_vs_rtmlib.py --threads 1 --persons 4 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
import cv2, numpy as np
job = json.loads(sys.argv[1])
from dwpose_edge.data import DATA_DIR
image = cv2.imread(str(DATA_DIR / "astronaut.jpg"))
h, w = image.shape[:2]
boxes = np.array([[w * (0.05 + 0.2 * (i % 4)), h * 0.1, w * (0.35 + 0.2 * (i % 4)), h * 0.95]
                  for i in range(job["persons"])], np.float32)
if job["impl"] == "rtmlib":
    from dwpose_edge.bench.peers import rtmlib_pose
    rtm, why = rtmlib_pose(job["onnx"], (288, 384), job["threads"])
    assert rtm is not None, why
    box_list = [list(map(float, b)) for b in boxes]
    fn = lambda: rtm(image, box_list)
else:
    from dwpose_edge import Estimator
    from dwpose_edge.runtimes.openvino_runtime import OpenVinoRuntime
    est = Estimator("dwpose-l-384", weights=job["onnx"], runtime="openvino", threads=job["threads"])
    if job["impl"] == "openvino_bf16":
        est.runtime = OpenVinoRuntime(job["onnx"], threads=job["threads"], input_size=(288, 384), precision="bf16")
    elif job["impl"] == "torch_bf16":
        from dwpose_edge.models import load_model
        from dwpose_edge.runtimes.torch_runtime import TorchRuntime
        est.runtime = TorchRuntime(load_model("dwpose-l-384", "random"), precision="bf16", threads=job["threads"])
    fn = lambda: est(image, boxes)
for _ in range(2):
    fn()
sec = []
for _ in range(job["calls"]):
    t0 = time.perf_counter(); fn(); sec.append(time.perf_counter() - t0)
print(json.dumps(sec))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--persons", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=4)
    args = ap.parse_args()
    from dwpose_edge.export.to_onnx import export_onnx
    from dwpose_edge.models import load_model

    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(load_model("dwpose-l-384", "random").eval(), Path(tmp) / "dwpose-l-384_random.onnx")
        per_person: dict[str, list[float]] = {"rtmlib": [], "openvino_fp32": [], "openvino_bf16": [],
                                              "torch_bf16": []}
        for _ in range(args.rounds):
            for impl in per_person:
                job = {"impl": impl, "onnx": str(onnx), "threads": args.threads, "persons": args.persons,
                       "calls": args.calls}
                out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(job)], capture_output=True, text=True,
                                     check=True).stdout
                per_person[impl] += [s * 1000 / args.persons for s in json.loads(out.strip().splitlines()[-1])]
    med = {k: statistics.median(v) for k, v in per_person.items()}
    print(json.dumps({"threads": args.threads, "persons": args.persons, "calls": len(per_person["rtmlib"]),
                      "ms_per_person": {k: round(v, 2) for k, v in med.items()},
                      "x_rtmlib": {k: round(med["rtmlib"] / v, 2) for k, v in med.items()},
                      "measured": time.strftime("%Y-%m-%d %H:%M")}, indent=1))


if __name__ == "__main__":
    main()
