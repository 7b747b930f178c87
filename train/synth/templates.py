"""Canonical 3D landmark templates: 68 iBUG face points on a head, 21-point hand with finger joints.

Head frame (metres, adult head): x = the person's LEFT, y = up, z = forward (out of the face),
origin at eye level on the head's vertical axis. iBUG layout: point 0 is the jaw end on the person's
RIGHT (x < 0, image-left for a person facing the camera), 36-41 the right eye, 42-47 the left eye.
"""
from __future__ import annotations

import numpy as np

# Head volumes in the head frame: (centre, semi-axes). Cranium and a lower face/jaw ellipsoid.
CRANIUM = (np.array([0.0, 0.022, -0.012]), np.array([0.076, 0.100, 0.100]))
JAW = (np.array([0.0, -0.048, 0.014]), np.array([0.060, 0.078, 0.080]))
EAR_OFFSET = np.array([0.074, -0.008, -0.008])   # left ear; mirror x for the right
NOSE_PROTRUSION = np.array([0.003, 0.007, 0.012, 0.018])  # points 27-30, beyond the face surface


def _front_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """z of the front surface of the union of cranium and jaw at (x, y) (clamped to the rim)."""
    zs = []
    for c, r in (CRANIUM, JAW):
        q = 1.0 - ((x - c[0]) / r[0]) ** 2 - ((y - c[1]) / r[1]) ** 2
        zs.append(np.where(q > 0, c[2] + r[2] * np.sqrt(np.clip(q, 0, None)), -1.0))
    return np.maximum(zs[0], zs[1])


def face_template_2d(rng: np.random.Generator | None = None, mouth_open: float = 0.0) -> np.ndarray:
    """(68, 2) frontal (x, y) layout of the iBUG landmarks, optionally jittered per person."""
    pts = np.zeros((68, 2))
    j = (lambda s: rng.normal(0, s)) if rng is not None else (lambda s: 0.0)
    eye_dx, eye_w, eye_h = 0.032 + j(0.002), 0.0138 + j(0.001), 0.0055 + j(0.0008)
    mouth_y, mouth_w = -0.074 + j(0.003), 0.025 + j(0.002)
    jaw_w, jaw_h = 0.066 + j(0.003), 0.122 + j(0.004)
    # jaw 0..16: from the person's right (x<0), down around the chin, to the left
    a = np.linspace(0.0, np.pi, 17)
    c, s = np.cos(a), np.sin(a)
    pts[0:17, 0] = -jaw_w * np.sign(c) * np.abs(c) ** 0.85
    pts[0:17, 1] = 0.004 - jaw_h * s ** 0.75
    # brows: 17-21 right brow outer->inner, 22-26 left brow inner->outer
    bx = np.linspace(0.058, 0.013, 5)
    by = 0.026 + j(0.002) + 0.008 * np.sin(np.linspace(0.35, np.pi - 0.2, 5))
    pts[17:22] = np.stack([-bx, by], 1)
    pts[22:27] = np.stack([bx[::-1], by[::-1]], 1)
    # nose bridge 27-30, nose base 31-35 (31 on the person's right)
    pts[27:31] = np.stack([np.zeros(4), [0.006, -0.010, -0.025, -0.040]], 1)
    pts[31:36] = np.stack([[-0.016, -0.008, 0.0, 0.008, 0.016], [-0.046, -0.049, -0.051, -0.049, -0.046]], 1)
    # eyes: right 36 outer, 37-38 upper lid, 39 inner, 40-41 lower lid; left 42 inner ... 45 outer
    ring = np.array([[-1, 0], [-1 / 3, 1], [1 / 3, 1], [1, 0], [1 / 3, -1], [-1 / 3, -1]], float)
    pts[36:42] = np.array([-eye_dx, 0.0]) + ring * [eye_w, eye_h]
    pts[42:48] = np.array([eye_dx, 0.0]) + ring * [eye_w, eye_h]
    # mouth: outer 48 (right corner) .. 54 (left corner) upper, 55-59 lower; inner 60-67
    o = max(mouth_open, 0.0)
    ux = np.array([-1, -0.64, -0.28, 0, 0.28, 0.64, 1]) * mouth_w
    uy = np.array([0, 0.32, 0.44, 0.36, 0.44, 0.32, 0]) * mouth_w + o * 0.3
    lx = np.array([0.64, 0.28, 0, -0.28, -0.64]) * mouth_w
    ly = -np.array([0.40, 0.56, 0.6, 0.56, 0.40]) * mouth_w - o * 0.7
    pts[48:55] = np.stack([ux, uy], 1)
    pts[55:60] = np.stack([lx, ly], 1)
    ix = np.array([-0.76, -0.28, 0, 0.28, 0.76, 0.28, 0, -0.28]) * mouth_w
    iy = np.array([0, 0.08, 0.08, 0.08, 0, -0.08, -0.08, -0.08]) * mouth_w + np.array(
        [0, 1, 1, 1, 0, -1, -1, -1]) * o * 0.5
    pts[60:68] = np.stack([ix, iy], 1)
    pts[:, 1] += np.where(np.arange(68) >= 48, mouth_y, 0.0)
    return pts


def face_template_3d(pts2d: np.ndarray) -> np.ndarray:
    """Lift a 2D frontal layout onto the head surface (jaw points slightly inside the silhouette)."""
    x, y = pts2d[:, 0].copy(), pts2d[:, 1].copy()
    z = _front_z(x, y)
    # points outside the head footprint: pull them inwards until they land on it
    for _ in range(20):
        bad = z < -0.5
        if not bad.any():
            break
        x[bad] *= 0.95
        y[bad] = y[bad] * 0.98
        z = _front_z(x, y)
    out = np.stack([x, y, z], 1)
    out[27:31, 2] += NOSE_PROTRUSION
    out[31:36, 2] += np.array([0.004, 0.007, 0.009, 0.007, 0.004])
    out[48:68, 2] += 0.006
    return out


# ---- hand: local axes (a = along the hand, b = thumb side, n = palm normal) ----
MCP = np.array([[0.092, 0.030], [0.095, 0.008], [0.088, -0.012], [0.078, -0.030]])
PHALANGES = np.array([[0.040, 0.024, 0.020], [0.045, 0.028, 0.022], [0.042, 0.027, 0.021], [0.033, 0.019, 0.018]])
SPREAD = np.array([0.12, 0.02, -0.08, -0.18])
THUMB_CMC = np.array([0.024, 0.020, 0.010])
THUMB_LEN = np.array([0.045, 0.032, 0.028])

HAND_SHAPES = ("open", "relaxed", "fist", "point", "random", "pinch")


def sample_hand_shape(rng: np.random.Generator, shape: str | None = None) -> np.ndarray:
    """(5, 4) angles: per finger (thumb, index..pinky) joint flexions x3 and spread factor."""
    shape = shape or str(rng.choice(HAND_SHAPES, p=[0.2, 0.35, 0.15, 0.08, 0.14, 0.08]))
    d = np.deg2rad
    ang = np.zeros((5, 4))
    for f in range(5):
        if shape == "open":
            m, p = rng.uniform(-10, 15), rng.uniform(0, 15)
        elif shape == "relaxed":
            m, p = rng.uniform(5, 40), rng.uniform(15, 55)
        elif shape == "fist" or (shape == "point" and f >= 2) or (shape == "pinch" and f >= 3):
            m, p = rng.uniform(70, 95), rng.uniform(85, 105)
        elif shape == "pinch" and f in (0, 1):
            m, p = rng.uniform(25, 45), rng.uniform(25, 45)
        else:
            m, p = rng.uniform(-10, 90), rng.uniform(0, 100)
        if f == 0:
            m, p = m * 0.5, p * 0.5
        ang[f, :3] = d([m, p, p * 0.7])
    ang[:, 3] = rng.uniform(0.2, 1.8) if shape in ("open", "random") else rng.uniform(0.2, 0.8)
    return ang


def hand_points(angles: np.ndarray, size: float = 1.0) -> np.ndarray:
    """(21, 3) hand keypoints in (a, b, n) coordinates: 0 wrist, 1-4 thumb, 5-8 index ... 17-20 pinky."""
    pts = np.zeros((21, 3))
    nrm = np.array([0.0, 0.0, 1.0])
    for f in range(4):
        sp = SPREAD[f] * angles[f + 1, 3]
        d0 = np.array([np.cos(sp), np.sin(sp), 0.0])
        p = np.array([MCP[f, 0], MCP[f, 1], 0.0])
        pts[5 + 4 * f] = p
        cum = 0.0
        for k in range(3):
            cum += angles[f + 1, k]
            p = p + PHALANGES[f, k] * (d0 * np.cos(cum) + nrm * np.sin(cum))
            pts[6 + 4 * f + k] = p
    # thumb: metacarpal from the CMC, curling across the palm towards the little finger
    d0 = np.array([0.72, 0.62, 0.30]) + np.array([0.0, 0.25, -0.1]) * (angles[0, 3] - 1.0)
    d0 /= np.linalg.norm(d0)
    q = np.array([0.25, -0.75, 0.6])
    q -= q.dot(d0) * d0
    q /= np.linalg.norm(q)
    p = THUMB_CMC.copy()
    pts[1] = p
    cum = 0.0
    for k in range(3):
        cum += angles[0, k] if k else angles[0, 0] * 0.6
        p = p + THUMB_LEN[k] * (d0 * np.cos(cum) + q * np.sin(cum))
        pts[2 + k] = p
    return pts * size
