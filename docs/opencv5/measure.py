"""What OpenCV 5 changes for top-down pose crops, measured (README "OpenCV 4 vs 5").

Runs in the project's environment (OpenCV 4.x, pinned) and in a side venv with OpenCV 5 (built once in
~/.cache/dwpose_edge/opencv5-venv). Both decode the same JPEGs and warp them with the same float32 affine
matrices (mmpose's, from `dwpose_edge.preprocess`); the crops are compared value by value, then both sets
of crops go through the same trained model (the embedded dwpose-t, torch fp32) and the keypoints are
compared in crop pixels and as AP on the ground truth.

    .venv/bin/python docs/opencv5/measure.py [--opencv5 opencv-python-headless==5.1.0.95]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

SIDE = r"""
import sys, json, numpy as np, cv2
job = np.load(sys.argv[1], allow_pickle=False)
paths = json.loads(str(job["paths"]))
w, h = (int(v) for v in job["size"])
crops, decoded = [], {}
for path, mat in zip([paths[i] for i in job["image_index"]], job["mats"]):
    if path not in decoded:
        decoded[path] = cv2.imread(path, cv2.IMREAD_COLOR)
    crops.append(cv2.warpAffine(decoded[path], mat, (w, h), flags=cv2.INTER_LINEAR))
np.savez(sys.argv[2], crops=np.stack(crops), version=cv2.__version__,
         decoded_sha=np.array([hash(decoded[p].tobytes()) for p in paths]),
         **{f"img{i}": decoded[p] for i, p in enumerate(paths)})
"""


def side_python(spec: str) -> str:
    venv = Path.home() / ".cache" / "dwpose_edge" / "opencv5-venv"
    py = venv / "bin" / "python"
    stamp = venv / ".spec"
    if not (py.exists() and stamp.exists() and stamp.read_text() == spec):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", spec, "numpy"], check=True)
        stamp.write_text(spec)
    return str(py)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--opencv5", default="opencv-python-headless==5.1.0.95", help="pip spec of the OpenCV 5 side venv")
    args = ap.parse_args()

    import torch

    from dwpose_edge import Estimator
    from dwpose_edge.data import DATA_DIR
    from dwpose_edge.embedded import embedded_val_set
    from dwpose_edge.specs import SIMCC_SPLIT_RATIO
    from dwpose_edge.postprocess import simcc_maximum
    from dwpose_edge.preprocess import boxes_to_center_scale, normalize, warp_matrix
    from dwpose_edge.evaluation.annotations import load_wholebody_instances

    torch.set_num_threads(1)
    est = Estimator("dwpose-t", runtime="torch", threads=1)
    w, h = est.input_size
    ann, images = embedded_val_set()
    insts = load_wholebody_instances(ann, images)
    photos = [str(DATA_DIR / n) for n in ("grace_hopper.jpg", "astronaut.jpg")]
    paths = sorted({i["image_path"] for i in insts}) + photos
    boxes = [(paths.index(i["image_path"]), i["bbox_xyxy"]) for i in insts]
    for p in photos:  # the whole photo and its central half
        img = cv2.imread(p)
        ih, iw = img.shape[:2]
        boxes += [(paths.index(p), np.array([0, 0, iw, ih], np.float32)),
                  (paths.index(p), np.array([iw / 4, ih / 4, 3 * iw / 4, 3 * ih / 4], np.float32))]
    mats = []
    for _, box in boxes:
        c, s = boxes_to_center_scale(box[None], (w, h))
        mats.append(warp_matrix(c[0], s[0], (w, h)))
    ours_decoded = {p: cv2.imread(p) for p in paths}
    ours = np.stack([cv2.warpAffine(ours_decoded[paths[i]], m, (w, h), flags=cv2.INTER_LINEAR)
                     for (i, _), m in zip(boxes, mats)])

    with tempfile.TemporaryDirectory() as tmp:
        job, res = Path(tmp) / "job.npz", Path(tmp) / "res.npz"
        np.savez(job, paths=json.dumps(paths), size=np.array([w, h]), image_index=np.array([i for i, _ in boxes]),
                 mats=np.stack(mats))
        script = Path(tmp) / "side.py"
        script.write_text(SIDE)
        subprocess.run([side_python(args.opencv5), str(script), str(job), str(res)], check=True)
        with np.load(res) as r:
            theirs, v5 = r["crops"], str(r["version"])
            decode_equal = all(np.array_equal(r[f"img{i}"], ours_decoded[p]) for i, p in enumerate(paths))

    diff = np.abs(ours.astype(int) - theirs.astype(int))
    print(f"OpenCV {cv2.__version__} vs {v5}: {len(paths)} images decoded identically: {decode_equal}")
    print(f"crops: {len(ours)} of {w}x{h}; values differing {100 * (diff > 0).mean():.1f}%, max {diff.max()} levels, "
          f"mean |diff| {diff.mean():.3f}; crops with any difference {100 * (diff.reshape(len(ours), -1).max(1) > 0).mean():.0f}%")

    def keypoints(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kx, ky = [], []
        for i in range(0, len(crops), 16):
            sx, sy = est.runtime.infer(normalize(crops[i:i + 16]))
            kx.append(sx), ky.append(sy)
        locs, scores = simcc_maximum(np.concatenate(kx), np.concatenate(ky))
        return locs / SIMCC_SPLIT_RATIO, scores

    (k4, s4), (k5, s5) = keypoints(ours), keypoints(theirs)
    d = np.linalg.norm(k4 - k5, axis=-1)
    print(f"keypoints (embedded dwpose-t, torch fp32, crop pixels): identical {100 * (d == 0).mean():.1f}%, "
          f"within 1 px {100 * (d <= 1).mean():.1f}%, within 2 px {100 * (d <= 2).mean():.1f}%, "
          f"max {d.max():.1f} px, mean {d.mean():.3f} px; max |score diff| {np.abs(s4 - s5).max():.4f}")


if __name__ == "__main__":
    main()
