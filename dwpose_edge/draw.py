"""Draw whole-body skeletons on images."""
from __future__ import annotations

import cv2
import numpy as np

from .specs import PARTS
from .result import PoseResult
from .skeleton import LIMBS, PART_COLORS


def draw(image_bgr: np.ndarray, result: PoseResult, score_threshold: float = 0.3,
         draw_boxes: bool = True) -> np.ndarray:
    """Return a copy of `image_bgr` with every person's boxes, limbs and keypoints drawn.

    Keypoints whose score is below `score_threshold` are not drawn, nor limbs touching them.
    """
    canvas = np.ascontiguousarray(image_bgr).copy()
    size = max(canvas.shape[:2])
    thick = max(1, size // 400)
    radius = max(1, size // 300)
    for person in range(len(result)):
        kpts, scores = result.keypoints[person], result.scores[person]
        ok = scores > score_threshold
        if draw_boxes:
            x1, y1, x2, y2 = (int(round(v)) for v in result.boxes[person])
            cv2.rectangle(canvas, (x1, y1), (x2, y2), (80, 80, 255), thick)
        for part, limbs in LIMBS.items():
            for a, b in limbs:
                if ok[a] and ok[b]:
                    pa = tuple(int(round(v)) for v in kpts[a])
                    pb = tuple(int(round(v)) for v in kpts[b])
                    cv2.line(canvas, pa, pb, PART_COLORS[part], thick, cv2.LINE_AA)
        for part, (lo, hi) in PARTS.items():
            r = radius if part in ("body", "feet") else max(1, radius // 2)
            for i in range(lo, hi):
                if ok[i]:
                    cv2.circle(canvas, tuple(int(round(v)) for v in kpts[i]), r, PART_COLORS[part], -1, cv2.LINE_AA)
    return canvas
