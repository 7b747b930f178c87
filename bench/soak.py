"""Memory soak: many Estimator calls per runtime while sampling the process RSS; fails on growth after warm-up.

    python -m dwpose_edge.bench.soak --calls 10000 --runtimes torch,onnxruntime,openvino,ncnn

Each runtime gets its own Estimator (dwpose-t, `weights="random"` unless told otherwise; non-torch runtimes
export into the cache on first use). The calls cycle through inputs a camera loop sees: frames of several
sizes, 1-3 boxes, a tiny image, and every 25th call a bad box that must raise InputError (error paths must
not leak either). After `warmup` calls (allocator pools, runtime arenas, per-thread requests) the RSS is the
baseline; growth = RSS at the end minus the baseline, both read after `gc.collect()` and glibc's
`malloc_trim(0)` (so that memory freed earlier in the process cannot hide a leak).

The bound (30 MB by default) is ~4x the transient working set of one call (3 crops: ~7 MB of crops and
logits) plus allocator slack, while a leak of 3 KB per call already crosses it over 10,000 calls.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from dwpose_edge import Estimator
from dwpose_edge.data import DATA_DIR
from dwpose_edge.errors import InputError

DEFAULT_BOUND_MB = 30.0
RUNTIMES = ("torch", "onnxruntime", "openvino", "ncnn", "litert")


def rss_mb() -> float:
    """Resident set size of this process in MiB (psutil, else /proc/self/status VmRSS)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kb / 1024
    return psutil.Process().memory_info().rss / 2**20


def release_free_memory() -> None:
    """gc, then glibc's malloc_trim(0): freed heap pages go back to the OS, so RSS counts live memory only
    (otherwise memory freed earlier in the process hides new allocations, and a leak with it)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS then also holds the allocator's free lists
        pass


@dataclass
class SoakResult:
    runtime: str
    calls: int
    warmup: int
    rss_before_mb: float  # after warm-up
    rss_after_mb: float
    rss_peak_mb: float
    bound_mb: float
    seconds: float
    errors_raised: int

    @property
    def growth_mb(self) -> float:
        return self.rss_after_mb - self.rss_before_mb

    @property
    def ok(self) -> bool:
        return self.growth_mb <= self.bound_mb


def soak_inputs(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """A small cycle of (image, boxes) of different sizes and person counts (the bundled photos)."""
    rng = np.random.default_rng(seed)
    photos = [cv2.imread(str(DATA_DIR / n)) for n in ("grace_hopper.jpg", "astronaut.jpg")]
    out = []
    for i, scale in enumerate((1.0, 0.5, 1.5, 0.75)):
        img = cv2.resize(photos[i % 2], None, fx=scale, fy=scale)
        h, w = img.shape[:2]
        n = 1 + i % 3
        xy = rng.uniform(0, [w * 0.5, h * 0.5], (n, 2))
        out.append((img, np.hstack([xy, xy + rng.uniform(40, [w * 0.5, h * 0.5], (n, 2))]).astype(np.float32)))
    out.append((np.full((1, 1, 3), 128, np.uint8), None))  # whole-image box of a 1x1 frame
    return out


def soak_runtime(runtime: str, calls: int, make_estimator: Callable[[str], object], warmup: int = 50,
                 bound_mb: float = DEFAULT_BOUND_MB, error_every: int = 25) -> SoakResult:
    """`calls` Estimator calls on `runtime` after `warmup` ones; RSS before/after/peak."""
    est = make_estimator(runtime)
    inputs = soak_inputs()
    bad_box = np.array([[10, 10, 5, 5]], np.float32)
    errors = 0

    def call(i: int) -> None:
        nonlocal errors
        img, boxes = inputs[i % len(inputs)]
        if error_every and i % error_every == error_every - 1:
            try:
                est(img, bad_box)
            except InputError:
                errors += 1
            return
        est(img, boxes)

    for i in range(warmup):
        call(i)
    release_free_memory()
    before = peak = rss_mb()
    t0 = time.perf_counter()
    every = max(1, calls // 100)
    for i in range(calls):
        call(warmup + i)
        if i % every == 0:
            peak = max(peak, rss_mb())
    seconds = time.perf_counter() - t0
    release_free_memory()
    after = rss_mb()
    return SoakResult(runtime, calls, warmup, round(before, 1), round(after, 1), round(max(peak, after), 1),
                      bound_mb, round(seconds, 1), errors)


def random_estimator(model: str = "dwpose-t", weights: str = "random", threads: int = 1) -> Callable[[str], object]:
    def make(runtime: str):
        return Estimator(model, weights=weights, runtime=runtime, threads=threads)
    return make


def soak(runtimes: Sequence[str] = RUNTIMES, calls: int = 10_000, warmup: int = 50,
         bound_mb: float = DEFAULT_BOUND_MB, make_estimator: Callable[[str], object] | None = None,
         log: Callable[[str], None] | None = print) -> list[SoakResult]:
    """Soak every runtime in turn; returns one SoakResult each (check `.ok`)."""
    make_estimator = make_estimator or random_estimator()
    results = []
    for runtime in runtimes:
        result = soak_runtime(runtime, calls, make_estimator, warmup, bound_mb)
        results.append(result)
        if log:
            log(format_row(result))
    return results


HEADER = (f"{'runtime':<12} {'calls':>6} {'rss before MB':>13} {'rss after MB':>12} {'peak MB':>8} "
          f"{'growth MB':>9} {'bound MB':>8} {'ms/call':>7}  ok")


def format_row(r: SoakResult) -> str:
    ms = 1000 * r.seconds / max(r.calls, 1)
    return (f"{r.runtime:<12} {r.calls:>6} {r.rss_before_mb:>13.1f} {r.rss_after_mb:>12.1f} {r.rss_peak_mb:>8.1f} "
            f"{r.growth_mb:>9.1f} {r.bound_mb:>8.0f} {ms:>7.1f}  {'yes' if r.ok else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dwpose_edge.bench.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=10_000, help="Estimator calls per runtime after warm-up")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument("--bound-mb", type=float, default=DEFAULT_BOUND_MB, help="allowed RSS growth after warm-up")
    ap.add_argument("--model", default="dwpose-t")
    ap.add_argument("--weights", default="random")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    print(HEADER, flush=True)
    results = soak(runtimes, args.calls, args.warmup, args.bound_mb,
                   random_estimator(args.model, args.weights, args.threads), log=lambda s: print(s, flush=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) | {"growth_mb": r.growth_mb, "ok": r.ok} for r in results], f, indent=2)
    bad = [r.runtime for r in results if not r.ok]
    if bad:
        print(f"RSS grew by more than {args.bound_mb:g} MB after warm-up on: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("OPENVINO_TELEMETRY", "0")
    sys.exit(main())
