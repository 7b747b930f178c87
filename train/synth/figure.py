"""Appearance (skin, hair, clothes, face paint) and the volumes of a posed person as render primitives."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .render import Albedo, Canvas, solid
from .skeleton3d import Skeleton, rot, unit
from .templates import CRANIUM, JAW

SKIN = np.array([[0.96, 0.80, 0.69], [0.90, 0.72, 0.58], [0.78, 0.57, 0.42], [0.60, 0.42, 0.30],
                 [0.42, 0.28, 0.20], [0.27, 0.18, 0.13]])
HAIR = np.array([[0.05, 0.04, 0.03], [0.18, 0.11, 0.06], [0.38, 0.24, 0.12], [0.70, 0.55, 0.32],
                 [0.55, 0.25, 0.10], [0.55, 0.55, 0.55], [0.85, 0.85, 0.82]])
FACE_TEX_RES = 800.0                      # texels per metre of the head-frame (x, y) face plane
FACE_TEX_X, FACE_TEX_Y = (-0.085, 0.085), (-0.145, 0.07)


def _rand_color(rng: np.random.Generator) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(0, 256) * rng.random() ** 0.5, rng.integers(25, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


@dataclass
class Cloth:
    """A garment colour with a pattern evaluated in the person frame (metres)."""

    c1: np.ndarray
    c2: np.ndarray
    pattern: int     # 0 solid, 1 horizontal stripes, 2 vertical stripes, 3 checks, 4 dots, 5 noise bands
    period: float

    @staticmethod
    def sample(rng: np.random.Generator) -> "Cloth":
        c1 = _rand_color(rng)
        c2 = _rand_color(rng) if rng.random() < 0.6 else c1 * rng.uniform(0.4, 0.8)
        pattern = int(rng.choice(6, p=[0.42, 0.16, 0.1, 0.12, 0.08, 0.12]))
        return Cloth(c1, c2.astype(np.float32), pattern, float(rng.uniform(0.015, 0.09)))

    def albedo(self, R: np.ndarray, t: np.ndarray) -> Albedo:
        def f(p: np.ndarray, n: np.ndarray) -> np.ndarray:
            q = (p - t) @ R / self.period
            if self.pattern == 0:
                w = np.zeros(len(p))
            elif self.pattern == 1:
                w = np.sin(q[:, 1] * np.pi) > 0
            elif self.pattern == 2:
                w = np.sin((q[:, 0] + q[:, 2]) * np.pi) > 0
            elif self.pattern == 3:
                w = (np.floor(q[:, 0] + q[:, 2]) + np.floor(q[:, 1])) % 2
            elif self.pattern == 4:
                w = (np.sin(q[:, 0] * 3) * np.sin(q[:, 1] * 3) * np.sin(q[:, 2] * 3 + 1)) > 0.35
            else:
                w = 0.5 + 0.5 * np.sin(q[:, 1] * 1.3 + np.sin(q[:, 0] * 2.1) * 1.5)
            w = np.asarray(w, np.float32)[:, None]
            return self.c1 * (1 - w) + self.c2 * w
        return f


@dataclass
class Look:
    """Everything about a person's appearance."""

    skin: np.ndarray
    hair: np.ndarray
    hair_style: int      # 0 bald, 1 short, 2 medium, 3 long
    hair_volume: float
    top: Cloth
    bottom: Cloth
    shoes: np.ndarray
    sleeves: int         # 0 none, 1 short, 2 long
    legwear: int         # 0 shorts, 1 trousers, 2 skirt
    eye: np.ndarray
    beard: bool

    @staticmethod
    def sample(rng: np.random.Generator) -> "Look":
        k = rng.uniform(0, len(SKIN) - 1)
        skin = SKIN[int(k)] * (1 - k % 1) + SKIN[min(int(k) + 1, len(SKIN) - 1)] * (k % 1)
        hair = HAIR[rng.integers(len(HAIR))] * rng.uniform(0.8, 1.15)
        if rng.random() < 0.05:
            hair = _rand_color(rng)
        return Look(skin.astype(np.float32) * rng.uniform(0.93, 1.05), np.clip(hair, 0, 1).astype(np.float32),
                    int(rng.choice(4, p=[0.1, 0.4, 0.25, 0.25])), float(rng.uniform(0.95, 1.15)),
                    Cloth.sample(rng), Cloth.sample(rng), _rand_color(rng) * rng.uniform(0.3, 1.0),
                    int(rng.choice(3, p=[0.2, 0.35, 0.45])), int(rng.choice(3, p=[0.25, 0.6, 0.15])),
                    np.array([[0.25, 0.15, 0.08], [0.2, 0.35, 0.55], [0.3, 0.4, 0.25], [0.1, 0.07, 0.05]],
                             np.float32)[rng.integers(4)], bool(rng.random() < 0.12))


def _c(rgb, alpha: float = 1.0) -> tuple[float, float, float, float]:
    r, g, b = (float(x) for x in rgb)
    return (r, g, b, float(alpha))


def face_texture(face2d: np.ndarray, look: Look) -> np.ndarray:
    """RGBA float texture of brows, eyes, nostrils and lips in the head-frame (x, y) plane."""
    w = int((FACE_TEX_X[1] - FACE_TEX_X[0]) * FACE_TEX_RES)
    h = int((FACE_TEX_Y[1] - FACE_TEX_Y[0]) * FACE_TEX_RES)
    tex = np.zeros((h, w, 4), np.float32)
    px = lambda pts: np.stack([(pts[:, 0] - FACE_TEX_X[0]) * FACE_TEX_RES,  # noqa: E731
                               (FACE_TEX_Y[1] - pts[:, 1]) * FACE_TEX_RES], 1)
    P = px(face2d)
    ip = lambda a, b: np.round(P[a:b] * 4).astype(np.int32)  # noqa: E731  (4x subpixel: shift=2)
    skin, hair = look.skin, look.hair
    if look.beard:
        jaw = np.concatenate([P[3:14], P[[54, 57, 48]] + [0, 6]])
        cv2.fillPoly(tex, [np.round(jaw * 4).astype(np.int32)], _c(hair * 0.9, 0.85), cv2.LINE_AA, 2)
    brow = _c(np.minimum(hair, 0.35) * 0.9)
    for a in (17, 22):
        cv2.polylines(tex, [ip(a, a + 5)], False, brow, 4, cv2.LINE_AA, 2)
    for a in (36, 42):
        cv2.fillPoly(tex, [ip(a, a + 6)], (0.92, 0.9, 0.88, 1.0), cv2.LINE_AA, 2)
        c = P[a:a + 6].mean(0)
        r = (P[a + 3, 0] - P[a, 0]) * 0.27
        cv2.circle(tex, tuple(np.round(c * 4).astype(int)), int(r * 4), _c(look.eye), -1, cv2.LINE_AA, 2)
        cv2.circle(tex, tuple(np.round(c * 4).astype(int)), int(r * 2), (0.02, 0.02, 0.02, 1.0), -1, cv2.LINE_AA, 2)
        cv2.polylines(tex, [ip(a, a + 4)], False, (0.1, 0.07, 0.06, 1.0), 2, cv2.LINE_AA, 2)
    for i in (32, 34):
        cv2.circle(tex, tuple(np.round(P[i] * 4).astype(int)), 8, _c(skin * 0.35, 0.9), -1, cv2.LINE_AA, 2)
    cv2.polylines(tex, [ip(31, 36)], False, _c(skin * 0.6, 0.6), 2, cv2.LINE_AA, 2)
    lip = skin * np.array([0.85, 0.55, 0.55], np.float32)
    cv2.fillPoly(tex, [ip(48, 60)], _c(lip), cv2.LINE_AA, 2)
    cv2.fillPoly(tex, [ip(60, 68)], (0.25, 0.08, 0.08, 1.0), cv2.LINE_AA, 2)
    cv2.polylines(tex, [ip(60, 68)], True, _c(lip * 0.6), 1, cv2.LINE_AA, 2)
    return cv2.GaussianBlur(tex, (3, 3), 0)


def head_albedo(look: Look, tex: np.ndarray, Rh: np.ndarray, origin: np.ndarray, scale: float) -> Albedo:
    """Skin with painted face on the front, hair above a hairline that drops towards the back."""
    front_line = {0: 9.0, 1: 0.062, 2: 0.055, 3: 0.05}[look.hair_style]
    back_line = {0: 9.0, 1: -0.045, 2: -0.075, 3: -0.13}[look.hair_style]

    def f(p: np.ndarray, n: np.ndarray) -> np.ndarray:
        q = (p - origin) @ Rh / scale
        out = np.broadcast_to(look.skin, (len(p), 3)).copy()
        col = np.clip(((q[:, 0] - FACE_TEX_X[0]) * FACE_TEX_RES).astype(int), 0, tex.shape[1] - 1)
        row = np.clip(((FACE_TEX_Y[1] - q[:, 1]) * FACE_TEX_RES).astype(int), 0, tex.shape[0] - 1)
        t = tex[row, col]
        a = t[:, 3:4] * (q[:, 2:3] > 0.0)
        out = out * (1 - a) + t[:, :3] * a
        k = np.clip((q[:, 2] - 0.0) / 0.07, 0, 1)
        line = back_line + (front_line - back_line) * k
        side = (np.abs(q[:, 0]) > 0.058) & (q[:, 2] < 0.045)
        line = np.where(side, np.minimum(line, 0.03 if look.hair_style > 1 else 0.045), line)
        hair = (q[:, 1] > line + 0.004 * np.sin(q[:, 0] * 300)) & (look.hair_style > 0)
        out[hair] = look.hair * (0.9 + 0.2 * np.sin(q[hair, 0] * 900 + q[hair, 1] * 200))[:, None]
        return out
    return f


def draw_person(cv: Canvas, sk: Skeleton, look: Look, R: np.ndarray, t: np.ndarray, owner: int) -> None:
    """Ray-cast the whole person (person frame -> camera by p @ R.T + t) into the canvas."""
    pr, g, s, hs = sk.props, sk.props.girth, sk.props.scale, sk.props.head
    P = lambda v: np.asarray(v) @ R.T + t  # noqa: E731
    K = P(sk.kpts)
    J = {k: P(v) for k, v in sk.joints.items()}
    F = {k: R @ v for k, v in sk.frames.items()}
    skin = solid(look.skin)
    top, bottom = look.top.albedo(R, t), look.bottom.albedo(R, t)
    cone, ell = cv.round_cone, cv.ellipsoid
    depth = float(np.linalg.norm(J["chest"]))
    px_per_m = cv.f / max(depth, 1e-3)
    # ---- legs and feet ----
    for side, (hi, ki, ai, fo, fn) in ((1, (11, 13, 15, 17, "foot_l")), (-1, (12, 14, 16, 20, "foot_r"))):
        th = bottom if look.legwear != 2 else skin
        cone(K[hi], K[ki], 0.085 * g * pr.hips, 0.056 * g, th if look.legwear != 2 else skin, owner)
        cone(K[ki], K[ai], 0.054 * g, 0.036 * s, bottom if look.legwear == 1 else skin, owner)
        lat, up, fwd = F[fn].T
        fs = 0.95 * pr.foot
        shoe = solid(look.shoes)
        big, small, heel = K[fo], K[fo + 1], K[fo + 2]
        cone(heel + fs * (0.035 * fwd + 0.028 * up), 0.5 * (big + small) - fs * (0.03 * fwd - 0.022 * up),
             0.037 * fs, 0.033 * fs, shoe, owner)
        mid = 0.5 * (big + small) + fs * (-0.012 * fwd + 0.016 * up)
        across = unit(big - small)
        ax = np.stack([across * (np.linalg.norm(big - small) / 2 + 0.012 * fs), fwd * 0.03 * fs,
                       unit(np.cross(across, fwd)) * 0.024 * fs], 1)
        ell(mid, ax, shoe, owner)
        cone(K[ai], heel + fs * (0.04 * fwd + 0.04 * up), 0.037 * s, 0.036 * fs, shoe, owner)
    if look.legwear == 2:   # skirt: a cone from the waist flaring to the knees
        knees = 0.5 * (K[13] + K[14])
        cone(J["pelvis"] + F["pelvis"] @ np.array([0, 0.06 * s, 0]), knees + 0.1 * (J["pelvis"] - knees),
             0.15 * g * pr.hips, 0.2 * g * pr.hips, bottom, owner)
    # ---- torso: a stack of ellipsoids bending and twisting from the pelvis to the chest ----
    Rt, Rp = F["torso"], F["pelvis"]
    rel = Rp.T @ Rt
    ang = float(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1)))
    axis = np.array([rel[2, 1] - rel[1, 2], rel[0, 2] - rel[2, 0], rel[1, 0] - rel[0, 1]])
    bel = pr.belly
    rows = ((0.02, 0.163 * pr.hips, 0.105, 0.12), (0.12, 0.15 * pr.hips ** 0.5 * bel ** 0.3, 0.10 * bel, 0.15),
            (0.22, 0.145 * bel ** 0.4, 0.10 * bel, 0.15), (0.32, 0.158, 0.102, 0.15), (0.39, 0.165, 0.104, 0.15))
    for k, (y, rx, rz, ry) in enumerate(rows):
        a = min(k / 3.0, 1.0)
        Rk = Rp @ (rot(axis, ang * a) if ang > 1e-4 else np.eye(3))
        mat = bottom if k == 0 or (k == 1 and look.legwear != 2 and bel < 1.0) else top
        ell(J["pelvis"] + Rk @ np.array([0, y * s, 0.0]), Rk * np.array([rx * g, ry * s, rz * g]), mat, owner)
    sl, sr = J["shoulder_l"], J["shoulder_r"]
    base = J["neck"] - Rt @ np.array([0, 0.04 * s, 0.01 * s])
    for sh in (sl, sr):
        cone(base, sh, 0.058 * g, 0.056 * g, top, owner)
    cone(J["neck"] - Rt @ np.array([0, 0.03 * s, 0]), J["pivot"] + F["head"] @ np.array([0, 0.02, -0.01]) * hs,
         0.052 * g, 0.045 * g, skin, owner)
    # ---- arms and hands ----
    for (si, ei, wi, h0, hn) in ((5, 7, 9, 91, "hand_l"), (6, 8, 10, 112, "hand_r")):
        cone(K[si], K[ei], 0.05 * g, 0.04 * g, top if look.sleeves else skin, owner)
        cone(K[ei], K[wi], 0.041 * g, 0.029 * g, top if look.sleeves == 2 else skin, owner)
        a, b, n = F[hn].T
        hsz = 0.95 * pr.hand
        ell(K[wi] + a * 0.05 * hsz, np.stack([a * 0.056, b * 0.043, n * 0.017], 1) * hsz, skin, owner)
        H = K[h0:h0 + 21]
        if 0.19 * hsz * px_per_m < 14:
            cone(K[wi] + a * 0.06 * hsz, H[12], 0.03 * hsz, 0.012 * hsz, skin, owner)
            continue
        cone(H[1], H[2], 0.013 * hsz, 0.011 * hsz, skin, owner)
        cone(H[2], H[3], 0.011 * hsz, 0.0095 * hsz, skin, owner)
        cone(H[3], H[4], 0.0095 * hsz, 0.0085 * hsz, skin, owner)
        for f in range(4):
            b0 = 5 + 4 * f
            r0 = (0.0095 - 0.0008 * f) * hsz
            for k in range(3):
                cone(H[b0 + k], H[b0 + k + 1], r0 * (1 - 0.1 * k), r0 * (0.9 - 0.1 * k), skin, owner)
    # ---- head ----
    Rh, ho = F["head"], J["head"]
    tex = face_texture(sk.face2d, look)
    hal = head_albedo(look, tex, Rh, ho, hs)
    for c, r in (CRANIUM, JAW):
        ell(ho + Rh @ (c * hs), Rh * (r * hs), hal, owner)
    for sx in (1, -1):
        ell(ho + Rh @ (np.array([0.07 * sx, -0.008, -0.008]) * hs), Rh * (np.array([0.011, 0.026, 0.017]) * hs),
            skin, owner)
    nose = sk.kpts[50:59] @ R.T + t      # iBUG 27-35
    back = lambda d: Rh @ np.array([0, 0, d]) * hs  # noqa: E731  (landmarks sit on the nose's front surface)
    cone(nose[0] - back(0.006), nose[3] - back(0.011), 0.006 * hs, 0.011 * hs, skin, owner)
    ell(nose[6] - back(0.008), Rh * (np.array([0.017, 0.008, 0.009]) * hs), skin, owner)
    if look.hair_style:
        v = look.hair_volume
        hair = solid(look.hair)
        ell(ho + Rh @ (np.array([0, 0.034, -0.036]) * hs), Rh * (np.array([0.081, 0.1, 0.1]) * v * hs), hair, owner)
        if look.hair_style == 3:
            cone(ho + Rh @ (np.array([0, 0.0, -0.062]) * hs), ho + Rh @ (np.array([0, -0.15, -0.075]) * hs),
                 0.062 * hs * v, 0.055 * hs * v, hair, owner)
