"""Body keypoints of a model on real photos against our hand-marked ground truth (docs/real_photos).

    python docs/real_photos/check.py [--weights W] [--draw out/real_photos]

The photos are ultralytics' `assets/bus.jpg` and `assets/zidane.jpg`: taken from its PyPI wheel
(`pip download ultralytics --no-deps`, ~1 MB) into ~/.cache/dwpose_edge/real_photos on first use
and not redistributed here. annotations.json holds the 17 COCO body keypoints of 4 people, marked
by eye. Prints body AP (COCO OKS, on the ground-truth boxes) and each person's OKS, for the model
and for a fixed mean pose placed in each box (the mean of the embedded generated validation set):
a model that has learned nothing transferable scores like the mean pose.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
PHOTOS = ("bus.jpg", "zidane.jpg")


def fetch_photos(cache: Path) -> Path:
    """The two photos from the ultralytics wheel on PyPI, extracted once into `cache`."""
    if all((cache / name).is_file() for name in PHOTOS):
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "ultralytics", "-d", str(cache)],
                   check=True)
    wheel = max(cache.glob("ultralytics-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        for name in PHOTOS:
            (cache / name).write_bytes(z.read(f"ultralytics/assets/{name}"))
    wheel.unlink()
    return cache


def body_oks(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, area: float) -> float:
    """COCO OKS over the marked body keypoints."""
    from dwpose_edge.evaluation.metric import WHOLEBODY_SIGMAS

    var = (WHOLEBODY_SIGMAS[:17] * 2) ** 2
    e = ((pred - gt) ** 2).sum(-1) / var / (area + np.spacing(1)) / 2
    return float(np.exp(-e)[visible].mean())


def mean_body_pose() -> np.ndarray:
    """Mean body pose of the embedded validation set in box-normalised coordinates ((x - center) / scale)."""
    from dwpose_edge.embedded import embedded_val_set
    from dwpose_edge.preprocess import boxes_to_center_scale
    from dwpose_edge.evaluation.annotations import load_wholebody_instances

    inst = load_wholebody_instances(*embedded_val_set())
    c, s = boxes_to_center_scale(np.stack([i["bbox_xyxy"] for i in inst]), (192, 256))
    k = np.stack([i["keypoints"][:17] for i in inst])
    v = np.stack([i["visible"][:17] for i in inst]) > 0
    norm = np.where(v[..., None], (k - c[:, None]) / s[:, None], np.nan)
    return np.nanmean(norm, axis=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="dwpose-t")
    p.add_argument("--weights", default=None, help="default: the embedded model")
    p.add_argument("--draw", default=None, help="folder for drawings")
    p.add_argument("--cache", default=os.path.expanduser("~/.cache/dwpose_edge/real_photos"))
    args = p.parse_args(argv)
    from dwpose_edge import Estimator
    from dwpose_edge.draw import draw
    from dwpose_edge.preprocess import boxes_to_center_scale
    from dwpose_edge.evaluation.metric import evaluate_predictions

    photos = fetch_photos(Path(args.cache))
    ann_file = HERE / "annotations.json"
    doc = json.loads(ann_file.read_text())
    est = Estimator(args.model, weights=args.weights)
    mean = mean_body_pose()
    preds = {"model": [], "mean pose": []}
    rows = []
    for img in doc["images"]:
        image = cv2.imread(str(photos / img["file_name"]))
        anns = [a for a in doc["annotations"] if a["image_id"] == img["id"]]
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in anns], np.float32)
        result = est(image, boxes)
        centers, scales = boxes_to_center_scale(boxes, est.input_size)
        for j, a in enumerate(anns):
            gt = np.array(a["keypoints"], np.float32).reshape(17, 3)
            fixed = np.zeros((133, 2), np.float32)
            fixed[:17] = mean * scales[j] + centers[j]
            for name, kpts, scores in (("model", result.keypoints[j], result.scores[j]),
                                       ("mean pose", fixed, np.ones(133, np.float32))):
                preds[name].append({"image_id": img["id"], "id": a["id"], "keypoints": kpts,
                                    "keypoint_scores": scores, "area": float(scales[j].prod())})
            vis = gt[:, 2] > 0
            rows.append((img["file_name"], a["id"], int(vis.sum()),
                         body_oks(result.keypoints[j][:17], gt[:, :2], vis, a["area"]),
                         body_oks(fixed[:17], gt[:, :2], vis, a["area"])))
        if args.draw:
            os.makedirs(args.draw, exist_ok=True)
            cv2.imwrite(os.path.join(args.draw, Path(img["file_name"]).stem + "_pose.jpg"),
                        draw(image, result, score_threshold=float("-inf")), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"model: {args.model}, weights: {args.weights or 'embedded default'}")
    print("| photo | person | marked keypoints | OKS model | OKS mean pose |")
    print("|---|---|---|---|---|")
    for name, pid, n, a, b in rows:
        print(f"| {name} | {pid} | {n} | {a:.3f} | {b:.3f} |")
    for name, entries in preds.items():
        body = evaluate_predictions(ann_file, entries, nms_thr=None)["body"]
        print(f"body AP ({name}): {body['AP']:.3f}  (AP .5 {body['AP .5']:.3f}, AR {body['AR']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
