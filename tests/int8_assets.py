"""A briefly trained dwpose-t and its INT8 exports, built once and cached for tests and benchmarks.

INT8 accuracy can only be judged on a trained model: untrained SimCC logits are flat, so their argmax
is noise that any rounding moves. No pose weights can be downloaded here and nothing pretrained
exists to fine-tune, so a dwpose-t is trained from scratch with the project's trainer (`stage='plain'`,
no augmentation) until its logits have real peaks. The calibration and held-out crops come from the
training images (the gate measures INT8 against fp32, so it needs crops on which the fp32 model is
confident, not unseen data; the two sets still never share an image).

Data: `tiny_wholebody` stick figures (all 133 keypoints drawn and labelled). The procedural 3D set
(`dwpose_edge.train.synth.make_dataset`) was tried first: 540 iterations (augmented or not) left dwpose-t on
the flat-logit plateau (loss at the "predict the mean position" level, AP 0, 0 % of keypoints with a
peak margin > 0.05), while the stick figures reach AP ~78 and peaked logits within ~700 iterations. Each
keypoint's agreement after INT8 tracks its peak margin (margin < 0.01: 55 % within 2 px; > 0.06: 98 %),
so a model on the plateau would only measure noise.

Everything lives under ~/.cache/dwpose_edge/test-artifacts/<key>, the key hashing the source of the
code that produces it (models, synth, trainer / the exporters) and the config, so it is rebuilt exactly
when one of them changes. A file lock keeps concurrent test/bench processes from building it twice.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:  # tiny_wholebody, also when imported from bench/
    sys.path.insert(0, str(ROOT / "tests"))
CACHE = Path(os.environ.get("DWPOSE_EDGE_TEST_CACHE", Path.home() / ".cache" / "dwpose_edge" / "test-artifacts"))

# the cheapest schedule found to give peaked, stable argmaxes on the calibration/gate crops
DATA = {"n_images": 48, "seed": 0, "size": (192, 256), "people": (1, 2)}  # 71 persons
TRAIN = {"epochs": 250, "batch_size": 16, "lr": 2e-3, "warmup_iters": 20, "augment": False, "ema": False,
         "seed": 0}  # 1000 iterations
CALIB = {"n_calib": 40, "n_holdout": 24, "seed": 0}
TRAIN_SOURCES = ("dwpose_edge/models", "tests/tiny_wholebody.py", "train/trainer.py", "train/data.py",
                 "train/losses.py", "train/schedule.py")
EXPORT_SOURCES = ("export", "runtimes", "dwpose_edge/preprocess.py", "dwpose_edge/postprocess.py",
                  "dwpose_edge/evaluation")  # the AP of the gate


def _sources_hash(paths, extra: dict) -> str:
    h = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for rel in paths:
        p = ROOT / rel
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def trained_model(log=print) -> dict:
    """{'dir', 'checkpoint', 'ann', 'images', 'info'} of the cached trained dwpose-t (built on first use)."""
    key = _sources_hash(TRAIN_SOURCES, {"data": DATA, "train": TRAIN})
    folder = CACHE / f"trained-{key}"
    done = folder / "info.json"
    with _locked(CACHE / f"trained-{key}.lock"):
        if not done.is_file():
            _build_trained(folder, log)
    return {"dir": folder, "checkpoint": folder / "dwpose-t_trained.pth", "ann": folder / "data" / "annotations.json",
            "images": folder / "data" / "images", "info": json.loads(done.read_text())}


def _build_trained(folder: Path, log) -> None:
    import torch

    from tiny_wholebody import make_tiny_wholebody

    from dwpose_edge.train.trainer import TrainConfig, train

    shutil.rmtree(folder, ignore_errors=True)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    log(f"building the cached trained dwpose-t for INT8 tests in {folder} (several minutes, once)")
    ann = make_tiny_wholebody(tmp / "data", **DATA)
    ann = Path(os.replace(ann, tmp / "data" / "annotations.json") or tmp / "data" / "annotations.json")
    t1 = time.perf_counter()
    final = train(TrainConfig(stage="plain", student="dwpose-t", ann=str(ann), images=str(tmp / "data" / "images"),
                              out=str(tmp / "work"), num_workers=0, progress=False, **TRAIN))
    t2 = time.perf_counter()
    ckpt = torch.load(final, map_location="cpu", weights_only=True)
    torch.save({"meta": ckpt["meta"], "state_dict": ckpt["state_dict"]}, tmp / "dwpose-t_trained.pth")
    shutil.rmtree(tmp / "work")
    info = {"data": DATA, "train": TRAIN, "data_seconds": round(t1 - t0, 1), "train_seconds": round(t2 - t1, 1),
            **quality(tmp / "dwpose-t_trained.pth", ann, tmp / "data" / "images")}
    (tmp / "info.json").write_text(json.dumps(info, indent=2))
    os.replace(tmp, folder)
    log(f"trained dwpose-t ready in {time.perf_counter() - t0:.0f} s: {info}")


def quality(checkpoint, ann, images) -> dict:
    """Whole-body AP of the model on its data and how peaked its logits are on the gate crops."""
    import numpy as np

    from dwpose_edge import Estimator
    from dwpose_edge.export.calibration import from_coco
    from dwpose_edge.export.validate import run_batched

    est = Estimator("dwpose-t", weights=str(checkpoint))
    out: dict = {}
    try:
        from dwpose_edge.evaluation.metric import evaluate_estimator

        res = evaluate_estimator(est, ann, images, progress=False)
        out["ap"] = {k: round(v["AP"] * 100, 2) for k, v in res.items()}
    except ImportError as exc:
        out["ap"] = {"skipped": str(exc).splitlines()[0]}
    data = from_coco(ann, images, est.input_size, **CALIB)
    x, y = run_batched(est.runtime.infer, data.holdout.crops)
    margins = []
    for a in (x, y):  # peak minus the best bin more than 2 px (4 bins) away
        idx = a.argmax(-1)[..., None]
        bins = np.arange(a.shape[-1])
        far = np.where(np.abs(bins - idx) > 4, a, -np.inf).max(-1)
        margins.append(a.max(-1) - far)
    m = np.minimum(*margins)
    out["peaks"] = {"mean_max_logit": round(float(np.minimum(x.max(-1), y.max(-1)).mean()), 4),
                    "median_margin_2px": round(float(np.median(m)), 4),
                    "frac_margin_gt_0.05": round(float((m > 0.05).mean()), 4)}
    return out


def int8_export(log=print) -> dict:
    """{'dir', 'manifest', 'seconds', ...} of the cached INT8 export (all three runtimes) of the trained model."""
    t = trained_model(log)
    key = _sources_hash(EXPORT_SOURCES, {"ckpt": t["info"], "calib": CALIB})
    folder = CACHE / f"int8-export-{key}"
    done = folder / "manifest.json"
    with _locked(CACHE / f"int8-export-{key}.lock"):
        if not done.is_file():
            from dwpose_edge.export.pipeline import export_model

            shutil.rmtree(folder, ignore_errors=True)
            t0 = time.perf_counter()
            export_model("dwpose-t", str(t["checkpoint"]), folder, targets=("onnx", "openvino", "ncnn"),
                         precisions=("fp32", "int8"), threads=2, log=log, calib=t["ann"], calib_images=t["images"],
                         int8_options=CALIB)
            (folder / "export_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return {"dir": folder, "manifest": json.loads(done.read_text()), "trained": t}
