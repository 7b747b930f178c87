"""DWPose's YOLOX contract: one raw head output (1, A, 5 + C) decoded here (grid, strides, obj * cls), then NMS."""
from __future__ import annotations

import os

import cv2
import numpy as np

from ..errors import ModelFileError
from ..onnx_file import checked_facts
from ..preprocess import check_image
from .boxes import clip_boxes, nms
from .onnx_session import open_session

YOLOX_STRIDES = (8, 16, 32)


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


def _input_hw(proto) -> dict:
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return {"input_hw": [dims[2].dim_value or 640, dims[3].dim_value or 640]}


class YoloxDetector:
    """DWPose's YOLOX-L ONNX (input `images` 1x3x640x640 BGR 0-255, raw output 1x8400x85), on onnxruntime
    or OpenVINO. Persons: NMS 0.45 on class-0 scores above 0.1, then kept above `score_threshold` (0.3)."""

    def __init__(self, path: str | os.PathLike, runtime: str = "onnxruntime", nms_threshold: float = 0.45,
                 candidate_threshold: float = 0.1, score_threshold: float = 0.3, threads: int | None = None) -> None:
        facts = checked_facts(path, "yolox", _input_hw, n_outputs=1)  # parsed once per machine for these bytes
        self.input_hw = tuple(facts["input_hw"])
        self.nms_threshold, self.candidate_threshold, self.score_threshold = nms_threshold, candidate_threshold, score_threshold
        run, _ = open_session(path, runtime, threads)
        self._run = lambda x: run(x)[0]

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
        boxes, inside = clip_boxes(boxes[good], image.shape)
        return boxes, person[good][inside].astype(np.float32)
