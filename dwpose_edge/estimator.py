"""`Estimator`: image (+ boxes) in, whole-body keypoints out, on any runtime."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import InputError, WeightsError
from .models.specs import get_spec
from .postprocess import decode_simcc, merge_flip
from .preprocess import check_image, crop_boxes
from .result import PoseResult
from .runtimes.base import Runtime, check_batch, runtime_class


def _torch_model(model: str, weights: Any):
    """Build a DWPose nn.Module with `weights` (path, registry name, state dict, or 'random')."""
    import torch

    from .models import build_model, load_checkpoint

    net = build_model(model)
    if isinstance(weights, str) and weights == "random":
        torch.manual_seed(0)
        return build_model(model)  # seeded default init: untrained, for plumbing tests and demos only
    if weights is None:
        from .embedded import default_weights

        weights = default_weights(model)
    if isinstance(weights, (str, os.PathLike)):
        from .weights import resolve_weights

        weights = resolve_weights(weights)
    return load_checkpoint(net, weights)


class Estimator:
    """Top-down whole-body pose estimation.

    `est(image_bgr, boxes=None)` crops every box (mmpose's padding and affine),
    runs the crops through the runtime in batches of `batch_size`, decodes SimCC
    and returns a PoseResult in image pixels. `boxes=None` means the whole image.
    """

    def __init__(self, model: str = "dwpose-t", weights: Any = None, runtime: str = "torch",
                 device: str = "cpu", precision: str = "fp32", flip_test: bool = False,
                 batch_size: int = 16, threads: int | None = None) -> None:
        self.spec = get_spec(model)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.flip_test = flip_test
        self.batch_size = int(batch_size)
        cls = runtime_class(runtime)
        if runtime == "torch":
            self.runtime: Runtime = cls(_torch_model(model, weights), device=device, precision=precision,
                                        threads=threads)
        else:
            raise WeightsError(f"runtime {runtime!r} is not wired into Estimator yet")
        self.input_size = self.runtime.input_size

    def infer_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SimCC logits for normalized crops (N,3,H,W), batched, with flip test when enabled."""
        crops = check_batch(crops, self.input_size)
        xs, ys = [], []
        for i in range(0, len(crops), self.batch_size):
            chunk = crops[i:i + self.batch_size]
            sx, sy = self.runtime.infer(chunk)
            if self.flip_test:
                fx, fy = self.runtime.infer(np.ascontiguousarray(chunk[..., ::-1]))
                sx, sy = merge_flip((sx, sy), (fx, fy))
            xs.append(sx)
            ys.append(sy)
        return np.concatenate(xs), np.concatenate(ys)

    def __call__(self, image_bgr: np.ndarray, boxes: np.ndarray | None = None) -> PoseResult:
        image = check_image(image_bgr)
        if boxes is None:
            h, w = image.shape[:2]
            boxes = np.array([[0, 0, w, h]], dtype=np.float32)
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4), np.float32)
        if len(boxes) == 0:
            k = 133
            return PoseResult(np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32), boxes)
        crops, centers, scales = crop_boxes(image, boxes, self.input_size)
        simcc_x, simcc_y = self.infer_crops(crops)
        keypoints, scores = decode_simcc(simcc_x, simcc_y, centers, scales, self.input_size)
        return PoseResult(keypoints, scores, boxes)
