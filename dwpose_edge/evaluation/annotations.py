"""COCO-WholeBody annotation reading, filtered as mmpose's top-down dataset: what evaluation, INT8
calibration and training all read (no torch)."""
from __future__ import annotations

import json
import os

import numpy as np

# COCO-WholeBody annotation fields in keypoint order (body 0-16, feet 17-22, face 23-90, hands 91-132).
PART_FIELDS = (("keypoints", "body", 17), ("foot_kpts", "foot", 6), ("face_kpts", "face", 68),
               ("lefthand_kpts", "lefthand", 21), ("righthand_kpts", "righthand", 21))


def load_wholebody_instances(ann_file: str | os.PathLike, image_dir: str | os.PathLike, *,
                             use_valid_flags: bool = False) -> list[dict]:
    """Parse a COCO-WholeBody json into per-person records, filtered as mmpose's top-down dataset.

    Keypoints are body + foot + face + lefthand + righthand (133); a keypoint is labelled when its
    visibility is > 0 (the released annotations use 0/1/2 for body, 0/2 feet, 0/1 face and a
    confidence in [0,1] for hands). mmpose ignores the `*_valid` flags (a part flagged invalid has
    all-zero keypoints in the released files); `use_valid_flags=True` additionally zeroes the
    visibility of parts whose flag is False. Boxes are xywh clipped to [0, size-1] as xyxy. Dropped
    like mmpose: crowd, `num_keypoints == 0` (that field counts BODY keypoints only), empty boxes,
    all-zero keypoints.
    """
    with open(ann_file) as f:
        data = json.load(f)
    images = {img["id"]: img for img in data["images"]}
    out = []
    for ann in data["annotations"]:
        img = images[ann["image_id"]]
        if ann.get("iscrowd", 0):
            continue
        parts = []
        for field, name, n in PART_FIELDS:
            kp = np.asarray(ann.get(field) or [0.0] * n * 3, dtype=np.float32).reshape(n, 3)
            if use_valid_flags and name != "body" and not ann.get(f"{name}_valid", True):
                kp = kp * np.array([1, 1, 0], np.float32)
            parts.append(kp)
        kpts = np.concatenate(parts)
        num_body = ann.get("num_keypoints", int(np.count_nonzero(kpts[:17, 2] > 0)))
        if num_body == 0 or np.max(kpts[:, :2]) <= 0:
            continue
        x, y, w, h = ann["bbox"]
        iw, ih = img["width"], img["height"]
        box = np.array([np.clip(x, 0, iw - 1), np.clip(y, 0, ih - 1),
                        np.clip(x + w, 0, iw - 1), np.clip(y + h, 0, ih - 1)], dtype=np.float32)
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            continue
        out.append({
            "image_path": os.path.join(os.fspath(image_dir), img["file_name"]),
            "image_id": int(ann["image_id"]),
            "ann_id": int(ann["id"]),
            "bbox_xyxy": box,
            "keypoints": np.ascontiguousarray(kpts[:, :2]),
            "visible": (kpts[:, 2] > 0).astype(np.float32),
        })
    return out
