"""PoseResult: keypoints, scores and boxes of every person found in one image."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .openpose import to_openpose
from .specs import PARTS


@dataclass(frozen=True)
class PoseResult:
    """`keypoints` (N,133,2) image pixels, `scores` (N,133) raw SimCC maxima, `boxes` (N,4) xyxy;
    `track_ids` (N,) int, the person's identity over a video (`tracking.PoseTracker`), else None."""

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    track_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keypoints)

    def __iter__(self) -> Iterator["PoseResult"]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int | slice) -> "PoseResult":
        """One person (or a slice of persons) as a PoseResult of its own."""
        sel = slice(index, index + 1) if isinstance(index, (int, np.integer)) else index
        if isinstance(index, (int, np.integer)) and not -len(self) <= index < len(self):
            raise IndexError(f"person {index} out of range for {len(self)} persons")
        if isinstance(index, (int, np.integer)) and index < 0:
            sel = slice(len(self) + index, len(self) + index + 1)
        return PoseResult(self.keypoints[sel], self.scores[sel], self.boxes[sel],
                          None if self.track_ids is None else self.track_ids[sel])

    def to_coco(self, image_id: int, score_threshold: float = 0.2) -> list[dict]:
        """COCO-WholeBody result entries (one per person): part keypoints as flat x,y,score lists, bbox xywh,
        and `score` = mean of the keypoint scores above `score_threshold` (mmpose's rescoring, box score 1);
        `track_id` too when the result has track ids."""
        out = []
        fields = (("keypoints", "body"), ("foot_kpts", "feet"), ("face_kpts", "face"),
                  ("lefthand_kpts", "left_hand"), ("righthand_kpts", "right_hand"))
        for i, (k, s, box) in enumerate(zip(self.keypoints, self.scores, self.boxes)):
            entry: dict = {"image_id": int(image_id), "category_id": 1}
            if self.track_ids is not None:
                entry["track_id"] = int(self.track_ids[i])
            for field_name, part in fields:
                a, b = PARTS[part]
                entry[field_name] = np.concatenate([k[a:b], s[a:b, None]], 1).astype(np.float64).round(3).ravel().tolist()
            good = s > score_threshold
            entry["score"] = float(s[good].mean()) if good.any() else 0.0
            x1, y1, x2, y2 = (float(v) for v in box)
            entry["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            out.append(entry)
        return out

    def to_openpose(self, canvas_size: tuple[int, int]) -> dict:
        """OpenPose/ControlNet JSON (see `dwpose_edge.openpose.to_openpose`); canvas_size is (H, W)."""
        return to_openpose(self, canvas_size)

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints, scores) of one part: body, feet, face, left_hand or right_hand."""
        if name not in PARTS:
            raise InputError(f"unknown part {name!r}; choose one of {list(PARTS)}")
        a, b = PARTS[name]
        return self.keypoints[:, a:b], self.scores[:, a:b]
