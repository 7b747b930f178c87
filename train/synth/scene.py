"""One synthetic image: camera, people placement, occluders, lighting, visibility and annotations."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .backgrounds import sample_background
from .figure import Cloth, Look, draw_person
from .render import Canvas, Light
from .skeleton3d import Skeleton, rot, sample_skeleton, unit

# Depth tolerance (metres, adult scale) between a keypoint and the visible surface in front of it.
TOL = np.zeros(133)
TOL[0:17] = [0.02, 0.015, 0.015, 0.03, 0.03, 0.08, 0.08, 0.06, 0.06, 0.045, 0.045, 0.15, 0.15, 0.075, 0.075,
             0.06, 0.06]
TOL[17:23] = 0.035
TOL[23:91] = 0.014
TOL[50:59] = 0.02          # nose bridge and base sit on the nose volume
TOL[91:133] = 0.02
TOL[[91, 112]] = 0.045
TOL[[96, 100, 104, 108, 117, 121, 125, 129]] = 0.026   # MCPs inside the palm
MIN_AREA = 200             # visible pixels for a person to be annotated


@dataclass
class Placed:
    """A person placed in the camera frame (person frame -> camera: p @ R.T + t)."""

    skeleton: Skeleton
    look: Look
    R: np.ndarray
    t: np.ndarray


def _camera_rotation(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """World (x right, y up, z towards the camera) -> OpenCV camera looking down by `pitch_deg`."""
    base = np.diag([1.0, -1.0, -1.0])
    return rot(np.array([0, 0, 1.0]), np.deg2rad(roll_deg)) @ rot(np.array([1.0, 0, 0]), np.deg2rad(pitch_deg)) @ base


def _yaw(rng: np.random.Generator) -> float:
    r = rng.random()
    if r < 0.45:
        deg = rng.uniform(-45, 45)
    elif r < 0.7:
        deg = rng.choice([-1, 1]) * rng.uniform(45, 135)
    elif r < 0.85:
        deg = rng.uniform(135, 225)
    else:
        deg = rng.uniform(0, 360)
    return float(np.deg2rad(deg))


def _sizes(rng: np.random.Generator, n: int, h: int) -> np.ndarray:
    """On-screen person sizes (pixels): big for a single person, smaller in groups."""
    if n == 1:
        return rng.uniform(0.4, 1.05, 1) * h
    return rng.uniform(0.2, 0.85, n) / np.sqrt(n) * 1.5 * h


def place_people(rng: np.random.Generator, w: int, h: int, f: float, n: int,
                 skeletons: list[Skeleton] | None = None) -> list[Placed]:
    """Sample n people and place them: standing on a common ground plane seen by a camera at some
    height and pitch (80%), or floating free at sampled image positions (close-ups, odd views)."""
    sks = [skeletons[i] if skeletons else sample_skeleton(rng) for i in range(n)]
    yaws = [rot(np.array([0, 1.0, 0]), _yaw(rng)) for _ in range(n)]
    exts = []
    for sk, Ry in zip(sks, yaws):
        pts = sk.kpts @ Ry.T
        exts.append(float((pts.max(0) - pts.min(0))[:2].max()) + 0.15 * sk.props.scale)
    dist = np.maximum(f * np.array(exts) / _sizes(rng, n, h), 0.9)
    out: list[Placed] = []
    if rng.random() < 0.8:
        cam_h = rng.uniform(0.6, 2.2) if rng.random() < 0.85 else rng.uniform(2.2, 5.0)
        aim = float(np.median(dist))
        pitch = np.rad2deg(np.arctan2(cam_h - rng.uniform(0.6, 1.1), aim)) + rng.normal(0, 5)
        Rc = _camera_rotation(pitch, rng.normal(0, 3))
        cam = np.array([0.0, cam_h, 0.0])
        xs: list[float] = []
        for i in range(n):
            if xs and rng.random() < 0.45:
                x = xs[int(rng.integers(len(xs)))] + rng.normal(0, 0.35)
            else:
                half = (w / 2) / f * dist[i]
                x = rng.uniform(-1.05, 1.05) * half if rng.random() < 0.15 else rng.uniform(-0.8, 0.8) * half
            xs.append(x)
            pw = sks[i].kpts @ yaws[i].T
            ground = np.array([x, -pw[:, 1].min() + 0.01, -dist[i]])
            R = Rc @ yaws[i]
            out.append(Placed(sks[i], Look.sample(rng), R, Rc @ (ground - cam)))
        return out
    Rc = _camera_rotation(rng.uniform(-12, 35), rng.normal(0, 4))
    for i in range(n):
        R = Rc @ yaws[i]
        pts = sks[i].kpts @ R.T
        lo, hi = pts.min(0), pts.max(0)
        if out and rng.random() < 0.45:         # overlap someone already placed
            other = out[int(rng.integers(len(out)))]
            c = (other.skeleton.kpts @ other.R.T + other.t).mean(0)
            uc = c[0] / c[2] * f + w / 2 + rng.normal(0, 0.12 * w)
            vc = c[1] / c[2] * f + h / 2 + rng.normal(0, 0.05 * h)
        else:
            edge = rng.random() < 0.15
            uc = rng.uniform(-0.05, 1.05) * w if edge else rng.uniform(0.12, 0.88) * w
            vc = rng.uniform(0.3, 0.7) * h if not edge else rng.uniform(0.1, 0.9) * h
        z = dist[i]
        center = np.array([(uc - w / 2) / f * z, (vc - h / 2) / f * z, z])
        out.append(Placed(sks[i], Look.sample(rng), R, center - 0.5 * (lo + hi)))
    return out


def place_at(sk: Skeleton, look: Look, yaw_deg: float, center: np.ndarray) -> Placed:
    """Put a person upright (level camera) with its keypoints' bounding-box centre at camera point `center`;
    yaw 0 faces the camera, 180 shows the back."""
    R = _camera_rotation(0.0, 0.0) @ rot(np.array([0, 1.0, 0]), np.deg2rad(yaw_deg))
    pts = sk.kpts @ R.T
    return Placed(sk, look, R, np.asarray(center, float) - 0.5 * (pts.min(0) + pts.max(0)))


def _occluders(rng: np.random.Generator, cv: Canvas, people: list[Placed]) -> None:
    """0-2 objects (poles, balls, boxes-ish) in front of someone."""
    if not people or rng.random() > 0.3:
        return
    for _ in range(int(rng.integers(1, 3))):
        p = people[int(rng.integers(len(people)))]
        c = p.t + p.skeleton.kpts[int(rng.integers(133))] @ p.R.T
        c = c * rng.uniform(0.6, 0.95) + rng.normal(0, 0.15, 3) * [1, 1, 0]
        mat = Cloth.sample(rng).albedo(np.eye(3), np.zeros(3))
        if rng.random() < 0.6:
            d = unit(rng.normal(size=3) * [1, 1, 0.3])
            L = rng.uniform(0.4, 2.0)
            r = rng.uniform(0.03, 0.15)
            cv.round_cone(c - d * L / 2, c + d * L / 2, r, r * rng.uniform(0.7, 1.0), mat, -2)
        else:
            axes = np.linalg.qr(rng.normal(size=(3, 3)))[0] * rng.uniform(0.08, 0.35, 3)
            cv.ellipsoid(c, axes, mat, -2)


def _box(x: np.ndarray, v: np.ndarray, w: int, h: int, grow: tuple[float, float, float, float]) -> list[float]:
    """xywh box around labelled points, grown by fractions (left, top, right, bottom), clipped."""
    p = x[v > 0]
    if len(p) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    (x0, y0), (x1, y1) = p.min(0), p.max(0)
    bw, bh = x1 - x0, y1 - y0
    x0, x1 = max(x0 - grow[0] * bw - 1, 0), min(x1 + grow[2] * bw + 1, w - 1)
    y0, y1 = max(y0 - grow[1] * bh - 1, 0), min(y1 + grow[3] * bh + 1, h - 1)
    return [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)]


def keypoint_visibility(cv: Canvas, p: Placed) -> tuple[np.ndarray, np.ndarray]:
    """(133,2) pixel positions of a rendered person's keypoints and their COCO visibility: 0 outside the image
    (or behind the camera), 1 hidden behind a nearer surface, 2 visible (depth test against the canvas)."""
    K = p.skeleton.kpts @ p.R.T + p.t
    uv = cv.project(K)
    inside = (K[:, 2] > 0.05) & (uv[:, 0] >= 0) & (uv[:, 0] <= cv.w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= cv.h - 1)
    ix = np.clip(np.round(uv[:, 0]).astype(int), 0, cv.w - 1)
    iy = np.clip(np.round(uv[:, 1]).astype(int), 0, cv.h - 1)
    dist = np.linalg.norm(K, axis=1)
    scale = np.where(np.arange(133) >= 23, p.skeleton.props.head, p.skeleton.props.scale)
    scale[91:] = p.skeleton.props.hand
    tol = TOL * scale + 1.5 * dist / cv.f
    seen = cv.depth[iy, ix] >= dist - tol
    return uv, np.where(inside, np.where(seen, 2, 1), 0)


def annotate(cv: Canvas, people: list[Placed]) -> list[dict]:
    """COCO-WholeBody annotation dicts (without ids) of every sufficiently visible person."""
    anns = []
    for i, p in enumerate(people):
        mask = cv.owner == i
        area = int(mask.sum())
        if area < MIN_AREA:
            continue
        uv, v = keypoint_visibility(cv, p)
        ys, xs = np.nonzero(mask)
        box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        ann: dict = {}
        parts = {"face": (23, 91), "lefthand": (91, 112), "righthand": (112, 133)}
        valid = {}
        for name, (a, b) in parts.items():
            vv = v[a:b]
            bx = _box(uv[a:b], vv, cv.w, cv.h, (0.08, 0.25, 0.08, 0.05) if name == "face" else (0.1,) * 4)
            min_vis = 17 if name == "face" else 5
            ok = (vv == 2).sum() >= min_vis and max(bx[2], bx[3]) >= 8
            if not ok:
                v[a:b] = 0
                bx = [0.0, 0.0, 0.0, 0.0]
            valid[name] = bool(ok)
            ann[name + "_box"] = bx
        kp = np.concatenate([np.round(uv, 2), v[:, None]], 1)
        kp[v == 0] = 0
        flat = lambda a, b: [float(x) if j % 3 < 2 else int(x) for j, x in enumerate(kp[a:b].reshape(-1))]  # noqa: E731
        nk = int((v[:17] > 0).sum())
        if nk == 0:
            continue
        anns.append({
            "keypoints": flat(0, 17), "foot_kpts": flat(17, 23), "face_kpts": flat(23, 91),
            "lefthand_kpts": flat(91, 112), "righthand_kpts": flat(112, 133),
            "bbox": box, "area": area, "num_keypoints": nk, "iscrowd": 0, "category_id": 1,
            "face_box": ann["face_box"], "lefthand_box": ann["lefthand_box"], "righthand_box": ann["righthand_box"],
            "face_valid": valid["face"], "lefthand_valid": valid["lefthand"], "righthand_valid": valid["righthand"],
            "foot_valid": bool((v[17:23] > 0).any()),
        })
    return anns


def _light(rng: np.random.Generator) -> Light:
    d = unit(np.array([rng.uniform(-1, 1), rng.uniform(-1.2, 0.3), rng.uniform(-1.0, -0.15)]))
    return Light(d, float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.4, 0.85)), float(rng.uniform(0.0, 0.25)),
                 (1 + rng.normal(0, 0.06, 3)).astype(np.float32))


def _postprocess(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.1))
    if rng.random() < 0.08:
        k = int(rng.integers(3, 8))
        ker = np.zeros((k, k), np.float32)
        ker[k // 2] = 1.0 / k
        m = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        img = cv2.filter2D(img, -1, cv2.warpAffine(ker, m, (k, k)))
    if rng.random() < 0.7:
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0, 0.03))
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    lut = np.clip((np.arange(256) / 255.0) ** rng.uniform(0.8, 1.25) * 255 + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(out, lut)


def render_scene(rng: np.random.Generator, width: int, height: int, n_people: int | None = None,
                 skeletons: list[Skeleton] | None = None,
                 people: list[Placed] | None = None,
                 occluders: bool = True,
                 focal: float | None = None,
                 clutter: bool = True) -> tuple[np.ndarray, list[dict], Canvas, list[Placed]]:
    """Render one image: (BGR uint8 image, annotations, canvas, placed people).

    `people` overrides the random placement (tests build scenes by hand); `occluders` adds random objects;
    `focal` (pixels) overrides the random field of view; `clutter` allows limb-like shapes in the background.
    """
    f = focal or width / (2 * np.tan(np.deg2rad(rng.uniform(40, 75)) / 2))
    cv = Canvas(width, height, f, (width - 1) / 2, (height - 1) / 2, _light(rng))
    if people is None:
        n = n_people or int(rng.choice(6, p=[0.3, 0.25, 0.17, 0.12, 0.09, 0.07])) + 1
        people = place_people(rng, width, height, f, n, skeletons)
    for i, p in enumerate(people):
        draw_person(cv, p.skeleton, p.look, p.R, p.t, i)
    if occluders:
        _occluders(rng, cv, people)
    bg = sample_background(rng, width, height, clutter)
    fg = (cv.owner != -1)[..., None]
    img = np.where(fg, cv.rgb, bg).astype(np.float32)
    anns = annotate(cv, people)
    return _postprocess(rng, img)[..., ::-1].copy(), anns, cv, people
