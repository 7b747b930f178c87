"""Person detectors for the whole-image pipeline: YOLOX (DWPose's own, ONNX), HOG people detector (offline), none."""
from __future__ import annotations

import os
from typing import Protocol

import cv2
import numpy as np

from ..errors import InputError, ModelFileError
from ..preprocess import check_image

YOLOX_STRIDES = (8, 16, 32)


class Detector(Protocol):
    """`detect(image_bgr) -> (boxes_xyxy (N,4) float32, scores (N,))`, persons only."""

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices of kept boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def letterbox(image_bgr: np.ndarray, size: tuple[int, int] = (640, 640), pad_value: int = 114
              ) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio into the top-left of a `size` (H, W) canvas filled with 114."""
    h, w = image_bgr.shape[:2]
    ratio = min(size[0] / h, size[1] / w)
    resized = cv2.resize(image_bgr, (int(w * ratio), int(h * ratio)), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size[0], size[1], 3), pad_value, dtype=np.uint8)
    canvas[:resized.shape[0], :resized.shape[1]] = resized
    return canvas, ratio


def decode_yolox(raw: np.ndarray, input_hw: tuple[int, int], strides=YOLOX_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Raw YOLOX head output (A,5+C) -> (boxes xyxy in input pixels (A,4), class scores obj*cls (A,C))."""
    grids, expanded = [], []
    for s in strides:
        hs, ws = input_hw[0] // s, input_hw[1] // s
        yv, xv = np.meshgrid(np.arange(hs), np.arange(ws), indexing="ij")
        grids.append(np.stack([xv, yv], -1).reshape(-1, 2))
        expanded.append(np.full((hs * ws, 1), s))
    grid = np.concatenate(grids).astype(np.float32)
    stride = np.concatenate(expanded).astype(np.float32)
    if raw.shape[0] != len(grid):
        raise ModelFileError(f"YOLOX output has {raw.shape[0]} anchors, expected {len(grid)} for input {input_hw}")
    xy = (raw[:, :2] + grid) * stride
    wh = np.exp(raw[:, 2:4]) * stride
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
    return boxes, raw[:, 4:5] * raw[:, 5:]


class YoloxDetector:
    """DWPose's YOLOX-L ONNX (input `images` 1x3x640x640 BGR 0-255, raw output 1x8400x85), on onnxruntime
    or OpenVINO. Persons: NMS 0.45 on class-0 scores above 0.1, then kept above `score_threshold` (0.3)."""

    def __init__(self, path: str | os.PathLike, runtime: str = "onnxruntime", nms_threshold: float = 0.45,
                 candidate_threshold: float = 0.1, score_threshold: float = 0.3, threads: int | None = None) -> None:
        from ..runtimes.onnx_file import check_onnx_file

        proto = check_onnx_file(path, n_outputs=1)
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        self.input_hw = (dims[2].dim_value or 640, dims[3].dim_value or 640)
        self.nms_threshold, self.candidate_threshold, self.score_threshold = nms_threshold, candidate_threshold, score_threshold
        if runtime == "onnxruntime":
            from ..runtimes.base import require

            ort = require("onnxruntime", "dwpose-edge")
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            session = ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            self._run = lambda x: session.run(None, {name: x})[0]
        elif runtime == "openvino":
            from ..runtimes.base import require

            ov = require("openvino", "dwpose-edge[openvino]")
            config = {"INFERENCE_PRECISION_HINT": "f32"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            compiled = ov.Core().compile_model(os.fspath(path), "CPU", config)
            self._run = lambda x: compiled(x)[0]
        else:
            raise InputError(f"the YOLOX detector runs on onnxruntime or openvino, not {runtime!r}")

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = check_image(image_bgr)
        canvas, ratio = letterbox(image, self.input_hw)
        x = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
        raw = np.asarray(self._run(x))[0]
        boxes, scores = decode_yolox(raw, self.input_hw)
        person = scores[:, 0]
        cand = person > self.candidate_threshold
        boxes, person = boxes[cand] / ratio, person[cand]
        keep = nms(boxes, person, self.nms_threshold)
        boxes, person = boxes[keep], person[keep]
        good = person > self.score_threshold
        return _clip(boxes[good], image.shape), person[good].astype(np.float32)


class HogDetector:
    """Dalal-Triggs HOG + linear-SVM pedestrian detector (OpenCV's default people SVM, shipped with the
    package, so no download): the offline choice, much weaker than YOLOX (finds upright, mostly full-body
    people of at least ~100 px height; misses sitting/partial people). Scores are SVM margins (>= 0), not
    probabilities. `backend` ("auto" | "opencv" | "numpy", see `dwpose_edge.detectors.hog`): OpenCV 4's
    HOGDescriptor where cv2 has it, ~0.1 s per 768x576 frame on one core (cv2.setNumThreads applies),
    else our numpy scan (OpenCV 5), ~0.27 s, same boxes.

    No cheaper setting is offered: measured on 34 vtest/basketball images (tests/hog_ref/compare_paths.py
    --variants), downscaling by 0.85/0.75/0.5 saves 27/45/81% of the time but keeps 53/26/4 of the default
    103 boxes (people must stay >= ~100 px), scale step 1.1 saves 44% and keeps 87, stride 16 saves 24%
    and keeps 47."""

    def __init__(self, score_threshold: float = 0.3, nms_threshold: float = 0.45, upscale_below: int = 400,
                 backend: str = "auto") -> None:
        from .hog import HogPeopleDetector

        self.hog = HogPeopleDetector(backend=backend)
        self.score_threshold, self.nms_threshold, self.upscale_below = score_threshold, nms_threshold, upscale_below

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = check_image(image_bgr)
        f = max(1.0, self.upscale_below / min(image.shape[:2]))
        work = cv2.resize(image, None, fx=f, fy=f) if f > 1 else image
        boxes, scores = self.hog.detect(work)
        if len(boxes) == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        boxes = boxes / np.float32(f)
        keep = nms(boxes, scores, self.nms_threshold)
        boxes, scores = boxes[keep], scores[keep]
        good = scores > self.score_threshold
        return _clip(boxes[good], image.shape), scores[good].astype(np.float32)


class WholeImage:
    """'none': the whole image is one person box."""

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = check_image(image_bgr).shape[:2]
        return np.array([[0, 0, w, h]], np.float32), np.ones(1, np.float32)


def _clip(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    out = boxes.astype(np.float32).copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out[(out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])]


def make_detector(spec: str | Detector | None, runtime: str = "onnxruntime", threads: int | None = None) -> Detector:
    """'none' | 'hog' | 'yolox' (registry weights, downloaded once) | path to a YOLOX-contract .onnx | a Detector."""
    if spec is None or spec == "none":
        return WholeImage()
    if not isinstance(spec, str):
        if not hasattr(spec, "detect"):
            raise InputError(f"detector must be 'none', 'hog', 'yolox', an .onnx path or have .detect(), got {spec!r}")
        return spec
    if spec == "hog":
        return HogDetector()
    if spec == "yolox":
        from ..weights import resolve_weights

        path = resolve_weights("yolox-l-hf-onnx")
        return YoloxDetector(path, runtime="openvino" if runtime == "openvino" else "onnxruntime", threads=threads)
    if spec.lower().endswith(".onnx"):
        return YoloxDetector(spec, runtime="openvino" if runtime == "openvino" else "onnxruntime", threads=threads)
    raise InputError(f"unknown detector {spec!r}: use 'none', 'hog', 'yolox' or a path to a YOLOX-style .onnx")
