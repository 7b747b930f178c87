"""Articulated 3D person: proportions, pose sampling, inverse kinematics -> 133 whole-body points.

Person frame (metres): x = the person's LEFT, y = up, z = forward (right-handed), origin at the
pelvis centre. Index convention is COCO-WholeBody's: "left" is the person's left.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .templates import EAR_OFFSET, face_template_2d, face_template_3d, hand_points, sample_hand_shape

X, Y, Z = np.eye(3)
CATEGORIES = ("stand", "walk", "gesture", "face", "sit", "crouch", "lie", "wild")
CATEGORY_P = (0.22, 0.18, 0.16, 0.12, 0.11, 0.07, 0.06, 0.08)


def rot(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix about a unit `axis` by `angle` radians (Rodrigues)."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def two_bone_ik(root: np.ndarray, target: np.ndarray, l1: float, l2: float,
                pole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(middle joint, end joint) of a two-bone chain reaching for `target`, bending towards `pole`."""
    v = target - root
    d = float(np.clip(np.linalg.norm(v), abs(l1 - l2) + 1e-3, (l1 + l2) * 0.999))
    u = unit(v)
    a = (l1 * l1 - l2 * l2 + d * d) / (2 * d)
    h = np.sqrt(max(l1 * l1 - a * a, 0.0))
    p = pole - pole.dot(u) * u
    if np.linalg.norm(p) < 1e-6:
        p = np.cross(u, X if abs(u[0]) < 0.9 else Y)
    return root + a * u + h * unit(p), root + d * u


@dataclass
class Proportions:
    """Body measurements (metres) of one person."""

    scale: float
    head: float
    shoulder_hw: float
    hip_hw: float
    upper_arm: float
    forearm: float
    thigh: float
    shank: float
    hand: float
    foot: float
    girth: float
    belly: float
    hips: float
    child: bool = False


def sample_proportions(rng: np.random.Generator) -> Proportions:
    """Adults 1.5-1.95 m (varied build and sex), sometimes children with relatively bigger heads."""
    child = rng.random() < 0.1
    height = rng.uniform(1.0, 1.45) if child else rng.normal(1.72, 0.09)
    s = float(np.clip(height, 0.95, 2.0)) / 1.75
    fem = rng.random() < 0.5
    j = lambda sd: float(np.clip(rng.normal(1.0, sd), 1 - 2.5 * sd, 1 + 2.5 * sd))  # noqa: E731
    return Proportions(
        scale=s, head=(s ** 0.45 if child else s ** 0.3) * j(0.04),
        shoulder_hw=0.18 * s * (0.92 if fem else 1.03) * j(0.05), hip_hw=0.09 * s * (1.08 if fem else 1.0) * j(0.05),
        upper_arm=0.30 * s * j(0.04), forearm=0.26 * s * j(0.04), thigh=0.44 * s * j(0.04),
        shank=0.42 * s * j(0.04), hand=s ** 0.8 * j(0.05), foot=s ** 0.8 * j(0.05),
        girth=s * j(0.12) * (0.92 if fem else 1.0), belly=j(0.15), hips=(1.08 if fem else 0.97) * j(0.06),
        child=child)


@dataclass
class Skeleton:
    """A posed person in the person frame: 133 keypoints plus joints and frames for building the body."""

    kpts: np.ndarray                     # (133, 3)
    props: Proportions
    joints: dict[str, np.ndarray] = field(default_factory=dict)
    frames: dict[str, np.ndarray] = field(default_factory=dict)  # 3x3, columns = local axes
    face2d: np.ndarray | None = None     # (68, 2) frontal face layout (for painting the face)
    category: str = "stand"


def _arm_target(rng, mode, side, S, Rt, L, head_o, Rh, hip, chest):
    """Wrist target and elbow pole for one arm in a named mode."""
    u = rng.uniform
    T = lambda v: Rt @ np.asarray(v, float)  # noqa: E731
    if mode == "face":
        tgt = head_o + Rh @ np.array([u(-0.09, 0.09), u(-0.13, 0.03), u(0.05, 0.15)])
        return tgt, T([side * 1.0, -1.0, u(-0.6, 0.3)])
    if mode == "hip":
        return hip + T([side * u(0.08, 0.16), u(0.0, 0.12), u(-0.08, 0.05)]), T([side, 0.0, -0.7])
    if mode == "chest":
        return chest + T([-side * u(-0.05, 0.18), u(-0.15, 0.15), u(0.13, 0.25)]), T([side, -1.0, u(-0.5, 0.3)])
    dirs = {"down": ([side * u(0.05, 0.4), -1, u(-0.25, 0.35)], (0.85, 1.0), [side * 0.3, 0, -1]),
            "side": ([side, u(-0.7, 0.7), u(-0.3, 0.5)], (0.6, 1.0), [0, -1, -0.6]),
            "front": ([side * u(-0.3, 0.6), u(-0.7, 0.6), 1], (0.45, 1.0), [side * 0.6, -1, 0]),
            "up": ([side * u(0, 0.7), 1, u(-0.3, 0.5)], (0.7, 1.0), [side, 0, -0.3]),
            "swing": ([side * 0.12, -1, u(-0.5, 0.5)], (0.82, 0.98), [side * 0.2, 0, -1])}
    if mode in dirs:
        d, (r0, r1), pole = dirs[mode]
    else:
        d, (r0, r1), pole = rng.normal(size=3) + [side * 0.5, 0, 0.4], (0.35, 1.0), [side, -0.5, -0.5]
        pole = np.asarray(pole) + rng.normal(0, 0.5, 3)
    return S + T(unit(np.asarray(d, float))) * u(r0, r1) * L, T(pole)


def _leg_target(rng, mode, side, H, Rp, L, stride):
    u = rng.uniform
    P = lambda v: Rp @ np.asarray(v, float)  # noqa: E731
    if mode == "walk":
        k = u(0.9, 0.99) * L
        return H + P([side * 0.04, -np.sqrt(max(k * k - stride ** 2, 0.1)), stride]), P([0, 0.2, 1])
    if mode == "sit":
        return H + P([side * u(0.03, 0.18), -u(0.42, 0.52) * L, u(0.4, 0.55) * L]), P([side * 0.2, 1, 1])
    if mode == "kneel":
        return H + P([side * u(0.05, 0.15), -u(0.45, 0.55) * L, -u(0.35, 0.5) * L]), P([0, 0, 1])
    if mode == "crouch":
        return H + P([side * u(0.08, 0.22), -u(0.3, 0.55) * L, u(-0.1, 0.25)]), P([side * 0.4, 0.3, 1])
    if mode == "floor":
        return H + P([side * u(0.05, 0.25), -u(0.0, 0.15), u(0.8, 0.97) * L]), P([side * 0.3, 1, 0.1])
    if mode == "random":
        d = unit(rng.normal(size=3) + [side * 0.3, -1.5, 0.5])
        return H + P(d) * u(0.5, 0.99) * L, P([side * 0.2, 0.3, 1])
    return H + P([side * u(-0.02, 0.16), -u(0.96, 1.0) * L, u(-0.1, 0.1)]), P([side * 0.15, 0, 1])


def sample_skeleton(rng: np.random.Generator, category: str | None = None,
                    props: Proportions | None = None) -> Skeleton:
    """Sample proportions and a pose of a category (see CATEGORIES) and pose the whole body."""
    u, d2r = rng.uniform, np.deg2rad
    cat = category or str(rng.choice(CATEGORIES, p=CATEGORY_P))
    pr = props or sample_proportions(rng)
    s = pr.scale
    # ---- spine and head ----
    Rp = np.eye(3)
    lean, bend, twist = u(-8, 20), u(-8, 8), u(-25, 25)
    if cat == "wild":
        lean, bend, twist = u(-20, 70), u(-25, 25), u(-40, 40)
    elif cat == "crouch":
        lean = u(10, 45)
    elif cat == "lie":
        Rp = [rot(X, -np.pi / 2), rot(X, np.pi / 2), rot(Z, np.pi / 2) @ rot(X, -0.3),
              rot(Z, -np.pi / 2) @ rot(X, -0.3)][int(rng.integers(4))]
    Rt = Rp @ rot(Y, d2r(twist)) @ rot(X, d2r(lean)) @ rot(Z, d2r(bend))
    hy, hp, hr = u(-65, 65), u(-25, 30), u(-15, 15)
    if rng.random() < 0.5:
        hy *= 0.3
    Rh = Rt @ rot(Y, d2r(hy)) @ rot(X, d2r(hp)) @ rot(Z, d2r(hr))
    pelvis = np.zeros(3)
    belly = Rt @ np.array([0, 0.17 * s, 0])
    chest = Rt @ np.array([0, 0.36 * s, 0])
    neck = Rt @ np.array([0, 0.55 * s, 0])
    pivot = neck + Rt @ np.array([0, 0.075 * s, 0.0])
    head_o = pivot + Rh @ (np.array([0, 0.085, 0.02]) * pr.head)
    # ---- face ----
    face2d = face_template_2d(rng, mouth_open=u(0, 0.02) if rng.random() < 0.3 else 0.0)
    face_local = face_template_3d(face2d) * pr.head
    face = head_o + face_local @ Rh.T
    kp = np.zeros((133, 3))
    kp[23:91] = face
    kp[0] = face[30]
    kp[1], kp[2] = face[42:48].mean(0), face[36:42].mean(0)
    kp[3] = head_o + Rh @ (EAR_OFFSET * pr.head)
    kp[4] = head_o + Rh @ (EAR_OFFSET * [-1, 1, 1] * pr.head)
    # ---- legs ----
    leg_mode = {"walk": "walk", "sit": "sit", "crouch": str(rng.choice(["crouch", "kneel", "floor"])),
                "wild": "random", "lie": str(rng.choice(["stand", "random", "sit"]))}.get(cat, "stand")
    if cat == "face" and rng.random() < 0.4:
        leg_mode = "sit"
    stride = u(0.1, 0.4) * s * rng.choice([-1, 1])
    joints: dict[str, np.ndarray] = {"pelvis": pelvis, "belly": belly, "chest": chest, "neck": neck,
                                     "pivot": pivot, "head": head_o}
    frames = {"pelvis": Rp, "torso": Rt, "head": Rh}
    Lleg = pr.thigh + pr.shank
    for side, hi, ki, ai, name in ((1, 11, 13, 15, "l"), (-1, 12, 14, 16, "r")):
        H = pelvis + Rp @ np.array([side * pr.hip_hw, 0, 0])
        st = stride * (1 if side == 1 else -u(0.6, 1.0))
        tgt, pole = _leg_target(rng, leg_mode, side, H, Rp, Lleg, st)
        knee, ankle = two_bone_ik(H, tgt, pr.thigh, pr.shank, pole)
        kp[hi], kp[ki], kp[ai] = H, knee, ankle
        # foot frame: up = along the shank, forward = pelvis forward (toed out), plantar flexion
        up = unit(knee - ankle)
        fwd = Rp @ rot(Y, side * d2r(u(0, 25))) @ Z
        fwd = fwd - fwd.dot(up) * up
        if np.linalg.norm(fwd) < 0.3:
            fwd = fwd + 0.6 * (Rp @ -Y)
            fwd = fwd - fwd.dot(up) * up
        fwd = unit(fwd)
        lat = np.cross(up, fwd)  # points to the person's left for both feet
        pf = d2r(u(-10, 25) if leg_mode in ("stand", "walk") else u(-10, 50))
        Rf = rot(lat, pf)
        fwd, up = Rf @ fwd, Rf @ up
        med = -side * lat  # medial side (towards the body midline)
        fs = 0.95 * pr.foot
        fo = 17 if side == 1 else 20
        kp[fo] = ankle + fs * (0.19 * fwd - 0.065 * up + 0.022 * med)       # big toe
        kp[fo + 1] = ankle + fs * (0.155 * fwd - 0.065 * up - 0.035 * med)  # small toe
        kp[fo + 2] = ankle + fs * (-0.062 * fwd - 0.06 * up)                 # heel
        frames["foot_" + name] = np.stack([lat, up, fwd], 1)
    # ---- arms ----
    modes = {"stand": ["down", "down", "down", "hip", "front", "side", "chest", "face"],
             "walk": ["swing"], "gesture": ["up", "side", "front", "random", "up", "down"],
             "face": ["face"], "sit": ["front", "chest", "down", "face", "hip"],
             "crouch": ["front", "down", "random", "chest"], "lie": ["random", "up", "down", "side"],
             "wild": ["random", "up", "side", "front", "face"]}[cat]
    arm_modes = [str(rng.choice(modes)), str(rng.choice(modes))]
    if cat == "face" and rng.random() < 0.6:
        arm_modes[int(rng.integers(2))] = str(rng.choice(["down", "chest", "hip", "front"]))
    if cat == "walk":
        swing = u(0.15, 0.6) * np.sign(stride)
    for i, (side, si, ei, wi, h0, name) in enumerate(((1, 5, 7, 9, 91, "l"), (-1, 6, 8, 10, 112, "r"))):
        S = neck + Rt @ np.array([side * pr.shoulder_hw, -0.04 * s, 0])
        hip = kp[11 if side == 1 else 12]
        tgt, pole = _arm_target(rng, arm_modes[i], side, S, Rt, pr.upper_arm + pr.forearm, head_o, Rh, hip, chest)
        if cat == "walk":
            reach = u(0.85, 0.98) * (pr.upper_arm + pr.forearm)
            tgt = S + Rt @ unit(np.array([side * 0.12, -1, -swing * side])) * reach
        elbow, wrist = two_bone_ik(S, tgt, pr.upper_arm, pr.forearm, pole)
        kp[si], kp[ei], kp[wi] = S, elbow, wrist
        # hand frame: a along the forearm, n palm normal (pronation about a), t thumb side
        a = unit(wrist - elbow)
        e = np.cross(unit(elbow - S), a) + 0.3 * (Rt @ -X)
        e = unit(e - e.dot(a) * a)
        n = np.cross(e, a)
        rho = d2r(u(40, 130) if arm_modes[i] in ("down", "swing", "hip") else u(-30, 180))
        n = rot(a, side * rho) @ n
        w = d2r(u(-35, 45))
        a, n = a * np.cos(w) + n * np.sin(w), n * np.cos(w) - a * np.sin(w)
        t = side * np.cross(n, a)
        A = np.stack([a, t, n], 1)
        hp_local = hand_points(sample_hand_shape(rng), 0.95 * pr.hand)
        kp[h0:h0 + 21] = wrist + hp_local @ A.T
        frames["hand_" + name] = A
        joints["shoulder_" + name] = S
    return Skeleton(kp, pr, joints, frames, face2d, cat)
