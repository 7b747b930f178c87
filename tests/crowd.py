"""A generated crowd clip with known identities, a detector that sees it as a real one would (jittered boxes,
missed people, boxes on the background) and a MOT-style counter: shared by tests/test_crowd.py and the
tracking benchmark (bench/benchmarks/test_bench_tracking.py)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from dwpose_edge.errors import InputError
from dwpose_edge.train.synth.clip import Clip, greedy_pairs, render_clip

# a dozen people per frame, as in the clip of issue #27: three groups of four side by side, each group crossing
# (people walk through one another within a group; the groups stay apart)
GROUPS = 3
GROUP = {"n_frames": 40, "size": (320, 360), "n_people": 4, "fps": 12.0}
MIN_VISIBLE = 6  # a person with fewer visible body keypoints (0-16) need not be found (heavily occluded)
MOT_IOU = 0.5


def crowd_clip(seed: int = 1, groups: int = GROUPS, **overrides) -> Clip:
    """`groups` generated clips (seeds seed, seed+1, ...) side by side as one clip: frames joined left to right,
    ground truth moved by each group's offset (a keypoint outside its own group's view stays marked 0, outside)."""
    parts = [render_clip(seed=seed + g, **{**GROUP, **overrides}) for g in range(groups)]
    width = parts[0].frames[0].shape[1]
    shift = [np.array([g * width, 0] * 2, np.float64) for g in range(groups)]
    return Clip([np.concatenate(f, axis=1) for f in zip(*(c.frames for c in parts))],
                np.concatenate([c.keypoints + s[:2] for c, s in zip(parts, shift)], axis=1),
                np.concatenate([c.visible for c in parts], axis=1),
                np.concatenate([c.boxes + s for c, s in zip(parts, shift)], axis=1), parts[0].fps)


class NoisyClipDetector:
    """A person detector on a generated clip that errs as a real one does, the same way on every run: each
    person (at least `MIN_VISIBLE` visible body keypoints) is missed with probability `drop`, the others'
    ground-truth boxes move by `jitter` times their size (normal), and a box on the background is added with
    probability `false_rate` per frame. Frames are recognised by content; unknown images get no boxes."""

    def __init__(self, clip: Clip, seed: int = 0, drop: float = 0.15, jitter: float = 0.05,
                 false_rate: float = 0.3) -> None:
        rng = np.random.default_rng(seed)
        h, w = clip.frames[0].shape[:2]
        present = clip.present()
        self._boxes: dict[str, np.ndarray] = {}
        for t, frame in enumerate(clip.frames):
            boxes = []
            for p in range(clip.boxes.shape[1]):
                seen = present[t, p] and (clip.visible[t, p, :17] == 2).sum() >= MIN_VISIBLE
                missed, noise = rng.random() < drop, rng.standard_normal(4)
                if seen and not missed:
                    b = clip.boxes[t, p]
                    size = np.tile(b[2:] - b[:2], 2)
                    boxes.append(b + noise * jitter * size)
            if rng.random() < false_rate:  # a person-sized box at a random place (mostly background)
                bh = rng.uniform(0.3, 0.6) * h
                x, y = rng.uniform(0, w - bh / 2), rng.uniform(0, h - bh)
                boxes.append([x, y, x + bh / 2, y + bh])
            self._boxes[_key(frame)] = np.asarray(boxes, np.float32).reshape(-1, 4)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes = self._boxes.get(_key(image), np.zeros((0, 4), np.float32))
        return boxes.copy(), np.ones(len(boxes), np.float32)


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def pose_box(keypoints: np.ndarray, w: int, h: int, inside: np.ndarray | None = None) -> np.ndarray:
    """x1,y1,x2,y2 around body and feet keypoints (0-22; `inside`: those of them in view), clipped to the image:
    one box definition for the ground truth and the output, so that IoU compares where the persons are, not how
    boxes are padded."""
    k = np.asarray(keypoints, np.float64)[:23]
    if inside is not None and inside[:23].any():
        k = k[inside[:23]]
    lo, hi = k.min(0), k.max(0)
    return np.array([np.clip(lo[0], 0, w), np.clip(lo[1], 0, h), np.clip(hi[0], 0, w), np.clip(hi[1], 0, h)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    union = np.prod(np.clip(a[2:] - a[:2], 0, None)) + np.prod(np.clip(b[2:] - b[:2], 0, None)) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class MotCounts:
    """CLEAR-MOT counts over a clip: `persons` output per frame, `false_positives` (outputs matching nobody),
    `misses` (people to find that no output matches) and `id_switches` (a person's matched track id differs from
    its previous matched one), per frame."""

    frames: int
    persons: list[int] = field(default_factory=list)
    false_positives: list[int] = field(default_factory=list)
    misses: list[int] = field(default_factory=list)
    id_switches: list[int] = field(default_factory=list)
    to_find: list[int] = field(default_factory=list)

    def per_frame(self, name: str) -> float:
        return float(np.sum(getattr(self, name))) / max(self.frames, 1)

    def mota(self) -> float:
        errors = sum(self.false_positives) + sum(self.misses) + sum(self.id_switches)
        return 1.0 - errors / max(sum(self.to_find), 1)

    def summary(self) -> dict[str, float]:
        return {"persons_per_frame": round(self.per_frame("persons"), 2),
                "to_find_per_frame": round(self.per_frame("to_find"), 2),
                "false_positives": int(sum(self.false_positives)), "misses": int(sum(self.misses)),
                "id_switches": int(sum(self.id_switches)), "mota": round(self.mota(), 3)}


def mot_counts(clip: Clip, results: list, iou_threshold: float = MOT_IOU) -> MotCounts:
    """Per frame, match the output persons (PoseResults with track ids) to the ground-truth people by the IoU of
    their `pose_box`es (>= `iou_threshold`, greedy, best first). People with fewer than MIN_VISIBLE visible
    body keypoints are optional: an output on one is neither a hit nor a false positive, missing one is no miss."""
    T, P = clip.keypoints.shape[:2]
    if len(results) != T:
        raise InputError(f"{len(results)} results for a clip of {T} frames")
    h, w = clip.frames[0].shape[:2]
    present = clip.present()
    counts = MotCounts(T)
    last: dict[int, int] = {}
    for t, res in enumerate(results):
        people = [p for p in range(P) if present[t, p]]
        required = {p for p in people if (clip.visible[t, p, :17] == 2).sum() >= MIN_VISIBLE}
        gt = [pose_box(clip.keypoints[t, p], w, h, clip.visible[t, p] > 0) for p in people]
        out = [pose_box(k, w, h) for k in res.keypoints]
        iou = np.array([[_iou(g, o) for o in out] for g in gt]).reshape(len(gt), len(out))
        pairs = greedy_pairs(np.where(iou >= iou_threshold, -iou, np.inf))  # best IoU first
        switches = 0
        for a, j in pairs:
            p, tid = people[a], int(res.track_ids[j])
            if p in required:
                switches += int(p in last and last[p] != tid)
                last[p] = tid
        hits = {people[a] for a, _ in pairs}
        counts.persons.append(len(res))
        counts.false_positives.append(len(out) - len(pairs))
        counts.misses.append(len(required - hits))
        counts.id_switches.append(switches)
        counts.to_find.append(len(required))
    return counts
