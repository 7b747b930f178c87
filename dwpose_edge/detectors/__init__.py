"""Person detectors for the whole-image pipeline, all in this package:

* `YoloxDetector` (yolox.py): DWPose's own YOLOX-L ONNX, raw head output decoded here;
* `End2EndDetector` (end2end.py): OpenMMLab's ONNX SDK detectors (mmdeploy "end2end": NMS in the graph,
  preprocessing declared by the zip's pipeline.json), e.g. YOLOX-tiny/-m/-x trained on HumanArt;
* `HogDetector` (hog.py): the offline HOG people detector; `WholeImage`: no detector;
* any object with `detect(image) -> (boxes, scores)`.

`make_detector` turns a name, a file or an object into one of them.
"""
from __future__ import annotations

import os
from typing import Protocol

import cv2
import numpy as np

from ..errors import InputError, ModelFileError
from ..preprocess import check_image
from ..weights import REGISTRY, cached_sha256, resolve_weights
from .boxes import clip_boxes, nms
from .end2end import End2EndDetector
from .hog import HogPeopleDetector
from .onnx_session import detector_runtime
from .yolox import YOLOX_STRIDES, YoloxDetector, decode_yolox, letterbox

__all__ = ["Detector", "nms", "clip_boxes", "letterbox", "decode_yolox", "YOLOX_STRIDES", "YoloxDetector",
           "End2EndDetector", "HogDetector", "WholeImage", "make_detector", "detector_names"]

SHORT_NAMES = {"yolox": "yolox-l-hf-onnx"}  # DWPose's own detector, by its usual name


def detector_names() -> list[str]:
    """Names make_detector takes besides files and objects: 'none', 'hog', 'yolox' and every registry
    detector (entries without a pose model)."""
    return ["none", "hog", *SHORT_NAMES, *sorted(n for n, e in REGISTRY.items() if e.model is None)]


class Detector(Protocol):
    """`detect(image_bgr) -> (boxes_xyxy (N,4) float32, scores (N,))`, persons only."""

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


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
        boxes, inside = clip_boxes(boxes[good], image.shape)
        return boxes, scores[good][inside].astype(np.float32)


class WholeImage:
    """'none': the whole image is one person box."""

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = check_image(image_bgr).shape[:2]
        return np.array([[0, 0, w, h]], np.float32), np.ones(1, np.float32)


def make_detector(spec: str | os.PathLike | Detector | None, runtime: str = "onnxruntime",
                  threads: int | None = None) -> Detector:
    """'none' | 'hog' | a registry detector ('yolox' = DWPose's YOLOX-L; 'yolox-tiny-humanart', 'yolox-m-humanart',
    'yolox-x-humanart': OpenMMLab SDK zips; downloaded once) | an SDK .zip path | a YOLOX-contract .onnx path |
    an object with .detect(). Detectors run on OpenVINO when `runtime` is 'openvino', else on onnxruntime."""
    if spec is None or spec == "none":
        return WholeImage()
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        if not hasattr(spec, "detect"):
            raise InputError(f"detector must be 'none', 'hog', a registry name, an .onnx/.zip path or have "
                             f".detect(), got {spec!r}")
        return spec
    rt = detector_runtime(runtime)
    if spec == "hog":
        return HogDetector()
    name = SHORT_NAMES.get(spec, spec)
    if name in REGISTRY and REGISTRY[name].model is None:
        path = resolve_weights(name)
        if path.suffix.lower() == ".zip":
            return End2EndDetector.from_sdk_zip(path, cached_sha256(path), runtime=rt, threads=threads)
        return YoloxDetector(path, runtime=rt, threads=threads)
    lower = spec.lower()
    if lower.endswith(".zip"):
        return End2EndDetector.from_sdk_zip(_existing(spec), runtime=rt, threads=threads)
    if lower.endswith(".onnx"):
        return YoloxDetector(_existing(spec), runtime=rt, threads=threads)
    if name in REGISTRY:
        raise InputError(f"{spec!r} is a pose model, not a detector; detectors: {', '.join(detector_names())}")
    raise InputError(f"unknown detector {spec!r}: use one of {', '.join(detector_names())}, an OpenMMLab SDK .zip "
                     "or a YOLOX-style .onnx path")


def _existing(path: str) -> str:
    if not os.path.isfile(path):
        raise ModelFileError(f"detector file not found: {path}")
    return path
