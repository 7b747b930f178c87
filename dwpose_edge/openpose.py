"""OpenPose / ControlNet output: DWPose's 18-point body with an inserted neck, face and hands, as JSON or as
the conditioning canvas ControlNet's OpenPose/DWPose models were trained on (pixel-identical by default)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .errors import InputError

if TYPE_CHECKING:  # result.py calls into this module: the class is needed for annotations only
    from .result import PoseResult

# After inserting the neck at index 17 (134 points), these mmpose indices fill these OpenPose slots.
MMPOSE_IDX = [17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3]
OPENPOSE_IDX = [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17]
SCORE_THRESHOLD = 0.3

# OpenPose body limbs (1-based as in the original code) and their colours (RGB).
BODY_LIMBS = [(2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
              (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18)]
BODY_COLORS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
               (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
               (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
              (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]


def to_openpose_points(result: PoseResult) -> tuple[np.ndarray, np.ndarray]:
    """(N,134,2) keypoints and (N,134) scores in OpenPose order: 18 body (neck at 1), 6 feet, 68 face, 2x21 hands.

    The neck is the shoulders' midpoint; its score is 1 where both shoulders score above 0.3, else 0
    (DWPose's rule).
    """
    k, s = result.keypoints, result.scores
    neck = k[:, [5, 6]].mean(axis=1)
    neck_score = ((s[:, 5] > SCORE_THRESHOLD) & (s[:, 6] > SCORE_THRESHOLD)).astype(np.float32)
    kk = np.insert(k, 17, neck, axis=1)
    ss = np.insert(s, 17, neck_score, axis=1)
    kk[:, OPENPOSE_IDX] = kk[:, MMPOSE_IDX]
    ss[:, OPENPOSE_IDX] = ss[:, MMPOSE_IDX]
    return kk, ss


def to_openpose(result: PoseResult, canvas_size: tuple[int, int]) -> dict:
    """The OpenPose JSON layout ControlNet tools read; points scoring <= 0.3 are written as 0, 0, 0.

    `canvas_size` is (height, width) of the image the keypoints are in (pixels). A result with track ids
    gives each person its `track_id`.
    """
    kk, ss = to_openpose_points(result)
    people = []
    for i, (k, s) in enumerate(zip(kk, ss)):
        flat = np.concatenate([k, s[:, None]], axis=1).astype(np.float64)
        flat[s <= SCORE_THRESHOLD] = 0.0
        people.append({"pose_keypoints_2d": flat[:18].ravel().round(3).tolist(),
                       "foot_keypoints_2d": flat[18:24].ravel().round(3).tolist(),
                       "face_keypoints_2d": flat[24:92].ravel().round(3).tolist(),
                       "hand_left_keypoints_2d": flat[92:113].ravel().round(3).tolist(),
                       "hand_right_keypoints_2d": flat[113:134].ravel().round(3).tolist()})
        if result.track_ids is not None:
            people[-1]["track_id"] = int(result.track_ids[i])
    return {"people": people, "canvas_height": int(canvas_size[0]), "canvas_width": int(canvas_size[1])}


CANVAS_STYLES = ("annotator", "scaled")
# The annotator's sizes in pixels at any resolution: limb ellipse half-width, body joint radius, hand edge
# thickness, hand point radius, face point radius.
ANNOTATOR_SIZES = (4, 4, 2, 4, 3)
HAND_POINT_RGB = (0, 0, 255)
FACE_POINT_RGB = (255, 255, 255)
LIMB_DIM = 0.6
# The annotator skips a hand/face point unless its integer pixel x and y both exceed this (so x, y >= 1).
PIXEL_EPS = 0.01
_THRESHOLD32 = np.float32(SCORE_THRESHOLD)


def _hsv_edge_color(edge: int) -> tuple[float, float, float]:
    """RGB (0-255, float) of hand edge `edge`: hue edge/20 at full saturation and value, matplotlib's HSV formula.

    Kept as floats: OpenCV rounds them when drawing, exactly as it does for the annotator's colours.
    """
    h6 = edge / float(len(HAND_EDGES)) * 6.0
    sector = int(h6)
    f = h6 - sector
    q, t = 1.0 - f, 1.0 - (1.0 - f)
    r, g, b = [(1.0, t, 0.0), (q, 1.0, 0.0), (0.0, 1.0, t), (0.0, q, 1.0), (t, 0.0, 1.0), (1.0, 0.0, q)][sector % 6]
    return r * 255, g * 255, b * 255


HAND_EDGE_COLORS = [_hsv_edge_color(e) for e in range(len(HAND_EDGES))]


def canvas_sizes(style: str, canvas_size: tuple[int, int]) -> tuple[int, int, int, int, int]:
    """(limb half-width, joint radius, hand edge thickness, hand point radius, face point radius) in pixels.

    "annotator": fixed, as ControlNet's training canvases were drawn. "scaled": the same sizes times
    max(H, W) / 512 (rounded, at least 1), so big canvases keep the look of a 512 px one.
    """
    if style == "annotator":
        return ANNOTATOR_SIZES
    if style == "scaled":
        k = max(canvas_size) / 512
        return tuple(max(1, round(v * k)) for v in ANNOTATOR_SIZES)  # type: ignore[return-value]
    raise InputError(f"unknown OpenPose canvas style {style!r}; use 'annotator' (ControlNet's training canvas) "
                     "or 'scaled' (sizes grow with the image)")


def _annotator_pixels(points: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pixel coordinates as the annotator computes them: float32 x/W, y/H, multiplied back in float32.

    The round trip is kept on purpose: it can move a coordinate one float32 step below an integer, and
    `int()` then lands one pixel lower, exactly as in the annotator.
    """
    size = np.array([w, h], np.float32)
    return (points.astype(np.float32) / size) * size


def draw_openpose(result: PoseResult, canvas_size: tuple[int, int], style: str = "annotator",
                  rgb: bool = False) -> np.ndarray:
    """The ControlNet OpenPose/DWPose conditioning canvas, (H, W, 3) uint8; BGR unless `rgb=True`.

    `style="annotator"` (default) gives exactly the canvas of the DWPose annotator ControlNet was trained
    on (controlnet_aux `dwpose`, DWPose's ControlNet code): black canvas; the 17 body limbs as filled
    ellipses of half-width 4 in the OpenPose colours; everything times 0.6; body joints as filled circles of
    radius 4; then left hands of all persons, then right hands (edges 2 px thick in HSV colours, points
    radius 4 blue); then faces (radius 3, white). Body points are drawn where their score > 0.3, hand and
    face points where score >= 0.3 and both integer pixel coordinates are >= 1. The annotator's canvas is
    RGB; the BGR array returned by default holds the same image in OpenCV's order, so
    `cv2.imwrite("pose.png", draw_openpose(...))` writes the same PNG the annotator's
    `Image.fromarray(canvas).save("pose.png")` does. `style="scaled"` multiplies all sizes by
    max(H, W) / 512 (see `canvas_sizes`). `canvas_size` is (H, W) of the image the keypoints are in.

    Coordinates and scores go through the annotator's float32 arithmetic as NumPy 2 runs it (mmpose gives
    float32). Under NumPy 1 a few of its scalar steps run in float64 instead; that changes a point only
    when its score is exactly float32(0.3) or a coordinate lies within float32 rounding of a pixel edge
    (no pixel differed on the test photos with NumPy 1.26).
    """
    kk, ss = to_openpose_points(result)
    return draw_openpose_points(kk, ss, canvas_size, style=style, rgb=rgb)


def draw_openpose_points(points: np.ndarray, scores: np.ndarray, canvas_size: tuple[int, int],
                         style: str = "annotator", rgb: bool = False, body: bool = True, hands: bool = True,
                         face: bool = True) -> np.ndarray:
    """`draw_openpose` from points already in OpenPose order: (N,134,2) pixels and (N,134) scores as
    `to_openpose_points` gives them (the neck is drawn where it is, not recomputed). `body`, `hands`,
    `face` = False leave that part out of the canvas (ComfyUI's include_* options)."""
    h, w = check_size(canvas_size)
    half_width, joint_r, hand_thick, hand_r, face_r = canvas_sizes(style, (h, w))
    pts = _annotator_pixels(np.asarray(points), h, w)
    ss = np.asarray(scores).astype(np.float32)
    body_ok = ss[:, :18] > _THRESHOLD32
    canvas = np.zeros((h, w, 3), np.uint8)
    if body:
        for i, (a, b) in enumerate(BODY_LIMBS):  # limb-major, then person: later limbs cover earlier ones
            for p, ok in zip(pts, body_ok):
                if ok[a - 1] and ok[b - 1]:
                    _fill_limb(canvas, p[[a - 1, b - 1]], half_width, BODY_COLORS[i])
        canvas = (canvas * LIMB_DIM).astype(np.uint8)
        for i in range(18):
            for p, ok in zip(pts, body_ok):
                if ok[i]:
                    cv2.circle(canvas, (int(p[i, 0]), int(p[i, 1])), joint_r, BODY_COLORS[i], thickness=-1)
    if hands:
        for lo in (92, 113):
            for p, s in zip(pts, ss):
                _draw_hand(canvas, p[lo:lo + 21], s[lo:lo + 21], hand_thick, hand_r)
    if face:
        for p, s in zip(pts, ss):
            for xy in _visible_pixels(p[24:92], s[24:92]):
                if xy is not None:
                    cv2.circle(canvas, xy, face_r, FACE_POINT_RGB, thickness=-1)
    return canvas if rgb else np.ascontiguousarray(canvas[..., ::-1])


def check_size(size: Any, what: str = "canvas_size", hint: str = "image.shape[:2]") -> tuple[int, int]:
    """(height, width) from the first two entries of `size`; InputError naming `what` unless both are > 0."""
    try:
        h, w = (int(v) for v in tuple(size)[:2])
    except (TypeError, ValueError):
        h = w = 0
    if h <= 0 or w <= 0:
        raise InputError(f"{what} must start with (height, width) in pixels, both > 0, got {size!r}; pass {hint}")
    return h, w


def _fill_limb(canvas: np.ndarray, ends: np.ndarray, half_width: int, color: tuple[int, int, int]) -> None:
    """One limb as the annotator draws it; float32 scalar arithmetic, as its NumPy code does."""
    xs, ys = ends[:, 0], ends[:, 1]
    dx, dy = xs[0] - xs[1], ys[0] - ys[1]
    length = (dy ** 2 + dx ** 2) ** 0.5
    angle = math.degrees(math.atan2(dy, dx))
    poly = cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))), (int(length / 2), half_width), int(angle),
                            0, 360, 1)
    cv2.fillConvexPoly(canvas, poly, color)


def _visible_pixels(points: np.ndarray, scores: np.ndarray) -> list[tuple[int, int] | None]:
    """Integer pixels of hand/face points the annotator draws (None for the others)."""
    out: list[tuple[int, int] | None] = []
    for (x, y), s in zip(points, scores):
        xy = (int(x), int(y))
        out.append(xy if not s < _THRESHOLD32 and xy[0] > PIXEL_EPS and xy[1] > PIXEL_EPS else None)
    return out


def _draw_hand(canvas: np.ndarray, points: np.ndarray, scores: np.ndarray, thickness: int, radius: int) -> None:
    xy = _visible_pixels(points, scores)
    for e, (a, b) in enumerate(HAND_EDGES):
        if xy[a] is not None and xy[b] is not None:
            cv2.line(canvas, xy[a], xy[b], HAND_EDGE_COLORS[e], thickness=thickness)
    for p in xy:
        if p is not None:
            cv2.circle(canvas, p, radius, HAND_POINT_RGB, thickness=-1)
