"""`PoseTracker`: pose on video with the detector run every `det_every` frames only.

In between, each person's crop box comes from its own confident keypoints of the previous frame, expanded
as mmpose expands a keypoint box (`bbox_xyxy2cs`, padding 1.25) as rtmlib's PoseTracker does, and moved
by the person's recent speed (constant velocity).
On detection frames, detections are matched to the tracks' predicted boxes by IoU (greedy, best pair
first); an unmatched detection starts a track, a track missed by more than `max_missed` detection rounds
in a row retires, and two tracks that converge on the same person are merged into the older one. A track
holding no detection of the frame whose pose is not confident (fewer than `min_keypoints` body keypoints
scoring `keypoint_threshold`) is hidden at once: nobody is there (a false detection, a person gone behind
someone). Hidden tracks coast, are looked at again between detections, and show again when a detection
matches them or their pose is confident and nobody else's. Every person carries a stable integer
`track_id`; keypoints may be smoothed per track (One-Euro).

In a crowd (tests/test_crowd.py: 12 people in three crossing groups, a detector missing 15% of them and
adding a box on the background in 30% of frames), det_every=10 used to show up to 2 detection rounds of
such empty tracks (45 false positives in 40 frames against 36 at det_every=1) while persons coming out from
behind others waited for the next detection (129 misses against 10): now 17 and 60 (det_every=1: 20 and 11),
10.5 persons per frame against 11.8.

`track(frames)` pipelines: a thread decodes frame t+1 and runs the detector on it while the calling thread
estimates the poses of frame t (the runtimes and OpenCV release the GIL).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .detectors import make_detector
from .errors import InputError
from .preprocess import check_image
from .result import PoseResult
from .smoothing import OneEuroConfig, OneEuroFilter
from .specs import BBOX_PADDING, NUM_KEYPOINTS

Detections = tuple[np.ndarray, np.ndarray]


def confident_pose(scores: np.ndarray, threshold: float, min_keypoints: int) -> bool:
    """At least `min_keypoints` body and feet keypoints (0-22) score >= `threshold`: a person is there."""
    return int((scores[:23] >= threshold).sum()) >= min_keypoints


def keypoint_box(keypoints: np.ndarray, scores: np.ndarray, threshold: float, min_keypoints: int,
                 padding: float = BBOX_PADDING) -> np.ndarray | None:
    """x1,y1,x2,y2 around the keypoints scoring >= `threshold`, grown `padding` times about its centre
    (mmpose's box of a pose); None when fewer than `min_keypoints` body and feet keypoints (0-22) are that
    confident (a confident face or hand alone does not locate a person)."""
    if not confident_pose(scores, threshold, max(min_keypoints, 1)):
        return None
    good = keypoints[scores >= threshold]
    lo, hi = good.min(0), good.max(0)
    center, half = (lo + hi) / 2, (hi - lo) / 2 * padding
    return np.concatenate([center - half, center + half]).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of xyxy boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def greedy_match(similarity: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(row, column) pairs, best similarity first, each row and column used once, similarity >= threshold."""
    pairs: list[tuple[int, int]] = []
    if similarity.size == 0:
        return pairs
    rows, cols = np.unravel_index(np.argsort(-similarity, axis=None, kind="stable"), similarity.shape)
    used_r, used_c = set(), set()
    for r, c in zip(rows.tolist(), cols.tolist()):
        if similarity[r, c] < threshold:
            break
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return pairs


def same_pose(k1: np.ndarray, k2: np.ndarray, box: np.ndarray, tolerance: float) -> bool:
    """Two poses of one person: their body and feet keypoints (0-22) lie within `tolerance` times the
    box's longer side of each other, by the median."""
    size = max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0)
    return float(np.median(np.linalg.norm(k1[:23] - k2[:23], axis=1))) < tolerance * size


@dataclass
class Track:
    """One person followed over frames. `box` is where its next crop goes."""

    track_id: int
    box: np.ndarray
    keypoints: np.ndarray | None = None
    scores: np.ndarray | None = None
    missed: int = 0        # detection rounds in a row without a matching detection
    length: int = 0        # frames this person was output in
    lost: int = 0          # frames since it lost its pose to another track (0 = shown)
    det_box: np.ndarray | None = None   # its last matched detection, moved with it since
    center: np.ndarray | None = None    # centre of its last keypoint box
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # px per frame, smoothed
    smoother: OneEuroFilter | None = field(default=None, repr=False)

    def coast(self) -> None:
        """Move the boxes one frame along the velocity."""
        shift = np.tile(self.velocity, 2)
        self.box = self.box + shift
        if self.det_box is not None:
            self.det_box = self.det_box + shift


class PoseTracker:
    """Whole-body poses with stable `track_id`s over the frames of one video or stream.

    `estimator`: an Estimator (its detector is used unless `detector` is given: 'hog', 'yolox', an .onnx
    path or any object with `detect(image) -> (boxes, scores)`). `det_every`: run the detector on frames
    0, N, 2N...; 1 = every frame. `iou_threshold`: a detection continues a track when it overlaps the
    track's predicted box (from keypoints, or from its last detection) this much. `keypoint_threshold` /
    `min_keypoints`: a pose gives the next box when at least that many body keypoints score that high (and
    its box is within half to twice the crop's height), else the box keeps moving at the person's speed; a
    track without a detection in the frame and with fewer confident keypoints than that is hidden at once
    (on the generated crowd, 0.7% of the poses found on real persons had fewer than 4 of 23 body keypoints
    above 0.3, and 69-73% of those found on nobody). `max_missed`: detection rounds a shown track may go
    unmatched. `duplicate_tolerance`: two tracks whose body keypoints agree within this fraction of the box
    size are one person: the longer-lived one shows it, the other is hidden (an occluded person) and coasts
    at its speed until a detection matches it or, between detections, its pose there is confident and unlike
    every shown one, for at most `max_lost` frames (default: 2 detection rounds, at least 10 frames).
    `smoothing`: a OneEuroConfig for the output keypoints (boxes use the raw ones).
    `fps`: the frame rate used for smoothing when no timestamps are given.

    One tracker follows one stream; call `reset()` before another.
    """

    def __init__(self, estimator: Any, det_every: int = 10, detector: Any = None, iou_threshold: float = 0.3,
                 keypoint_threshold: float = 0.3, min_keypoints: int = 4, max_missed: int = 2,
                 duplicate_tolerance: float = 0.08, max_lost: int | None = None,
                 smoothing: OneEuroConfig | None = None, fps: float = 30.0) -> None:
        for name, value, low in (("det_every", det_every, 1), ("max_missed", max_missed, 0),
                                 ("min_keypoints", min_keypoints, 1), ("max_lost", max_lost, 0)):
            if value is None and name == "max_lost":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
            raise InputError(f"fps must be a positive number, got {fps!r}")
        self.estimator = estimator
        self.detector = estimator.detector if detector is None else make_detector(detector)
        self.det_every = int(det_every)
        self.iou_threshold, self.keypoint_threshold = float(iou_threshold), float(keypoint_threshold)
        self.min_keypoints, self.max_missed = int(min_keypoints), int(max_missed)
        self.duplicate_tolerance = float(duplicate_tolerance)
        self.max_lost = max(2 * self.det_every, 10) if max_lost is None else int(max_lost)
        self.smoothing, self.fps = smoothing, float(fps)
        self.reset()

    def reset(self) -> None:
        """Forget every track; the next frame is frame 0 (a detection frame) and ids restart at 0."""
        self.tracks: list[Track] = []
        self.frame_index = 0
        self._next_id = 0

    def is_detection_frame(self, index: int) -> bool:
        return index % self.det_every == 0

    def detect(self, image: np.ndarray) -> Detections:
        """The detector's (boxes, scores) for one frame (safe to call from another thread than `update`)."""
        boxes, scores = self.detector.detect(image)
        return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1)

    def __call__(self, image: np.ndarray, timestamp: float | None = None) -> PoseResult:
        """Track one frame, running the detector when its index is due."""
        detections = self.detect(image) if self.is_detection_frame(self.frame_index) else None
        return self.update(image, detections, timestamp)

    def update(self, image: np.ndarray, detections: Detections | None = None,
               timestamp: float | None = None) -> PoseResult:
        """Track one frame given its `detections` (None on a frame without detection); `timestamp` in
        seconds (default: frame index / fps) times the smoothing."""
        image = check_image(image)
        h, w = image.shape[:2]
        t = self.frame_index / self.fps if timestamp is None else float(timestamp)
        self.frame_index += 1
        matched: set[int] = set()
        if detections is not None:
            matched = self._associate(_clip_boxes(detections[0], w, h))
        self.tracks = [trk for trk in self.tracks if _inside(trk.box, w, h) and trk.lost <= self.max_lost]
        shown = [trk for trk in self.tracks if not trk.lost]
        # between detections, hidden tracks are looked at too: a person coming out from behind another shows again
        hidden = [trk for trk in self.tracks if trk.lost] if detections is None else []
        if shown or hidden:
            result = self.estimator(image, np.stack([trk.box for trk in shown + hidden]))
            for trk, k, s, box in zip(shown + hidden, result.keypoints, result.scores, result.boxes):
                trk.keypoints, trk.scores, trk.box = k, s, box
            shown = self._hide_duplicates(shown)
            shown = self._hide_unconfirmed(shown, matched)
            shown = self._reshow(shown, hidden)
        for trk in self.tracks:
            if trk.lost:
                trk.lost += 1
                trk.coast()
        out_k, out_s, out_b, ids = [], [], [], []
        for trk in shown:
            trk.length += 1
            k = trk.keypoints
            if self.smoothing is not None:
                trk.smoother = trk.smoother or OneEuroFilter(self.smoothing)
                k = trk.smoother(k, t).astype(np.float32)
            out_k.append(k)
            out_s.append(trk.scores)
            out_b.append(trk.box)
            ids.append(trk.track_id)
            self._predict(trk)
        if not shown:
            return _empty()
        return PoseResult(np.stack(out_k), np.stack(out_s), np.stack(out_b), np.asarray(ids, np.int64))

    def _predict(self, trk: Track) -> None:
        """The next frame's box of a shown track: its keypoint box moved at its speed."""
        nxt = keypoint_box(trk.keypoints, trk.scores, self.keypoint_threshold, self.min_keypoints)
        if nxt is None or not 0.5 <= _height(nxt) / max(_height(trk.box), 1.0) <= 2.0:
            trk.coast()  # too few confident keypoints, or a pose twice smaller/larger than its crop: keep the box
            return
        center = (nxt[:2] + nxt[2:]) / 2
        if trk.center is not None:
            trk.velocity = (0.5 * trk.velocity + 0.5 * (center - trk.center)).astype(np.float32)
        trk.center = center
        trk.box = nxt
        trk.coast()

    def _associate(self, det_boxes: np.ndarray) -> set[int]:
        """Detections take over the boxes of the tracks they match (shown or hidden: a hidden one shows
        again), start new tracks; unmatched shown tracks age and retire after `max_missed` rounds. Returns the
        ids of the tracks holding a detection of this frame (matched or new)."""
        pairs: list[tuple[int, int]] = []
        if self.tracks and len(det_boxes):
            sim = box_iou(det_boxes, [trk.box for trk in self.tracks])
            with_det = [k for k, trk in enumerate(self.tracks) if trk.det_box is not None]
            if with_det:
                sim[:, with_det] = np.maximum(sim[:, with_det],
                                              box_iou(det_boxes, [self.tracks[k].det_box for k in with_det]))
            pairs = greedy_match(sim, self.iou_threshold)
        matched_d = {d for d, _ in pairs}
        matched_t = {k for _, k in pairs}
        for d, k in pairs:
            trk = self.tracks[k]
            trk.box, trk.det_box, trk.missed, trk.lost = det_boxes[d], det_boxes[d], 0, 0
        with_detection = {self.tracks[k].track_id for k in matched_t}
        kept = []
        for k, trk in enumerate(self.tracks):
            if k not in matched_t and not trk.lost:
                trk.missed += 1
            if trk.missed <= self.max_missed:
                kept.append(trk)
        for d in range(len(det_boxes)):
            if d not in matched_d:
                kept.append(Track(self._next_id, det_boxes[d], det_box=det_boxes[d]))
                with_detection.add(self._next_id)
                self._next_id += 1
        self.tracks = kept
        return with_detection

    def _confident(self, trk: Track) -> bool:
        return confident_pose(trk.scores, self.keypoint_threshold, self.min_keypoints)

    def _hide_unconfirmed(self, shown: list[Track], with_detection: set[int]) -> list[Track]:
        """Hide at once a track that holds no detection of this frame and whose pose has fewer than
        `min_keypoints` confident body keypoints (nobody there: a person who left or was occluded, or a false
        detection); it is kept hidden for re-identification as a duplicate is."""
        kept = []
        for trk in shown:
            if trk.track_id not in with_detection and not self._confident(trk):
                trk.lost, trk.center = 1, None
                trk.box = trk.det_box if trk.det_box is not None else trk.box
            else:
                kept.append(trk)
        return kept

    def _reshow(self, shown: list[Track], hidden: list[Track]) -> list[Track]:
        """Hidden tracks whose pose at their coasted box is confident and nobody else's show again (a person
        coming out from behind another between detections)."""
        out = list(shown)
        for trk in hidden:
            if self._confident(trk) and not any(same_pose(o.keypoints, trk.keypoints, o.box, self.duplicate_tolerance)
                                     for o in out):
                trk.lost = 0
                out.append(trk)
        return sorted(out, key=lambda trk: trk.track_id)

    def _hide_duplicates(self, shown: list[Track]) -> list[Track]:
        """One shown track per person: of two tracks with the same pose, the one shown longer (then the
        lower id) keeps it; the other is hidden and coasts from its previous box."""
        order = sorted(shown, key=lambda trk: (-trk.length, trk.track_id))
        kept: list[Track] = []
        for trk in order:
            twin = next((o for o in kept if same_pose(o.keypoints, trk.keypoints, o.box, self.duplicate_tolerance)),
                        None)
            if twin is None:
                kept.append(trk)
            else:
                twin.missed = min(twin.missed, trk.missed)
                trk.lost, trk.center = 1, None
                trk.box = trk.det_box if trk.det_box is not None else trk.box
        return sorted(kept, key=lambda trk: trk.track_id)

    def track(self, frames: Iterable[np.ndarray], pipeline: bool = True,
              timestamps: Iterable[float] | None = None) -> Iterator[tuple[np.ndarray, PoseResult]]:
        """(frame, result) for every frame of `frames` (any iterable of BGR images, e.g. a `video.open_source`).

        With `pipeline`, a worker thread pulls the next frames and runs their detections while this thread
        estimates poses; results are identical to `pipeline=False`. An error in the worker is raised here.
        """
        times = iter(timestamps) if timestamps is not None else None
        if not pipeline:
            for frame in frames:
                yield frame, self(frame, next(times) if times is not None else None)
            return
        with _Prefetch(frames, self, depth=min(self.det_every, 16) + 1) as items:
            for frame, detections in items:
                yield frame, self.update(frame, detections, next(times) if times is not None else None)


class _Prefetch:
    """A thread that reads frames and detects on the detection frames, `depth` frames ahead at most."""

    _END = object()

    def __init__(self, frames: Iterable[np.ndarray], tracker: PoseTracker, depth: int) -> None:
        self._frames, self._tracker, self._start = frames, tracker, tracker.frame_index
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dwpose-edge-prefetch", daemon=True)

    def __enter__(self) -> Iterator[tuple[np.ndarray, Detections | None]]:
        self._thread.start()
        return self._items()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a worker waiting on a full queue
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for i, frame in enumerate(self._frames, start=self._start):
                frame = check_image(frame)
                dets = self._tracker.detect(frame) if self._tracker.is_detection_frame(i) else None
                if not self._put((frame, dets)):
                    return
        except BaseException as exc:  # re-raised in the consuming thread
            self._put(_Failure(exc))
            return
        self._put(self._END)

    def _items(self) -> Iterator[tuple[np.ndarray, Detections | None]]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item


@dataclass
class _Failure:
    exc: BaseException


def _clip_boxes(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    out = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out[(out[:, 2] - out[:, 0] >= 2) & (out[:, 3] - out[:, 1] >= 2)]


def _height(box: np.ndarray) -> float:
    return float(box[3] - box[1])


def _inside(box: np.ndarray, w: int, h: int) -> bool:
    """The box still overlaps the image by a few pixels (a person walked out otherwise)."""
    return bool(min(box[2], w) - max(box[0], 0) >= 2 and min(box[3], h) - max(box[1], 0) >= 2)


def _empty() -> PoseResult:
    return PoseResult(np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros((0, NUM_KEYPOINTS), np.float32),
                      np.zeros((0, 4), np.float32), np.zeros((0,), np.int64))
