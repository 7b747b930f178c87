"""Dump OpenCV 4.x HOG outputs for tests/test_hog.py (run with an OpenCV 4.x python, e.g. the project's .venv).

    python opencv4_dump.py OUT.npz [--desc WxH/S] NAME=IMAGE_PATH [NAME=IMAGE_PATH ...]

Per image NAME (cv2.imread, BGR):
  NAME/desc         (rows, cols, 3780) HOGDescriptor().compute(top-left WxH crop, (S,S), (0,0)); default 192x256/8
  NAME/scores       (rows, cols) SVM score of every window at scale 1: detect(img, -1e3, (8,8), (8,8))
  NAME/rects        (N,4) xywh, NAME/weights (N,): detectMultiScale(img, winStride=(8,8), padding=(8,8), scale=1.05)
  NAME/raw_rects    (N,4), NAME/raw_weights (N,): the same with groupThreshold=0 (no grouping)
"""
import sys

import cv2
import numpy as np


def people_hog() -> "cv2.HOGDescriptor":
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def descriptors(img: np.ndarray, width: int, height: int, stride: int) -> np.ndarray:
    crop = np.ascontiguousarray(img[:height, :width])
    rows, cols = (crop.shape[0] - 128) // stride + 1, (crop.shape[1] - 64) // stride + 1
    return people_hog().compute(crop, (stride, stride), (0, 0)).reshape(rows, cols, 3780).astype(np.float32)


def score_map(img: np.ndarray) -> np.ndarray:
    rows, cols = (img.shape[0] + 16 - 128) // 8 + 1, (img.shape[1] + 16 - 64) // 8 + 1
    locations, weights = people_hog().detect(img, -1e3, (8, 8), (8, 8))
    locations = np.asarray(locations).reshape(-1, 2)
    scores = np.full((rows, cols), np.nan, np.float32)
    scores[(locations[:, 1] + 8) // 8, (locations[:, 0] + 8) // 8] = np.asarray(weights).reshape(-1)
    return scores


def dump(path: str, desc: tuple[int, int, int]) -> dict:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read {path}")
    return outputs(img, desc)


def outputs(img: np.ndarray, desc: tuple[int, int, int]) -> dict:
    """The NAME/... arrays above for one image (BGR or gray uint8)."""
    hog = people_hog()
    rects, weights = hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8), scale=1.05)
    raw, raw_w = hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8), scale=1.05, groupThreshold=0)
    return {"desc": descriptors(img, *desc), "scores": score_map(img),
            "rects": np.asarray(rects, np.int32).reshape(-1, 4), "weights": np.asarray(weights, np.float32).reshape(-1),
            "raw_rects": np.asarray(raw, np.int32).reshape(-1, 4),
            "raw_weights": np.asarray(raw_w, np.float32).reshape(-1)}


def main(argv: list[str]) -> None:
    out_path, args = argv[0], argv[1:]
    desc = (192, 256, 8)
    if args and args[0] == "--desc":
        size, _, stride = args[1].partition("/")
        w, _, h = size.partition("x")
        desc, args = (int(w), int(h), int(stride)), args[2:]
    out = {"opencv_version": np.array(cv2.__version__)}
    for arg in args:
        name, _, path = arg.partition("=")
        for key, value in dump(path, desc).items():
            out[f"{name}/{key}"] = value
    np.savez_compressed(out_path, **out)


if __name__ == "__main__":
    main(sys.argv[1:])
