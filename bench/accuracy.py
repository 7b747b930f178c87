"""COCO-WholeBody AP of one row's keypoints: against the ground truth, and against the reference's keypoints."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from dwpose_edge.bench.crops import BenchCrops
from dwpose_edge.evaluation.metric import evaluate_predictions

FIELDS = (("keypoints", 0, 17), ("foot_kpts", 17, 23), ("face_kpts", 23, 91),
          ("lefthand_kpts", 91, 112), ("righthand_kpts", 112, 133))


def predictions(crops: BenchCrops, keypoints: np.ndarray, scores: np.ndarray) -> list[dict]:
    """`evaluate_predictions` entries, one per crop (ground-truth boxes: box score 1, id = annotation id)."""
    areas = crops.areas
    return [{"image_id": int(crops.image_ids[i]), "id": int(crops.ann_ids[i]), "keypoints": keypoints[i],
             "keypoint_scores": scores[i], "bbox_score": 1.0, "area": float(areas[i])} for i in range(len(crops))]


def ap_table(ann_file: str | os.PathLike, crops: BenchCrops, keypoints: np.ndarray, scores: np.ndarray) -> dict:
    """{part: AP} for body, foot, face, lefthand, righthand, wholebody on the crops' images."""
    res = evaluate_predictions(ann_file, predictions(crops, keypoints, scores),
                               image_ids=sorted(set(int(i) for i in crops.image_ids)))
    return {part: round(stats["AP"], 4) for part, stats in res.items()}


def write_pseudo_gt(path: str | os.PathLike, crops: BenchCrops, ref_keypoints: np.ndarray) -> Path:
    """A COCO-WholeBody json whose ground truth is the reference's keypoints (all 133 labelled).

    Every keypoint counts, whatever the reference's score, so the AP measures positional agreement
    only; area = the ground-truth box area. A row identical to the reference scores 1.0 unless the
    evaluation's OKS-NMS (0.9, as mmpose) drops one of two overlapping persons whose keypoints nearly
    coincide: that costs every row alike (the embedded trained model: 0.990 for the reference itself).
    """
    with open(crops.ann_file) as f:
        source = json.load(f)
    keep = set(int(i) for i in crops.image_ids)
    images = [img for img in source["images"] if img["id"] in keep]
    anns = []
    for i in range(len(crops)):
        x1, y1, x2, y2 = (float(v) for v in crops.boxes_xyxy[i])
        kp = np.concatenate([ref_keypoints[i].astype(np.float64), np.full((len(ref_keypoints[i]), 1), 2.0)], 1)
        ann = {"id": int(crops.ann_ids[i]), "image_id": int(crops.image_ids[i]), "category_id": 1, "iscrowd": 0,
               "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "num_keypoints": 17,
               "segmentation": []}
        for field, a, b in FIELDS:
            ann[field] = kp[a:b].round(3).ravel().tolist()
        for part in ("face", "lefthand", "righthand", "foot"):
            ann[f"{part}_valid"] = True
        anns.append(ann)
    doc = {"info": {"description": "pseudo ground truth: the benchmark reference's keypoints"},
           "images": images, "annotations": anns, "categories": source["categories"]}
    path = Path(path)
    path.write_text(json.dumps(doc))
    return path
