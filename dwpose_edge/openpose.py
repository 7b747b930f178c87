"""OpenPose / ControlNet output: DWPose's 18-point body with an inserted neck, face and hands, as JSON or a drawn canvas."""
from __future__ import annotations

import math

import cv2
import numpy as np

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

    `canvas_size` is (height, width) of the image the keypoints are in (pixels).
    """
    kk, ss = to_openpose_points(result)
    people = []
    for k, s in zip(kk, ss):
        flat = np.concatenate([k, s[:, None]], axis=1).astype(np.float64)
        flat[s <= SCORE_THRESHOLD] = 0.0
        people.append({"pose_keypoints_2d": flat[:18].ravel().round(3).tolist(),
                       "foot_keypoints_2d": flat[18:24].ravel().round(3).tolist(),
                       "face_keypoints_2d": flat[24:92].ravel().round(3).tolist(),
                       "hand_left_keypoints_2d": flat[92:113].ravel().round(3).tolist(),
                       "hand_right_keypoints_2d": flat[113:134].ravel().round(3).tolist()})
    return {"people": people, "canvas_height": int(canvas_size[0]), "canvas_width": int(canvas_size[1])}


def draw_openpose(result: PoseResult, canvas_size: tuple[int, int]) -> np.ndarray:
    """ControlNet-style skeleton on a black (H,W,3) BGR canvas: coloured body limbs, HSV-coloured hands, white face."""
    h, w = canvas_size
    canvas = np.zeros((h, w, 3), np.uint8)
    kk, ss = to_openpose_points(result)
    stick = max(2, round(4 * max(h, w) / 512))
    for k, s in zip(kk, ss):
        ok = s > SCORE_THRESHOLD
        for (a, b), color in zip(BODY_LIMBS, BODY_COLORS):
            a, b = a - 1, b - 1
            if not (ok[a] and ok[b]):
                continue
            (x1, y1), (x2, y2) = k[a], k[b]
            length = math.hypot(x1 - x2, y1 - y2)
            angle = math.degrees(math.atan2(y1 - y2, x1 - x2))
            poly = cv2.ellipse2Poly((int((x1 + x2) / 2), int((y1 + y2) / 2)), (int(length / 2), stick),
                                    int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, poly, [int(c * 0.6) for c in color[::-1]])
        for i in range(18):
            if ok[i]:
                cv2.circle(canvas, tuple(int(v) for v in k[i]), stick, BODY_COLORS[i][::-1], -1)
        for lo in (92, 113):
            for e, (a, b) in enumerate(HAND_EDGES):
                if ok[lo + a] and ok[lo + b]:
                    hsv = np.uint8([[[int(e / len(HAND_EDGES) * 180), 255, 255]]])
                    color = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].tolist()
                    cv2.line(canvas, tuple(int(v) for v in k[lo + a]), tuple(int(v) for v in k[lo + b]), color, 2)
            for i in range(lo, lo + 21):
                if ok[i]:
                    cv2.circle(canvas, tuple(int(v) for v in k[i]), max(1, stick // 2), (0, 0, 255), -1)
        for i in range(24, 92):
            if ok[i]:
                cv2.circle(canvas, tuple(int(v) for v in k[i]), max(1, stick // 2), (255, 255, 255), -1)
    return canvas
