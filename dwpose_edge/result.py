"""PoseResult: keypoints, scores and boxes of every person found in one image."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .models.specs import PARTS


@dataclass(frozen=True)
class PoseResult:
    """`keypoints` (N,133,2) image pixels, `scores` (N,133) raw SimCC maxima, `boxes` (N,4) xyxy."""

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

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
        return PoseResult(self.keypoints[sel], self.scores[sel], self.boxes[sel])

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints, scores) of one part: body, feet, face, left_hand or right_hand."""
        if name not in PARTS:
            raise KeyError(f"unknown part {name!r}; choose one of {list(PARTS)}")
        a, b = PARTS[name]
        return self.keypoints[:, a:b], self.scores[:, a:b]
