"""Timing statistics, peak memory and a description of the machine, with no third-party dependency."""
from __future__ import annotations

import os
import platform
import re
import resource
import sys
import time
from collections.abc import Callable

import numpy as np

from dwpose_edge.manifest import tool_versions

PACKAGES = ("dwpose-edge", "numpy", "opencv-python-headless", "opencv-python", "torch", "onnx", "onnxruntime",
            "openvino", "nncf", "ncnn", "pnnx", "ai-edge-litert", "litert-torch", "rtmlib", "xtcocotools",
            "pytest-benchmark", "matplotlib")


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 2, max_time_s: float | None = None,
               min_repeats: int = 3) -> list[float]:
    """Seconds per call of `fn`, `warmup` untimed calls first.

    `max_time_s` bounds one measurement (warm-up included): timing stops once it is spent and at
    least `min_repeats` calls were timed, so a pathologically slow row (a loaded machine) cannot
    stall a quick run; the number of timed calls is reported with every summary.
    """
    start = time.perf_counter()
    for _ in range(max(0, warmup)):
        fn()
        if max_time_s is not None and time.perf_counter() - start > max_time_s:
            break
    out: list[float] = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if max_time_s is not None and len(out) >= min_repeats and time.perf_counter() - start > max_time_s:
            break
    return out


def summarize(seconds: list[float], per: int = 1) -> dict[str, float]:
    """Median and interquartile range in ms, divided by `per` (crops or persons per call)."""
    ms = np.asarray(seconds, np.float64) * 1000.0 / max(1, per)
    q1, med, q3 = np.percentile(ms, [25, 50, 75])
    return {"median_ms": round(float(med), 4), "iqr_ms": round(float(q3 - q1), 4), "min_ms": round(float(ms.min()), 4),
            "n": int(len(ms))}


def precision_name(value: object) -> str:
    """A runtime's compute precision as plain text (OpenVINO gives "<Type: 'float32'>" -> "float32")."""
    found = re.search(r"'(\w+)'", str(value))
    return found.group(1) if found else str(value)


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float | None:
    """Current resident set size in MB (Linux /proc; None elsewhere)."""
    kb = _status_kb("VmRSS")
    return None if kb is None else round(kb / 1024.0, 1)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (VmHWM, else getrusage's ru_maxrss)."""
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":  # bytes there, kB on Linux
            kb /= 1024.0
    return round(kb / 1024.0, 1)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD features that decide fp16 / int8 speed on x86 (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return []
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")
    return [w for w in wanted if w in flags]


def package_versions() -> dict[str, str]:
    return tool_versions(PACKAGES)


def machine_info(threads: int | None = None) -> dict:
    """CPU model, cores, OS, Python, package versions, load average: what a timing depends on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    info = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "logical_cores": os.cpu_count(),
            "usable_cores": usable, "threads": threads, "os": platform.platform(),
            "python": platform.python_version(), "packages": package_versions()}
    try:
        info["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    return info


def cuda_info() -> dict | None:
    """GPU name and CUDA version when torch sees a GPU (imports torch), else None."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return {"gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda}
