"""A generated video clip with known identities: people walk across a fixed background, each keeping its
body, clothes and id in every frame, with its 133 projected keypoints, visibility and box per frame.

Made for tracking tests: deterministic from a seed, rendered with the same ray caster as the still images.
People move rigidly (a walking pose carried along, with a small bob), so the ground truth is exact.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dwpose_edge.errors import DataError, InputError

from .backgrounds import sample_background
from .figure import Look, draw_person
from .render import Canvas
from .scene import MIN_AREA, _light, keypoint_visibility, place_at
from .skeleton3d import sample_skeleton


@dataclass
class Clip:
    """Frames and per-frame ground truth of `P` people over `T` frames (person index = identity)."""

    frames: list[np.ndarray]   # T BGR uint8 images
    keypoints: np.ndarray      # (T, P, 133, 2) pixels
    visible: np.ndarray        # (T, P, 133) 0 outside the image, 1 hidden, 2 visible
    boxes: np.ndarray          # (T, P, 4) x1,y1,x2,y2 of each person's visible pixels; NaN when under MIN_AREA
    fps: float

    def present(self) -> np.ndarray:
        """(T, P) bool: the person shows at least MIN_AREA pixels in the frame."""
        return np.isfinite(self.boxes[..., 0])


@dataclass
class _Walker:
    look: Look
    skeleton: object
    yaw: float
    depth: float
    x0: float
    speed: float
    phase: float


def _walkers(rng: np.random.Generator, depths: np.ndarray, duration: float, half_widths: np.ndarray) -> list[_Walker]:
    """People walking alternately left-to-right and right-to-left at the given depths (metres), each over
    about 80% of the view's width at its depth and at the centre at its own time (spread over the middle
    of the clip): paths cross, one pair at a time."""
    out = []
    n = len(depths)
    for i, (depth, half) in enumerate(zip(depths, half_widths)):
        direction = 1.0 if i % 2 == 0 else -1.0
        speed = direction * 1.6 * half / duration * rng.uniform(0.85, 1.1)
        at_centre = duration * (0.5 if n == 1 else 0.3 + 0.4 * i / (n - 1))
        x0 = -speed * at_centre + rng.uniform(-0.1, 0.1) * half
        yaw = direction * rng.uniform(35.0, 80.0)
        out.append(_Walker(Look.sample(rng), sample_skeleton(rng, "walk"), float(yaw), float(depth), float(x0),
                           float(speed), float(rng.uniform(0, 2 * np.pi))))
    return out


def render_clip(seed: int = 0, n_frames: int = 40, size: tuple[int, int] = (480, 320), n_people: int = 3,
                fps: float = 12.0) -> Clip:
    """Render `n_frames` frames (W, H = `size`) of `n_people` walking people; same arguments, same bytes."""
    if n_frames < 1 or n_people < 1 or min(size) < 64:
        raise InputError(f"need n_frames >= 1, n_people >= 1 and a size of at least 64 px, got {n_frames}, "
                         f"{n_people}, {size}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x71C]))
    w, h = int(size[0]), int(size[1])
    f = w / (2 * np.tan(np.deg2rad(60.0) / 2))
    light = _light(rng)
    background = sample_background(rng, w, h, clutter=False)
    depths = np.linspace(3.2, 5.6, n_people) + rng.uniform(-0.2, 0.2, n_people)
    walkers = _walkers(rng, depths, n_frames / fps, (w / 2) / f * depths)
    near, far = float(depths.min()), float(depths.max())

    def ground_row(depth: float) -> float:  # feet 92% down the image for the nearest person, 80% for the farthest
        return h * (0.92 - 0.12 * (depth - near) / max(far - near, 1e-6))

    noise_rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x71D]))
    frames, keypoints, visible = [], np.zeros((n_frames, n_people, 133, 2)), np.zeros((n_frames, n_people, 133), int)
    boxes = np.full((n_frames, n_people, 4), np.nan)
    for t in range(n_frames):
        cv = Canvas(w, h, f, (w - 1) / 2, (h - 1) / 2, light)
        placed = []
        for i, p in enumerate(walkers):
            sec = t / fps
            extent = float(np.ptp(p.skeleton.kpts[:, 1]))
            bob = 0.02 * np.sin(2 * np.pi * 1.8 * sec + p.phase)
            feet = (ground_row(p.depth) - (h - 1) / 2) / f * p.depth
            center = np.array([p.x0 + p.speed * sec, feet - extent / 2 - bob, p.depth])
            placed.append(place_at(p.skeleton, p.look, p.yaw, center))
            draw_person(cv, p.skeleton, p.look, placed[-1].R, placed[-1].t, i)
        for i, p in enumerate(placed):
            keypoints[t, i], visible[t, i] = keypoint_visibility(cv, p)
            ys, xs = np.nonzero(cv.owner == i)
            if len(xs) >= MIN_AREA:
                boxes[t, i] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        img = np.where((cv.owner != -1)[..., None], cv.rgb, background)
        img = img + noise_rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.01)
        frames.append(np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)[..., ::-1].copy())
    return Clip(frames, keypoints, visible, boxes, float(fps))


def write_clip(clip: Clip, out_dir: str | os.PathLike) -> Path:
    """Write `frames/000000.png`... (lossless, readable as the image sequence `frames/%06d.png`) and
    `clip.json` (fps; per frame and person: keypoints x,y,v flattened and box, null when absent); returns
    the json path."""
    out = Path(out_dir)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(clip.frames):
        if not cv2.imwrite(str(out / "frames" / f"{t:06d}.png"), frame):
            raise DataError(f"cannot write frame {t} into {out / 'frames'}")
    present = clip.present()
    frames = []
    for t in range(len(clip.frames)):
        people = []
        for i in range(clip.keypoints.shape[1]):
            if not present[t, i]:
                people.append(None)
                continue
            kp = np.concatenate([clip.keypoints[t, i].round(2), clip.visible[t, i, :, None]], 1)
            people.append({"id": i, "box": clip.boxes[t, i].tolist(), "keypoints": kp.ravel().tolist()})
        frames.append(people)
    path = out / "clip.json"
    path.write_text(json.dumps({"fps": clip.fps, "frame_pattern": "frames/%06d.png", "frames": frames},
                               separators=(",", ":")))
    return path


class ClipDetector:
    """A perfect person detector for a clip: the ground-truth boxes of the frame it is given (frames are
    recognised by content), score 1. Isolates tracking from detection quality in tests."""

    def __init__(self, clip: Clip) -> None:
        present = clip.present()
        self._boxes = {_frame_key(f): clip.boxes[t][present[t]].astype(np.float32) for t, f in enumerate(clip.frames)}

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes = self._boxes.get(_frame_key(image))
        if boxes is None:
            raise InputError("ClipDetector: this image is not a frame of its clip")
        return boxes.copy(), np.ones(len(boxes), np.float32)


def _frame_key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


@dataclass
class TrackingScore:
    """Tracking results against a clip's ground truth (body keypoints 0-16, visible ones only)."""

    id_switches: int          # a person's matched track id changed from its previous one
    matched: int              # (frame, person) pairs matched to an output pose
    missed: int               # (frame, person) pairs that should have been found and were not
    extra: int                # output poses matched to nobody
    errors: np.ndarray        # (T, P) median keypoint error in pixels of matched pairs, NaN elsewhere
    ids: np.ndarray           # (T, P) matched track id, -1 elsewhere

    def mean_error(self, frames: np.ndarray | None = None) -> float:
        """Mean of the per-person median keypoint errors (pixels), over `frames` (indices) or all."""
        e = self.errors if frames is None else self.errors[np.asarray(frames)]
        return float(np.nanmean(e)) if np.isfinite(e).any() else float("nan")


def score_tracking(clip: Clip, results: list, min_visible: int = 6, max_error: float = 0.2) -> TrackingScore:
    """Match each frame's output poses (`PoseResult`s with track ids, one per frame) to the people showing at
    least `min_visible` visible body keypoints, one to one, nearest first (median distance of those keypoints,
    at most `max_error` times the person's box height), and count identity switches."""
    T, P = clip.keypoints.shape[:2]
    if len(results) != T:
        raise InputError(f"{len(results)} results for a clip of {T} frames")
    errors, ids = np.full((T, P), np.nan), np.full((T, P), -1, np.int64)
    last: dict[int, int] = {}
    switches = matched = missed = extra = 0
    present = clip.present()
    for t, res in enumerate(results):
        people = [p for p in range(P) if present[t, p] and (clip.visible[t, p, :17] == 2).sum() >= min_visible]
        cost = np.full((len(people), len(res)), np.inf)
        for a, p in enumerate(people):
            vis = clip.visible[t, p, :17] == 2
            limit = max_error * (clip.boxes[t, p, 3] - clip.boxes[t, p, 1])
            gt = clip.keypoints[t, p, :17][vis]
            for j in range(len(res)):
                d = float(np.median(np.linalg.norm(res.keypoints[j, :17][vis] - gt, axis=1)))
                if d <= limit:
                    cost[a, j] = d
        pairs = greedy_pairs(cost)
        for a, j in pairs:
            p, tid = people[a], int(res.track_ids[j])
            errors[t, p], ids[t, p] = cost[a, j], tid
            switches += int(p in last and last[p] != tid)
            last[p] = tid
        matched += len(pairs)
        missed += len(people) - len(pairs)
        extra += len(res) - len(pairs)
    return TrackingScore(switches, matched, missed, extra, errors, ids)


def greedy_pairs(cost: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one (row, column) pairs of a cost matrix, cheapest first (ties in index order); inf = not allowed."""
    used_a, used_j, pairs = set(), set(), []
    for flat in np.argsort(cost, axis=None, kind="stable"):
        a, j = (int(v) for v in np.unravel_index(flat, cost.shape))
        if not np.isfinite(cost[a, j]):
            break
        if a in used_a or j in used_j:
            continue
        used_a.add(a)
        used_j.add(j)
        pairs.append((a, j))
    return pairs
