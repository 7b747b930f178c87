"""COCO-WholeBody AP/AR per part, computed as mmpose 1.3.2's `CocoWholeBodyMetric` does.

Pipeline (mmpose `evaluation/metrics/coco_metric.py::CocoMetric.compute_metrics` with the defaults
score_mode='bbox_keypoint', keypoint_score_thr=0.2, nms_mode='oks_nms', nms_thr=0.9, and
`coco_wholebody_metric.py::CocoWholeBodyMetric._do_python_keypoint_eval`):

1. instance score = box score x mean of the keypoint scores that are > 0.2 (0 when none is);
   with ground-truth boxes the box score is 1;
2. OKS-NMS per image at 0.9 with the 133 whole-body sigmas, areas = product of the aspect-fixed
   padded box scale (mmpose's `bbox_scales`);
3. `COCOeval` six times, iouType keypoints_body / _foot / _face / _lefthand / _righthand / _wholebody,
   with that part's slice of the official sigmas (COCO-WholeBody repo = mmpose
   `configs/_base_/datasets/coco_wholebody.py`), `use_area=True`; from xtcocotools (what mmpose
   uses) when it imports, else from xthotcoco (same numbers, wheels for numpy 2; see `evaluator`).

mmpose only returns the whole-body numbers (the parts are printed); here every part is returned:
{'body': {'AP': .., 'AP .5': .., ..., 'AR (L)': ..}, 'foot': .., 'face': .., 'lefthand': ..,
'righthand': .., 'wholebody': ..}. A part with no labelled ground truth reports -1, as COCOeval.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from dwpose_edge.errors import DataError, InputError
from dwpose_edge.preprocess import boxes_to_center_scale
from dwpose_edge.specs import NUM_KEYPOINTS

from .annotations import load_wholebody_instances
from .backend import EvaluationUnavailable, load_backend

EVAL_PARTS = ("body", "foot", "face", "lefthand", "righthand", "wholebody")
STATS_NAMES = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")
PART_SLICES = {"body": (0, 17), "foot": (17, 23), "face": (23, 91), "lefthand": (91, 112),
               "righthand": (112, 133), "wholebody": (0, 133)}
RESULT_FIELDS = (("keypoints", 0, 17), ("foot_kpts", 17, 23), ("face_kpts", 23, 91),
                 ("lefthand_kpts", 91, 112), ("righthand_kpts", 112, 133))

# Official COCO-WholeBody per-keypoint OKS sigmas (body 17, foot 6, face 68, left hand 21, right hand 21).
WHOLEBODY_SIGMAS = np.array([
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
    0.089, 0.089,
    0.068, 0.066, 0.066, 0.092, 0.094, 0.094,
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023, 0.029, 0.032, 0.037, 0.038, 0.043,
    0.041, 0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015, 0.009, 0.007, 0.007,
    0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009, 0.011, 0.009, 0.007, 0.013, 0.008, 0.011,
    0.012, 0.010, 0.034, 0.008, 0.008, 0.009, 0.008, 0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007,
    0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.010, 0.008,
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024, 0.022, 0.026, 0.017, 0.021,
    0.021, 0.032, 0.020, 0.019, 0.022, 0.031,
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024, 0.022, 0.026, 0.017, 0.021,
    0.021, 0.032, 0.020, 0.019, 0.022, 0.031,
])
assert WHOLEBODY_SIGMAS.shape == (NUM_KEYPOINTS,)


def instance_score(keypoint_scores: np.ndarray, bbox_score: float = 1.0, thr: float = 0.2) -> float:
    """mmpose 'bbox_keypoint' rescoring: bbox_score x mean(scores > thr), 0 if no keypoint passes."""
    s = np.asarray(keypoint_scores, dtype=np.float64)
    sel = s[s > thr]
    return float(bbox_score * (sel.mean() if sel.size else 0.0))


def oks_iou(g: np.ndarray, d: np.ndarray, area_g: float, area_d: np.ndarray,
            sigmas: np.ndarray = WHOLEBODY_SIGMAS) -> np.ndarray:
    """mmpose `oks_iou` (vis_thr=None): OKS of one instance g (K,2) against d (N,K,2), mean area."""
    var = (np.asarray(sigmas) * 2) ** 2
    dist2 = ((d - g[None]) ** 2).sum(-1)
    e = dist2 / var / ((area_g + np.asarray(area_d)[:, None]) / 2 + np.spacing(1)) / 2
    return np.exp(-e).mean(axis=1) if len(d) else np.zeros(0)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thr: float = 0.9,
            sigmas: np.ndarray = WHOLEBODY_SIGMAS) -> np.ndarray:
    """mmpose `oks_nms`: greedy by score (argsort()[::-1]), drop instances with OKS > thr. Returns kept indices."""
    order = np.asarray(scores).argsort()[::-1]
    keep = []
    while len(order) > 0:
        i = order[0]
        keep.append(i)
        ovr = oks_iou(keypoints[i], keypoints[order[1:]], areas[i], areas[order[1:]], sigmas)
        order = order[np.where(ovr <= thr)[0] + 1]
    return np.asarray(keep, dtype=np.int64)


def _prediction_entries(predictions: Iterable[dict], score_thr: float, nms_thr: float | None) -> list[dict]:
    """Rescore, NMS per image and format as COCO-WholeBody result entries."""
    by_image: dict[int, dict[int, dict]] = defaultdict(dict)
    for n, p in enumerate(predictions):
        kpts = np.asarray(p["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 2)
        ks = np.asarray(p["keypoint_scores"], dtype=np.float64).reshape(NUM_KEYPOINTS)
        if "area" in p and p["area"] is not None:
            area = float(p["area"])
        else:  # mmpose without bbox_scales: the keypoints' extent
            area = float(np.ptp(kpts[:, 0]) * np.ptp(kpts[:, 1]))
        pid = p.get("id", n)
        # mmpose `_sort_and_unique_bboxes(key='id')`: one prediction per id, sorted by id
        by_image[int(p["image_id"])][pid] = {
            "kpts": kpts, "scores": ks, "area": area,
            "score": instance_score(ks, float(p.get("bbox_score", 1.0)), score_thr)}
    entries = []
    for image_id, inst in by_image.items():
        items = [inst[k] for k in sorted(inst)]
        if nms_thr is not None:
            keep = oks_nms(np.stack([i["kpts"] for i in items]), np.array([i["score"] for i in items]),
                           np.array([i["area"] for i in items]), nms_thr)
            items = [items[k] for k in keep]
        for it in items:
            flat = np.concatenate([it["kpts"], it["scores"][:, None]], axis=1)
            e = {"image_id": image_id, "category_id": 1, "score": it["score"]}
            for field, a, b in RESULT_FIELDS:
                e[field] = flat[a:b].reshape(-1).tolist()
            for part in EVAL_PARTS:  # the evaluators look for '<part>_score' (xtcocotools warns, then uses 'score')
                e[f"{part}_score"] = it["score"]
            entries.append(e)
    return entries


def evaluate_predictions(ann_file: str | os.PathLike, predictions: Iterable[dict], *,
                         image_ids: Sequence[int] | None = None, keypoint_score_thr: float = 0.2,
                         nms_thr: float | None = 0.9, verbose: bool = False,
                         evaluator: str | None = None) -> dict[str, dict[str, float]]:
    """Score whole-body predictions against a COCO-WholeBody ground-truth json.

    `predictions`: dicts with `image_id`, `keypoints` (133,2) image pixels, `keypoint_scores` (133,),
    optional `bbox_score` (default 1), `area` (default: keypoint extent), `id` (unique per person).
    `image_ids` restricts the evaluation to those images (default: every image of the json, as
    mmpose). `nms_thr=None` skips OKS-NMS. `evaluator`: 'xtcocotools' or 'xthotcoco' (default: the
    first that imports, see `evaluator.load_backend`). Returns {part: {stat name: value}} for EVAL_PARTS.
    """
    backend = load_backend(evaluator)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = backend.COCO(os.fspath(ann_file))
        entries = _prediction_entries(predictions, keypoint_score_thr, nms_thr)
        dt = gt.loadRes(entries) if entries else None
        results: dict[str, dict[str, float]] = {}
        for part in EVAL_PARTS:
            if dt is None:
                results[part] = {name: 0.0 for name in STATS_NAMES}
                continue
            a, b = PART_SLICES[part]
            ev = backend.COCOeval(gt, dt, backend.iou_type(part), WHOLEBODY_SIGMAS[a:b], use_area=True)
            if backend.name == "xtcocotools":
                ev.params.useSegm = None
            if image_ids is not None:
                ev.params.imgIds = sorted(int(i) for i in image_ids)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            results[part] = {name: float(v) for name, v in zip(STATS_NAMES, ev.stats)}
    if verbose:
        print(sink.getvalue())
    return results


def format_results(results: dict[str, dict[str, float]]) -> str:
    """A small table: one row per part, AP / AP .5 / AP .75 / AR."""
    lines = [f"{'part':<10} {'AP':>6} {'AP50':>6} {'AP75':>6} {'AR':>6}"]
    for part, s in results.items():
        lines.append(f"{part:<10} {s['AP']:6.3f} {s['AP .5']:6.3f} {s['AP .75']:6.3f} {s['AR']:6.3f}")
    return "\n".join(lines)


def _load_det_boxes(det_file: str | os.PathLike) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """COCO detection results (list of {image_id, category_id, bbox xywh, score}) -> per image (xyxy, scores)."""
    with open(det_file) as f:
        dets = json.load(f)
    out: dict[int, list] = defaultdict(list)
    for d in dets:
        if d.get("category_id", 1) != 1:
            continue
        x, y, w, h = d["bbox"][:4]
        if w <= 0 or h <= 0:  # mmpose would crop these too; the Estimator refuses empty boxes
            continue
        out[int(d["image_id"])].append([x, y, x + w, y + h, d["score"]])
    return {k: (np.asarray(v, np.float32)[:, :4], np.asarray(v, np.float32)[:, 4]) for k, v in out.items()}


def evaluate_estimator(estimator: Callable[..., Any], ann_file: str | os.PathLike, image_dir: str | os.PathLike,
                       use_gt_boxes: bool = True, progress: bool = True, *, det_file: str | os.PathLike | None = None,
                       max_images: int | None = None, keypoint_score_thr: float = 0.2, nms_thr: float | None = 0.9,
                       verbose: bool = False, evaluator: str | None = None) -> dict[str, dict[str, float]]:
    """Run an Estimator (anything called as `est(image_bgr, boxes_xyxy)` returning `.keypoints` (N,133,2)
    and `.scores` (N,133)) over a COCO-WholeBody split and score it per part.

    use_gt_boxes=True: the ground-truth boxes of the persons mmpose's top-down dataset keeps (not crowd,
    body `num_keypoints` > 0, box clipped to the image), box score 1. use_gt_boxes=False: the person
    boxes of `det_file` (COCO detection results, e.g. COCO_val2017_detections_AP_H_56_person.json,
    which the official numbers use) with their scores. `max_images` evaluates only the first images
    (sorted by id) and restricts COCOeval to them. Flip test is whatever the estimator is set to.
    `evaluator` is checked before any inference (EvaluationUnavailable when it cannot import).
    """
    load_backend(evaluator)
    if not use_gt_boxes and det_file is None:
        raise InputError("use_gt_boxes=False needs det_file= (COCO person detection results json)")
    with open(ann_file) as f:
        gt_json = json.load(f)
    images = {img["id"]: img for img in gt_json["images"]}
    image_ids = sorted(images)
    if max_images is not None:
        image_ids = image_ids[:max_images]
    input_size = tuple(getattr(estimator, "input_size", (192, 256)))

    jobs: dict[int, tuple[np.ndarray, np.ndarray, list[int]]] = {}
    if use_gt_boxes:
        per_image: dict[int, list[dict]] = defaultdict(list)
        for inst in load_wholebody_instances(ann_file, image_dir):
            per_image[inst["image_id"]].append(inst)
        for i in image_ids:
            if per_image.get(i):
                insts = per_image[i]
                jobs[i] = (np.stack([x["bbox_xyxy"] for x in insts]), np.ones(len(insts), np.float32),
                           [x["ann_id"] for x in insts])
    else:
        dets = _load_det_boxes(det_file)
        next_id = 0
        for i in image_ids:
            if i in dets:
                boxes, scores = dets[i]
                jobs[i] = (boxes, scores, list(range(next_id, next_id + len(boxes))))
                next_id += len(boxes)

    order = [i for i in image_ids if i in jobs]
    if progress:
        order = tqdm(order, desc="evaluate", unit="img")
    predictions = []
    for image_id in order:
        boxes, box_scores, ids = jobs[image_id]
        path = os.path.join(os.fspath(image_dir), images[image_id]["file_name"])
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"cannot read image {path} (image id {image_id})")
        result = estimator(image, boxes)
        _, scales = boxes_to_center_scale(boxes, input_size)
        areas = scales[:, 0] * scales[:, 1]
        for j in range(len(boxes)):
            predictions.append({"image_id": image_id, "id": ids[j], "keypoints": np.asarray(result.keypoints[j]),
                                "keypoint_scores": np.asarray(result.scores[j]), "bbox_score": float(box_scores[j]),
                                "area": float(areas[j])})
    return evaluate_predictions(ann_file, predictions, image_ids=image_ids if max_images is not None else None,
                                keypoint_score_thr=keypoint_score_thr, nms_thr=nms_thr, verbose=verbose,
                                evaluator=evaluator)


__all__ = ["evaluate_estimator", "evaluate_predictions", "format_results", "instance_score", "oks_nms", "oks_iou",
           "WHOLEBODY_SIGMAS", "EVAL_PARTS", "STATS_NAMES", "EvaluationUnavailable"]
