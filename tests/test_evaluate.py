"""COCO-WholeBody evaluation: perfect predictions score 1.0 in every part, noisy ones strictly less;
xthotcoco (what the train extra installs) and xtcocotools (when one imports) give the same numbers."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from dwpose_edge.data import DATA_DIR
from dwpose_edge.evaluation.metric import (EVAL_PARTS, STATS_NAMES, WHOLEBODY_SIGMAS, evaluate_estimator,
                                        evaluate_predictions, instance_score, oks_nms)
from dwpose_edge.evaluation.backend import EvaluationUnavailable, load_backend


def _unusable(name: str) -> str | None:
    try:
        load_backend(name)
    except EvaluationUnavailable as exc:
        return str(exc)
    return None


XTCOCOTOOLS_MISSING = _unusable("xtcocotools")
# xthotcoco comes with the train extra on Python >= 3.10: there it must import, never skip
EVALUATORS = [pytest.param("xthotcoco", marks=pytest.mark.skipif(sys.version_info < (3, 10),
                                                                   reason="xthotcoco needs Python >= 3.10")),
              pytest.param("xtcocotools", marks=pytest.mark.skipif(
                  XTCOCOTOOLS_MISSING is not None,
                  reason=f"xtcocotools not importable (a fresh `make venv` has only xthotcoco): "
                         f"{XTCOCOTOOLS_MISSING}"))]


@pytest.fixture(params=EVALUATORS)
def evaluator(request):
    return request.param

CUTS = {"keypoints": (0, 17), "foot_kpts": (17, 23), "face_kpts": (23, 91),
        "lefthand_kpts": (91, 112), "righthand_kpts": (112, 133)}


def make_gt(root):
    """4 persons on 3 blank images, every part labelled (body 2, feet 2, face 1, hands 0.6), plus one crowd."""
    rng = np.random.default_rng(0)
    boxes = {1: [(30, 20, 150, 300)], 2: [(10, 10, 120, 260), (200, 40, 160, 330)], 3: [(50, 60, 200, 280)]}
    images, anns, truth = [], [], {}
    (root / "img").mkdir()
    ann_id = 1
    for image_id, bxs in boxes.items():
        name = f"{image_id}.jpg"
        cv2.imwrite(str(root / "img" / name), np.zeros((400, 400, 3), np.uint8))
        images.append({"id": image_id, "file_name": name, "width": 400, "height": 400})
        for x, y, w, h in bxs:
            kp = np.zeros((133, 3))
            kp[:, 0] = rng.uniform(x, x + w, 133)
            kp[:, 1] = rng.uniform(y, y + h, 133)
            kp[:, 2] = np.r_[np.full(23, 2.0), np.full(68, 1.0), np.full(42, 0.6)]
            kp[5, :] = 0  # one unlabelled body keypoint
            ann = {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": [x, y, w, h],
                   "area": float(w * h), "num_keypoints": 16, "segmentation": []}
            for field, (a, b) in CUTS.items():
                ann[field] = kp[a:b].reshape(-1).tolist()
            anns.append(ann)
            truth[ann_id] = (image_id, kp, (x, y, x + w, y + h))
            ann_id += 1
    crowd = dict(anns[0], id=99, iscrowd=1)
    anns.append(crowd)
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    path = root / "gt.json"
    path.write_text(json.dumps(gt))
    return path, root / "img", truth


@pytest.fixture(scope="module")
def gt(tmp_path_factory):
    return make_gt(tmp_path_factory.mktemp("eval"))


def _preds(truth, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return [{"image_id": image_id, "id": ann_id,
             "keypoints": kp[:, :2] + rng.normal(0, noise, (133, 2)), "keypoint_scores": np.ones(133)}
            for ann_id, (image_id, kp, _) in truth.items()]


def test_sigmas_are_the_official_ones():
    assert WHOLEBODY_SIGMAS.shape == (133,)
    np.testing.assert_allclose(WHOLEBODY_SIGMAS[:5], [0.026, 0.025, 0.025, 0.035, 0.035])
    np.testing.assert_allclose(WHOLEBODY_SIGMAS[17:23], [0.068, 0.066, 0.066, 0.092, 0.094, 0.094])
    np.testing.assert_array_equal(WHOLEBODY_SIGMAS[91:112], WHOLEBODY_SIGMAS[112:133])


def test_perfect_predictions_score_one(gt, evaluator):
    ann_file, _, truth = gt
    res = evaluate_predictions(ann_file, _preds(truth), evaluator=evaluator)
    assert list(res) == list(EVAL_PARTS)
    for part in EVAL_PARTS:
        assert list(res[part]) == list(STATS_NAMES)
        assert res[part]["AP"] == pytest.approx(1.0) and res[part]["AR"] == pytest.approx(1.0), part


def test_noise_lowers_every_part(gt, evaluator):
    ann_file, _, truth = gt
    clean = evaluate_predictions(ann_file, _preds(truth), evaluator=evaluator)
    noisy = evaluate_predictions(ann_file, _preds(truth, noise=10.0), evaluator=evaluator)
    for part in EVAL_PARTS:
        assert 0.0 <= noisy[part]["AP"] < clean[part]["AP"], part
    # faces have the smallest sigmas: the same pixel noise hurts them more than the body
    assert noisy["face"]["AP"] < noisy["body"]["AP"]
    worse = evaluate_predictions(ann_file, _preds(truth, noise=30.0), evaluator=evaluator)
    assert worse["wholebody"]["AP"] <= noisy["wholebody"]["AP"]


def test_instance_score_as_mmpose():
    s = np.r_[np.full(100, 0.9), np.full(33, 0.1)]
    assert instance_score(s) == pytest.approx(0.9)
    assert instance_score(s, bbox_score=0.5) == pytest.approx(0.45)
    assert instance_score(np.full(133, 0.2)) == 0.0  # strictly above the 0.2 threshold


def test_oks_nms_drops_duplicates():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 100, (133, 2))
    b = rng.uniform(200, 300, (133, 2))
    kpts = np.stack([a, a + 0.1, b])
    keep = oks_nms(kpts, np.array([0.5, 0.9, 0.7]), np.full(3, 1e4))
    assert sorted(keep.tolist()) == [1, 2]


def test_evaluate_estimator_with_oracle(gt, evaluator):
    ann_file, img_dir, truth = gt
    boxes_seen = []

    class Oracle:
        """Returns the ground truth of whichever ground-truth box it is given."""

        input_size = (192, 256)

        def __call__(self, image, boxes):
            by_box = {box: kp[:, :2] for _, kp, box in truth.values()}
            boxes_seen.extend(tuple(b) for b in boxes.tolist())
            kpts = np.stack([by_box[tuple(b)] for b in boxes.tolist()])
            return SimpleNamespace(keypoints=kpts, scores=np.ones(kpts.shape[:2]))

    res = evaluate_estimator(Oracle(), ann_file, img_dir, progress=False, evaluator=evaluator)
    assert len(boxes_seen) == 4  # the crowd annotation is not predicted on
    for part in EVAL_PARTS:
        assert res[part]["AP"] == pytest.approx(1.0), part
    # a subset of images is scored against those images only
    sub = evaluate_estimator(Oracle(), ann_file, img_dir, progress=False, max_images=1, evaluator=evaluator)
    assert sub["wholebody"]["AP"] == pytest.approx(1.0)


def test_evaluate_estimator_runs_a_real_estimator(gt):
    from dwpose_edge import Estimator

    ann_file, img_dir, _ = gt
    res = evaluate_estimator(Estimator("dwpose-t", weights="random"), ann_file, img_dir, progress=False)
    for part in EVAL_PARTS:
        assert 0.0 <= res[part]["AP"] <= 1.0 and 0.0 <= res[part]["AR"] <= 1.0
    with pytest.raises(ValueError, match="det_file"):
        evaluate_estimator(Estimator("dwpose-t", weights="random"), ann_file, img_dir, use_gt_boxes=False)


MMPOSE_METRIC = r'''
import contextlib, io, json, os, re, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from mmpose_dump import install_stubs
install_stubs()
import mmpose
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from mmpose.evaluation.metrics import CocoWholeBodyMetric
d = json.load(open(sys.argv[1]))
metric = CocoWholeBodyMetric(ann_file=d["ann_file"])
cfg = os.path.join(os.path.dirname(mmpose.__file__), ".mim/configs/_base_/datasets/coco_wholebody.py")
metric.dataset_meta = parse_pose_metainfo(dict(from_file=cfg))
metric.process([], [{"id": p["id"], "img_id": p["image_id"], "category_id": 1,
                     "pred_instances": {"keypoints": np.array(p["keypoints"])[None],
                                        "keypoint_scores": np.array(p["keypoint_scores"])[None]},
                     "gt_instances": {"bbox_scores": np.array([p["bbox_score"]]),
                                      "bbox_scales": np.array([p["scale"]])}} for p in d["preds"]])
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    res = metric.compute_metrics(metric.results)
printed = [float(v) for v in re.findall(r"\] = +(-?[0-9.]+)", buf.getvalue())]
print(json.dumps({"printed": printed, "returned": list(res.values())}))
'''


def _val_predictions(noise: float, seed: int, duplicates: bool) -> list[dict]:
    """Noisy copies of the bundled validation set's ground truth, random keypoint and box scores."""
    rng = np.random.default_rng(seed)
    gt = json.loads((DATA_DIR / "val" / "annotations.json").read_text())
    preds = []
    for ann in gt["annotations"]:
        kp = np.concatenate([np.reshape(ann[field], (-1, 3)) for field in CUTS])
        for copy in range(2 if duplicates else 1):  # a noisier second copy exercises OKS-NMS and FP ranking
            preds.append({"image_id": ann["image_id"], "id": len(preds),
                          "keypoints": kp[:, :2] + rng.normal(0, noise * (1 + copy), (133, 2)),
                          "keypoint_scores": rng.uniform(0, 1, 133), "bbox_score": float(rng.uniform(0.5, 1)),
                          "area": ann["bbox"][2] * ann["bbox"][3] * 1.5})
    return preds


@pytest.mark.skipif(XTCOCOTOOLS_MISSING is not None,
                    reason=f"no xtcocotools to compare xthotcoco with (the default install has only xthotcoco; "
                           f"build it with: pip install --no-binary xtcocotools xtcocotools): {XTCOCOTOOLS_MISSING}")
@pytest.mark.parametrize("noise, duplicates, image_ids", [(0.0, False, None), (2.0, False, None),
                                                         (5.0, True, None), (3.0, True, [1, 2, 3, 5, 8, 13, 21])])
def test_xthotcoco_equals_xtcocotools(noise, duplicates, image_ids):
    """All 10 stats of all six iouTypes are identical, not merely close (measured: max difference 0.0)."""
    ann_file = DATA_DIR / "val" / "annotations.json"
    preds = _val_predictions(noise, seed=int(noise * 10) + duplicates, duplicates=duplicates)
    xt = evaluate_predictions(ann_file, preds, image_ids=image_ids, evaluator="xtcocotools")
    hot = evaluate_predictions(ann_file, preds, image_ids=image_ids, evaluator="xthotcoco")
    assert hot == xt
    ap = [xt[part]["AP"] for part in EVAL_PARTS]
    assert len(set(ap)) > 1 and all(-1 < a <= 1 for a in ap)  # real, differing numbers, not all 0 or -1
    if image_ids is not None:  # the subset restriction reaches both engines
        full = evaluate_predictions(ann_file, preds, evaluator="xthotcoco")
        assert full["wholebody"] != hot["wholebody"]


def test_default_evaluator_prefers_xtcocotools():
    expected = "xthotcoco" if XTCOCOTOOLS_MISSING else "xtcocotools"
    assert load_backend().name == expected
    assert load_backend("xthotcoco").iou_type("body") == "keypoints"  # xthotcoco's name for the body part
    assert load_backend("xthotcoco").iou_type("face") == "keypoints_face"
    with pytest.raises(EvaluationUnavailable, match="unknown COCO-WholeBody evaluator 'pycocotools'"):
        load_backend("pycocotools")


@pytest.mark.conformance
@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_matches_mmpose_cocowholebody_metric(gt, tmp_path, evaluator):
    """Rescoring, OKS-NMS (duplicates on purpose) and the six COCOeval runs agree with CocoWholeBodyMetric."""
    import os
    import subprocess

    venv = Path(os.environ.get("DWPOSE_EDGE_MMPOSE_VENV", Path.home() / ".cache/dwpose_edge/mmpose-venv"))
    if not (venv / ".dwpose_edge_ready").is_file():
        pytest.skip(f"no real-mmpose venv at {venv} (build it: bash tests/mmpose_ref/make_venv.sh)")
    ann_file, _, truth = gt
    rng = np.random.default_rng(1)
    preds = []
    for image_id, kp, box in truth.values():
        for dup in range(2):
            preds.append(dict(id=len(preds), image_id=image_id,
                              keypoints=(kp[:, :2] + rng.normal(0, 3 + 5 * dup, (133, 2))).tolist(),
                              keypoint_scores=rng.uniform(0, 1, 133).tolist(), bbox_score=float(rng.uniform(0.5, 1)),
                              scale=[(box[2] - box[0]) * 1.25, (box[3] - box[1]) * 1.25]))
    (tmp_path / "preds.json").write_text(json.dumps({"ann_file": str(ann_file), "preds": preds}))
    run = subprocess.run([str(venv / "bin" / "python"), "-c", MMPOSE_METRIC, str(tmp_path / "preds.json"),
                          str(Path(__file__).parent / "mmpose_ref")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    ref = json.loads(run.stdout.strip().splitlines()[-1])
    mine = evaluate_predictions(ann_file, [dict(p, area=p["scale"][0] * p["scale"][1]) for p in preds],
                                evaluator=evaluator)
    flat = [mine[part][name] for part in EVAL_PARTS for name in STATS_NAMES]
    np.testing.assert_allclose(flat, ref["printed"], atol=5e-4)  # mmpose prints 3 decimals
    np.testing.assert_allclose([mine["wholebody"][n] for n in STATS_NAMES], ref["returned"], rtol=1e-12)
