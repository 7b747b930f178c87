"""Cold start per runtime, each in a fresh interpreter: import time, model load, first keypoints and the
process's peak resident memory, what a device pays before its first result.

    from dwpose_edge.bench.coldstart import cold_start_table
    cold_start_table(["onnxruntime", "openvino"], {})  # runtime -> {'import_s', 'load_s', 'first_s', 'total_s',
                                                       #             'peak_rss_mb', ...}, medians
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from dwpose_edge.errors import DwposeEdgeError

# One child process: the clock starts before `import dwpose_edge`. Peak RSS is VmHWM: ru_maxrss would carry the
# forking parent's peak across exec on Linux.
_CHILD = r"""
import time
t0 = time.perf_counter()
import json, sys
import numpy as np
from dwpose_edge import Estimator
from dwpose_edge.data import DATA_DIR
import cv2
t_import = time.perf_counter()
job = json.loads(sys.argv[1])
est = Estimator(job["model"], weights=job["weights"], runtime=job["runtime"], model_dir=job["model_dir"],
                threads=job["threads"])
t_load = time.perf_counter()
image = cv2.imread(str(DATA_DIR / "grace_hopper.jpg"))
result = est(image, np.array([[150.0, 60.0, 400.0, 600.0]], np.float32))
t_first = time.perf_counter()
assert result.keypoints.shape[:2] == (1, 133)
with open("/proc/self/status") as f:  # VmHWM: this process's own peak (Linux; the bench's platform)
    hwm_kb = next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
print(json.dumps({"import_s": t_import - t0, "load_s": t_load - t_import, "first_s": t_first - t_load,
                  "peak_rss_mb": hwm_kb / 1024,
                  "torch_loaded": "torch" in sys.modules}))
"""


def cold_start(runtime: str, model_dir: str | os.PathLike | None = None, threads: int | None = 1,
               model: str = "dwpose-t", weights: str | None = None) -> dict:
    """One fresh process: import, load and first-keypoints seconds of `model_dir` (an export folder) or
    `weights` (None = the embedded model), wall time from process launch (interpreter start included) and
    peak RSS in MB."""
    job = json.dumps({"runtime": runtime, "model_dir": os.fspath(model_dir) if model_dir else None,
                      "threads": threads, "model": model, "weights": weights})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, job], capture_output=True, text=True, env=env, timeout=600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise DwposeEdgeError(f"cold start of {runtime} failed: {lines[-1] if lines else proc.returncode}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "total_s": wall}


def cold_start_table(runtimes: Sequence[str], model_dirs: dict[str, str | None], threads: int | None = 1,
                     repeats: int = 3, model: str = "dwpose-t", weights: str | None = None) -> dict[str, dict]:
    """`cold_start` of every runtime ({'status': 'failed: ...'} where one cannot start), runs interleaved so
    that a load spike on the machine hits all of them alike."""
    results: dict[str, list[dict]] = {r: [] for r in runtimes}
    failed: dict[str, str] = {}
    for _ in range(max(1, repeats)):
        for runtime in runtimes:
            if runtime in failed:
                continue
            try:
                results[runtime].append(cold_start(runtime, model_dirs.get(runtime), threads, model, weights))
            except DwposeEdgeError as exc:
                failed[runtime] = f"failed: {exc}"
    table = {}
    for runtime in runtimes:
        if runtime in failed:
            table[runtime] = {"status": failed[runtime]}
            continue
        runs = results[runtime]
        table[runtime] = {k: round(statistics.median(r[k] for r in runs), 4)
                          for k in ("import_s", "load_s", "first_s", "total_s", "peak_rss_mb")}
        table[runtime].update(torch_loaded=any(r["torch_loaded"] for r in runs), repeats=len(runs), status="ok")
    return table
