"""INT8 calibration data: person crops made exactly as at inference (`crop_boxes`), split into a
calibration set and a held-out gate set that never share an image.

Two sources:

* COCO-WholeBody: an annotation json + its image folder. One crop per person that mmpose's top-down
  dataset keeps (`train.data.load_wholebody_instances`: not crowd, body keypoints labelled, box clipped).
  The held-out images carry ground truth, so the gate can also compare whole-body AP.
* A folder of images, optionally with a boxes json `{"<file name>": [[x1, y1, x2, y2], ...], ...}`
  (file names relative to the folder; pixels, xyxy). Images the json does not list, or every image
  when there is no json, give one whole-image box. No ground truth: the gate compares keypoints only.

Selection is deterministic: the images are shuffled with `seed`; the held-out set takes whole images
from the end of that order until it holds `n_holdout` crops (every person of those images, so AP on
them is a proper AP), the calibration set takes crops from the start until it holds `n_calib`.
Too few crops for either set raises CalibrationError naming the counts.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dwpose_edge.errors import CalibrationError, InputError
from dwpose_edge.evaluation.annotations import load_wholebody_instances
from dwpose_edge.hashing import sha256_file
from dwpose_edge.preprocess import crop_boxes

N_CALIB = 256
N_HOLDOUT = 64
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class CropSet:
    """Normalized crops (N,3,H,W) float32 with what is needed to map keypoints back to their image."""

    crops: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    image_ids: np.ndarray
    ann_ids: np.ndarray
    files: list[str] = field(default_factory=list)  # image file per crop (relative to the image folder)

    def __len__(self) -> int:
        return int(len(self.crops))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.crops).tobytes()).hexdigest()

    def subset(self, n: int) -> "CropSet":
        return CropSet(self.crops[:n], self.centers[:n], self.scales[:n], self.image_ids[:n], self.ann_ids[:n],
                       self.files[:n])


@dataclass
class CalibrationData:
    """The calibration crops, the disjoint held-out crops for the gate, and ground truth when present."""

    calib: CropSet
    holdout: CropSet
    input_size: tuple[int, int]
    source: dict[str, Any]
    ann_file: Path | None = None  # COCO-WholeBody ground truth of the held-out images (None: no AP gate)

    @property
    def holdout_image_ids(self) -> list[int]:
        return sorted({int(i) for i in self.holdout.image_ids})

    def info(self) -> dict[str, Any]:
        """What the manifest records about the data (no absolute paths beyond what the user gave)."""
        return {**self.source, "n_calib": len(self.calib), "n_holdout": len(self.holdout),
                "calib_images": len(set(self.calib.image_ids.tolist())),
                "holdout_images": len(self.holdout_image_ids),
                "calib_sha256": self.calib.sha256, "holdout_sha256": self.holdout.sha256,
                "ground_truth": self.ann_file is not None}


def load_calibration(calib: Any, images: str | os.PathLike | None, input_size: tuple[int, int], *,
                     n_calib: int = N_CALIB, n_holdout: int = N_HOLDOUT, seed: int = 0) -> CalibrationData:
    """Calibration data from what the user gave: a CalibrationData (returned as is), a COCO-WholeBody
    json (+ `images`, its image folder), a boxes json (+ `images`), or a folder of images."""
    if isinstance(calib, CalibrationData):
        if tuple(calib.input_size) != tuple(input_size):
            raise CalibrationError(f"the calibration crops are {calib.input_size} (WxH), the model takes {input_size}")
        return calib
    if calib is None:
        raise CalibrationError("INT8 export needs calibration data: pass calib=<COCO-WholeBody json> with "
                               "calib_images=<image folder> (CLI: --calib ANN_JSON --calib-images DIR), or a "
                               "folder of images (--calib DIR)")
    path = Path(calib)
    if path.is_dir():
        return from_image_folder(path, input_size, boxes=None, n_calib=n_calib, n_holdout=n_holdout, seed=seed)
    if not path.is_file():
        raise CalibrationError(f"calibration data {path} does not exist")
    try:
        doc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path} is not a JSON file ({exc}); give a COCO-WholeBody json or a boxes json") from exc
    if images is None:
        raise CalibrationError(f"{path.name} needs the folder of its images (calib_images= / --calib-images)")
    if isinstance(doc, dict) and "annotations" in doc and "images" in doc:
        return from_coco(path, images, input_size, n_calib=n_calib, n_holdout=n_holdout, seed=seed)
    return from_image_folder(images, input_size, boxes=path, n_calib=n_calib, n_holdout=n_holdout, seed=seed)


def from_coco(ann_file: str | os.PathLike, image_dir: str | os.PathLike, input_size: tuple[int, int], *,
              n_calib: int = N_CALIB, n_holdout: int = N_HOLDOUT, seed: int = 0) -> CalibrationData:
    """Crops of the persons of a COCO-WholeBody split (ground-truth boxes), split by image."""
    try:
        instances = load_wholebody_instances(ann_file, image_dir)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CalibrationError(f"cannot read COCO-WholeBody annotations {ann_file}: {exc}") from exc
    per_image: dict[int, dict] = {}
    for inst in instances:
        entry = per_image.setdefault(inst["image_id"], {"path": inst["image_path"], "boxes": [], "ann_ids": []})
        entry["boxes"].append(inst["bbox_xyxy"])
        entry["ann_ids"].append(inst["ann_id"])
    image_dir = Path(image_dir)
    jobs = [(image_id, e["path"], np.stack(e["boxes"]).astype(np.float32), e["ann_ids"])
            for image_id, e in sorted(per_image.items())]
    source = {"kind": "coco-wholebody", "ann": os.path.basename(os.fspath(ann_file)),
              "sha256": sha256_file(ann_file), "seed": int(seed)}
    calib, holdout = _split(jobs, image_dir, input_size, n_calib, n_holdout, seed, f"{ann_file}")
    return CalibrationData(calib, holdout, tuple(input_size), source, ann_file=Path(ann_file))


def from_image_folder(image_dir: str | os.PathLike, input_size: tuple[int, int], *,
                      boxes: str | os.PathLike | dict | None = None, n_calib: int = N_CALIB,
                      n_holdout: int = N_HOLDOUT, seed: int = 0) -> CalibrationData:
    """Crops of a folder of images: boxes from a `{"file": [[x1,y1,x2,y2], ...]}` json, else whole images."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise CalibrationError(f"calibration image folder {image_dir} does not exist")
    files = sorted(p.name for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    table: dict[str, Any] = {}
    if boxes is not None:
        if isinstance(boxes, dict):
            table = boxes
        else:
            try:
                table = json.loads(Path(boxes).read_text())
            except (OSError, ValueError) as exc:
                raise CalibrationError(f"cannot read the boxes json {boxes}: {exc}") from exc
        if not isinstance(table, dict):
            raise CalibrationError('the boxes json must map image file names to box lists: '
                                   '{"a.jpg": [[x1, y1, x2, y2], ...], ...}')
        missing = sorted(set(table) - set(files))
        if missing:
            raise CalibrationError(f"the boxes json names images not in {image_dir}: {missing[:5]}")
    jobs = []
    for i, name in enumerate(files):
        b = table.get(name)
        arr = None
        if b is not None:
            arr = np.asarray(b, dtype=np.float32).reshape(-1, 4) if len(b) else None
            if arr is None:
                continue  # listed with no boxes: no person in it, nothing to calibrate on
        jobs.append((i + 1, str(image_dir / name), arr, [-1] * (0 if arr is None else len(arr))))
    source = {"kind": "image-folder", "images": image_dir.name, "boxes": "json" if boxes is not None else "whole image",
              "seed": int(seed)}
    calib, holdout = _split(jobs, image_dir, input_size, n_calib, n_holdout, seed, str(image_dir))
    return CalibrationData(calib, holdout, tuple(input_size), source, ann_file=None)


def _split(jobs: list, image_dir: Path, input_size: tuple[int, int], n_calib: int, n_holdout: int, seed: int,
           what: str) -> tuple[CropSet, CropSet]:
    """Shuffle images with `seed`; held-out = whole images from the end, calibration = crops from the start."""
    if n_calib < 1 or n_holdout < 1:
        raise InputError(f"n_calib and n_holdout must be >= 1, got {n_calib}, {n_holdout}")
    counts = [len(j[3]) if j[2] is not None else 1 for j in jobs]
    total = int(sum(counts))
    if total < n_calib + n_holdout:
        raise CalibrationError(
            f"{what} gives {total} person crops in {len(jobs)} images, but INT8 export needs {n_calib} calibration "
            f"+ {n_holdout} held-out crops (from different images); use more images or lower n_calib/n_holdout")
    order = np.random.default_rng(seed).permutation(len(jobs))
    hold_idx: list[int] = []
    held = 0
    for k in order[::-1]:
        if held >= n_holdout:
            break
        hold_idx.append(int(k))
        held += counts[k]
    hold_set = set(hold_idx)
    calib_idx = [int(k) for k in order if int(k) not in hold_set]
    available = sum(counts[k] for k in calib_idx)
    if available < n_calib:
        raise CalibrationError(
            f"{what}: after holding out {held} crops ({len(hold_idx)} images) for the accuracy gate, {available} "
            f"crops are left for calibration but {n_calib} are needed; use more images or lower n_calib")
    calib = _crops([jobs[k] for k in calib_idx], input_size, limit=n_calib)
    holdout = _crops([jobs[k] for k in sorted(hold_idx)], input_size, limit=None)
    return calib, holdout


def _crops(jobs: list, input_size: tuple[int, int], limit: int | None) -> CropSet:
    crops, centers, scales, image_ids, ann_ids, files = [], [], [], [], [], []
    n = 0
    for image_id, path, boxes, ids in jobs:
        if limit is not None and n >= limit:
            break
        image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
        if image is None:
            raise CalibrationError(f"cannot read calibration image {path}")
        if boxes is None:
            h, w = image.shape[:2]
            boxes, ids = np.array([[0, 0, w, h]], np.float32), [-1]
        if limit is not None:
            boxes, ids = boxes[:limit - n], ids[:limit - n]
        try:
            c, ctr, scl = crop_boxes(image, boxes, input_size)
        except InputError as exc:
            raise CalibrationError(f"bad box for calibration image {path}: {exc}") from exc
        crops.append(c)
        centers.append(ctr)
        scales.append(scl)
        image_ids += [int(image_id)] * len(c)
        ann_ids += [int(a) for a in ids]
        files += [os.path.basename(os.fspath(path))] * len(c)
        n += len(c)
    return CropSet(np.ascontiguousarray(np.concatenate(crops)), np.concatenate(centers), np.concatenate(scales),
                   np.asarray(image_ids, np.int64), np.asarray(ann_ids, np.int64), files)


def calibration_key(calib: Any, images: str | os.PathLike | None = None) -> str:
    """A short hash naming calibration data in caches: file contents of the json, names and sizes of the
    images (cheap: the images are not read), or the crops of a CalibrationData."""
    h = hashlib.sha256()
    if isinstance(calib, CalibrationData):
        h.update(f"{calib.calib.sha256}|{calib.holdout.sha256}".encode())
        return h.hexdigest()[:16]
    if calib is None:
        raise CalibrationError("no calibration data given")
    path = Path(calib)
    if path.is_file():
        h.update(sha256_file(path).encode())
    folder = path if path.is_dir() else (Path(images) if images is not None else None)
    if folder is not None and folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                h.update(f"{p.name}:{p.stat().st_size}|".encode())
    return h.hexdigest()[:16]
