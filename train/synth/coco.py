"""Write a generated data set: JPEG images plus one COCO-WholeBody annotation json."""
from __future__ import annotations

import json
import os
import time
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from dwpose_edge.errors import DataError, InputError

from .scene import render_scene

KEYPOINT_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle"]
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10],
            [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
CATEGORIES = [{"supercategory": "person", "id": 1, "name": "person", "keypoints": KEYPOINT_NAMES,
               "skeleton": SKELETON}]


def image_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Per-image random stream: a pure function of (seed, index), independent of worker scheduling."""
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)])


DIFFICULTIES = ("standard", "easy")


def _checked(difficulty: str) -> str:
    if difficulty not in DIFFICULTIES:
        raise InputError(f"unknown difficulty {difficulty!r}; choose one of {DIFFICULTIES}")
    return difficulty


def render_one(seed: int, index: int, size: tuple[int, int] = (320, 640),
               difficulty: str = "standard") -> tuple[np.ndarray, list[dict], int]:
    """(BGR image, annotations, JPEG quality) of image `index` of data set `seed`.

    'easy' (a curriculum for training from scratch): one person, no occluders, no limb-like clutter.
    """
    rng = np.random.default_rng(image_seed(seed, index))
    lo, hi = size
    w = int(rng.integers(lo // 8, hi // 8 + 1)) * 8
    h = int(np.clip(w * np.exp(rng.uniform(-0.45, 0.45)), lo, hi)) // 8 * 8
    if _checked(difficulty) == "easy":
        img, anns, _, _ = render_scene(rng, w, h, n_people=1, occluders=False, clutter=False)
    else:
        img, anns, _, _ = render_scene(rng, w, h)
    return img, anns, int(rng.integers(55, 96))


def _job(args: tuple[int, int, tuple[int, int], str, str]) -> tuple[int, int, int, list[dict]]:
    seed, index, size, folder, difficulty = args
    img, anns, quality = render_one(seed, index, size, difficulty)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DataError(f"JPEG encoding failed for image {index}")
    Path(folder, f"{index:06d}.jpg").write_bytes(buf.tobytes())
    return index, img.shape[1], img.shape[0], anns


def _init_worker() -> None:
    cv2.setNumThreads(1)


def make_dataset(out_dir: str | os.PathLike, n_images: int, seed: int = 0,
                 image_size: int | tuple[int, int] = (320, 640), workers: int | None = None,
                 progress: bool = False, difficulty: str = "standard") -> Path:
    """Generate `n_images` images into `out_dir/images/` and return the path of `out_dir/annotations.json`.

    Each side of an image is drawn from `image_size` (lo, hi) pixels (an int gives a fixed square);
    the same (n_images, seed, image_size, difficulty) always gives byte-identical files, whatever `workers` is.
    `difficulty='easy'` renders one unoccluded person per image on an uncluttered background.
    With workers > 1 the pool starts through a forkserver (safe next to running thread pools), so a
    calling script needs the usual `if __name__ == "__main__":` guard.
    """
    _checked(difficulty)  # before any folder is made
    size = (int(image_size), int(image_size)) if np.isscalar(image_size) else tuple(int(v) for v in image_size)
    if n_images < 1 or size[0] < 64 or size[1] < size[0]:
        raise InputError(f"need n_images >= 1 and 64 <= lo <= hi image size, got {n_images}, {size}")
    out = Path(out_dir)
    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers or os.cpu_count() or 1, n_images))
    jobs = [(int(seed), i, size, str(folder), difficulty) for i in range(n_images)]
    t0 = time.perf_counter()
    if workers == 1:
        _init_worker()
        results = map(_job, jobs)
        pool = None
    else:
        # never "fork": callers (the benchmark's INT8 rows) already run onnxruntime/torch thread pools, and
        # a child forked while one of their threads holds a lock waits on it forever (seen here)
        pool = get_context("forkserver" if os.name == "posix" else "spawn").Pool(workers, _init_worker)
        results = pool.imap(_job, jobs, chunksize=4)
    images, annotations = [], []
    try:
        for k, (index, w, h, anns) in enumerate(results):
            images.append({"file_name": f"{index:06d}.jpg", "width": w, "height": h, "id": index + 1})
            for a in anns:
                annotations.append({**a, "image_id": index + 1, "id": len(annotations) + 1})
            if progress and (k + 1) % 100 == 0:
                dt = time.perf_counter() - t0
                print(f"{k + 1}/{n_images} images, {(k + 1) / dt:.1f} img/s", flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    data = {"info": {"description": "dwpose-edge procedural COCO-WholeBody data", "seed": int(seed),
                     "image_size": list(size), "version": 1,
                     **({} if difficulty == "standard" else {"difficulty": difficulty})},
            "images": images, "annotations": annotations, "categories": CATEGORIES}
    path = out / "annotations.json"
    path.write_text(json.dumps(data, separators=(",", ":")))
    return path
