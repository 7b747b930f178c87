"""A tiny COCO-WholeBody split for fast tests: stick figures with all 133 keypoints drawn on noise."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from dwpose_edge.skeleton import LIMBS, PART_COLORS

FIELDS = (("keypoints", 0, 17), ("foot_kpts", 17, 23), ("face_kpts", 23, 91),
          ("lefthand_kpts", 91, 112), ("righthand_kpts", 112, 133))


def _template(rng: np.random.Generator) -> np.ndarray:
    """133 keypoints of an upright figure in a unit box (x right, y down), person facing the camera."""
    k = np.zeros((133, 2), np.float32)
    body = {0: (0.5, 0.08), 1: (0.47, 0.06), 2: (0.53, 0.06), 3: (0.44, 0.08), 4: (0.56, 0.08),
            5: (0.62, 0.22), 6: (0.38, 0.22), 7: (0.7, 0.38), 8: (0.3, 0.38), 9: (0.74, 0.52), 10: (0.26, 0.52),
            11: (0.58, 0.55), 12: (0.42, 0.55), 13: (0.6, 0.75), 14: (0.4, 0.75), 15: (0.6, 0.95), 16: (0.4, 0.95)}
    for i, p in body.items():
        k[i] = p
    k[17:20] = [(0.63, 0.98), (0.66, 0.97), (0.59, 0.96)]
    k[20:23] = [(0.37, 0.98), (0.34, 0.97), (0.41, 0.96)]
    t = np.linspace(0, np.pi, 68)
    k[23:91] = np.stack([0.5 - 0.05 * np.cos(t), 0.09 + 0.05 * np.sin(t)], -1)
    for base, wrist in ((91, 9), (112, 10)):
        ang = np.linspace(-0.6, 0.6, 5)
        k[base] = k[wrist]
        for f in range(5):
            for j in range(4):
                r = 0.015 * (j + 1)
                k[base + 1 + f * 4 + j] = k[wrist] + [r * np.sin(ang[f]), r * np.cos(ang[f])]
    k += rng.normal(0, 0.01, k.shape).astype(np.float32)
    return k


def make_tiny_wholebody(root: str | Path, n_images: int = 6, seed: int = 0, size: tuple[int, int] = (160, 200),
                        people: tuple[int, int] = (1, 2)) -> Path:
    """Write images/ and ann.json under `root`; returns the json path."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, anns = [], []
    w, h = size
    for i in range(n_images):
        img = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
        for p in range(int(rng.integers(people[0], people[1] + 1))):
            bw, bh = rng.uniform(0.3, 0.5) * w, rng.uniform(0.6, 0.9) * h
            x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            kpts = _template(rng) * [bw, bh] + [x0, y0]
            if rng.random() < 0.5:  # mirrored figure = seen from the back
                kpts[:, 0] = 2 * x0 + bw - kpts[:, 0]
            for part, limbs in LIMBS.items():
                for a, b in limbs:
                    cv2.line(img, tuple(map(int, kpts[a])), tuple(map(int, kpts[b])), PART_COLORS[part], 2)
            for j in range(23, 91):
                cv2.circle(img, tuple(map(int, kpts[j])), 1, PART_COLORS["face"], -1)
            vis = np.full(133, 2.0, np.float32)
            ann = {"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                   "bbox": [float(x0), float(y0), float(bw), float(bh)], "area": float(bw * bh),
                   "num_keypoints": 17, "face_valid": True, "lefthand_valid": True, "righthand_valid": True,
                   "foot_valid": True}
            for name, a, b in FIELDS:
                ann[name] = np.concatenate([kpts[a:b], vis[a:b, None]], 1).round(2).flatten().tolist()
            for name, a, b in (("face_box", 23, 91), ("lefthand_box", 91, 112), ("righthand_box", 112, 133)):
                lo, hi = kpts[a:b].min(0), kpts[a:b].max(0)
                ann[name] = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
            anns.append(ann)
        name = f"{i:06d}.jpg"
        cv2.imwrite(str(root / "images" / name), img)
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": [], "skeleton": []}]}
    path = root / "ann.json"
    path.write_text(json.dumps(doc))
    return path
