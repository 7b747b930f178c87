"""Time and compare the two HOG people-detector paths on real photos: our numpy scan vs cv2.HOGDescriptor.

    .venv/bin/python tests/hog_ref/compare_paths.py [--repeats 5] [--threads 1,2] [--variants]

Needs an OpenCV with HOGDescriptor (4.x). Both paths run with the parameters `detect.HogDetector` uses
(winStride 8, padding 8, scale 1.05, hit threshold 0, groupThreshold 2 / eps 0.2, then NMS 0.45 and
score > 0.3, images upscaled to a 400 px short side). Per image it prints ms per `HogDetector.detect`
for each path at each thread count (best of --repeats; threads set with cv2.setNumThreads and
threadpoolctl for numpy's BLAS), and how the final boxes, grouped boxes and raw hits agree.
Images: the package photos, the vtest crop and, where Debian's opencv-doc is installed, its people
photos, 8 frames of vtest.avi and a few photos without people.
--variants instead times cheaper settings (downscaled input, coarser pyramid, stride 16) on the
OpenCV backend at 1 thread over 32 vtest frames + 2 basketball photos, with the share of the default
settings' boxes each still finds (IoU > 0.5) and the boxes it adds.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from dwpose_edge.detectors import hog
from dwpose_edge.data import DATA_DIR
from dwpose_edge.detectors import HogDetector
from samples import OPENCV_DOC, vtest_frames  # this script's folder (tests/hog_ref) is on sys.path

REF_DIR = Path(__file__).resolve().parent


def real_images() -> dict[str, np.ndarray]:
    paths = {"astronaut": DATA_DIR / "astronaut.jpg", "grace_hopper": DATA_DIR / "grace_hopper.jpg",
             "vtest_crop": REF_DIR / "vtest_frame400_crop.jpg"}
    for name in ("basketball1.png", "basketball2.png", "messi5.jpg", "home.jpg", "building.jpg", "fruits.jpg"):
        if (OPENCV_DOC / name).exists():
            paths[Path(name).stem] = OPENCV_DOC / name
    images = {name: cv2.imread(str(p)) for name, p in paths.items()}
    for index, frame in vtest_frames(range(0, 800, 100)).items():
        images[f"vtest_{index}"] = frame
    return images


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match(ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, np.ndarray]
          ) -> tuple[int, int, int, float, float]:
    """Greedy best-IoU matching: (n ours, n theirs, n matched at IoU>0.5, min IoU, max |score diff|)."""
    (ob, os_), (tb, ts) = ours, theirs
    used, ious, diffs = set(), [], []
    for i in range(len(ob)):
        cands = [(iou(ob[i], tb[j]), j) for j in range(len(tb)) if j not in used]
        if cands:
            best, j = max(cands)
            if best > 0.5:
                used.add(j)
                ious.append(best)
                diffs.append(abs(float(os_[i]) - float(ts[j])))
    return len(ob), len(tb), len(ious), min(ious, default=1.0), max(diffs, default=0.0)


def raw_agreement(ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, np.ndarray]
                  ) -> tuple[int, int, int, float]:
    """Raw hits as sorted (box, score) lists: (n ours, n theirs, n boxes whose hit count differs,
    max |score diff| over the boxes found as often by both)."""
    def by_box(boxes, scores):
        out: dict[tuple, list[float]] = {}
        for b, s in zip(boxes.astype(int).tolist(), scores.tolist()):
            out.setdefault(tuple(b), []).append(s)
        return out
    a, b = by_box(*ours), by_box(*theirs)
    diff, differing = 0.0, 0
    for key in a.keys() | b.keys():
        x, y = sorted(a.get(key, [])), sorted(b.get(key, []))
        if len(x) == len(y):
            diff = max(diff, max(abs(p - q) for p, q in zip(x, y)))
        else:
            differing += 1
    return len(ours[1]), len(theirs[1]), differing, diff


def best_ms(fn, image: np.ndarray, repeats: int) -> float:
    fn(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(image)
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--variants", action="store_true")
    args = parser.parse_args(argv)
    if not hasattr(cv2, "HOGDescriptor"):
        raise SystemExit(f"OpenCV {cv2.__version__} has no HOGDescriptor: nothing to compare against")
    if args.variants:
        return variants()
    images = real_images()
    dets = {"numpy": HogDetector(backend="numpy"), "opencv": HogDetector(backend="opencv")}
    threads = [int(t) for t in args.threads.split(",")]
    print(f"OpenCV {cv2.__version__}, numpy {np.__version__}; ms per HogDetector.detect, best of {args.repeats}")
    header = "image            size     " + " ".join(f"{p}@{t}".rjust(10) for t in threads for p in dets)
    print(header + "   final: n_np n_cv matched minIoU dScore | grouped: same | raw: n_np n_cv nDiffer dScore")
    totals = {(p, t): 0.0 for t in threads for p in dets}
    for name, image in images.items():
        cells = []
        for t in threads:
            cv2.setNumThreads(t)
            with threadpool_limits(t):
                for p, det in dets.items():
                    ms = best_ms(det.detect, image, args.repeats)
                    totals[(p, t)] += ms
                    cells.append(f"{ms:10.1f}")
        cv2.setNumThreads(threads[-1])
        final = match(dets["numpy"].detect(image), dets["opencv"].detect(image))
        f = max(1.0, 400 / min(image.shape[:2]))
        work = cv2.resize(image, None, fx=f, fy=f) if f > 1 else image
        grouped = match(dets["numpy"].hog.detect(work), dets["opencv"].hog.detect(work))
        raw = raw_agreement(dets["numpy"].hog.raw_hits(work), dets["opencv"].hog.raw_hits(work))
        size = f"{image.shape[1]}x{image.shape[0]}"
        print(f"{name:16s} {size:8s} {' '.join(cells)}   final: {final[0]:2d} {final[1]:2d} {final[2]:2d} "
              f"{final[3]:.3f} {final[4]:.4f} | grouped: {grouped[0]}/{grouped[1]}/{grouped[2]} {grouped[3]:.3f} "
              f"| raw: {raw[0]} {raw[1]} {raw[2]} {raw[3]:.4f}")
    n = len(images)
    print("mean ms          " + " " * 9 + " ".join(f"{totals[(p, t)] / n:10.1f}" for t in threads for p in dets))



def variants() -> None:
    cv2.setNumThreads(1)
    frames = list(vtest_frames(range(0, 800, 25)).values())
    frames += [cv2.imread(str(OPENCV_DOC / n)) for n in ("basketball1.png", "basketball2.png")]
    frames = [f for f in frames if f is not None]
    if not frames:
        raise SystemExit("--variants needs Debian's opencv-doc (vtest.avi, basketball*.png)")
    base = HogDetector(backend="opencv")
    ref = [base.detect(f)[0] for f in frames]

    def downscaled(s: float):
        det = HogDetector(backend="opencv", upscale_below=0)
        return lambda f: det.detect(cv2.resize(f, None, fx=s, fy=s, interpolation=cv2.INTER_AREA))[0] / s

    def with_hog(**kw):
        det = HogDetector(backend="opencv")
        det.hog = hog.HogPeopleDetector(backend="opencv", **kw)
        return lambda f: det.detect(f)[0]

    runs = {"default": lambda f: base.detect(f)[0], "downscale 0.85": downscaled(0.85),
            "downscale 0.75": downscaled(0.75), "downscale 0.5": downscaled(0.5),
            "scale_step 1.1": with_hog(scale_step=1.1), "scale_step 1.2": with_hog(scale_step=1.2),
            "win_stride 16": with_hog(win_stride=16)}
    print(f"{len(frames)} images, OpenCV backend, 1 thread; boxes of the default settings: {sum(map(len, ref))}")
    for label, fn in runs.items():
        start = time.perf_counter()
        outs = [fn(f) for f in frames]
        ms = 1000 * (time.perf_counter() - start) / len(frames)
        kept = sum(sum(any(iou(r, o) > 0.5 for o in out) for r in rr) for rr, out in zip(ref, outs))
        extra = sum(sum(not any(iou(r, o) > 0.5 for r in rr) for o in out) for rr, out in zip(ref, outs))
        print(f"{label:16s} {ms:7.1f} ms/image   default boxes kept {kept}/{sum(map(len, ref))}   added {extra}")


if __name__ == "__main__":
    main(sys.argv[1:])
