"""The benchmark's input: one data set, its person boxes, and the crops made ONCE from them.

Every runtime, precision and peer of one run sees the very same float32 tensors; their sha256
goes into the report so two reports can be told apart (or matched) by their inputs.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dwpose_edge.embedded import VAL_DESCRIPTION, embedded_val_set
from dwpose_edge.errors import DataError
from dwpose_edge.evaluation.annotations import load_wholebody_instances
from dwpose_edge.preprocess import crop_boxes
from dwpose_edge.train.synth import make_dataset
from dwpose_edge.weights import cache_dir


@dataclass(frozen=True)
class DataSource:
    """A COCO-WholeBody annotation file, its image folder, and a line saying what it is."""

    ann_file: Path
    image_dir: Path
    description: str
    synthetic: bool = False


def default_bench_data() -> DataSource:
    """The data the benchmark uses when none is given: the embedded generated validation set
    (362 persons with whole-body ground truth, shipped in the package, identical on every machine)."""
    ann, images = embedded_val_set()
    return DataSource(ann, images, VAL_DESCRIPTION, synthetic=True)


def default_calibration_data(n_images: int = 160, seed: int = 1) -> DataSource:
    """INT8 calibration images for the benchmark's int8 rows: the first images of the training data's
    procedural set (seed 1, ~390 persons, enough for the export's 256 calibration + 64 held-out crops),
    so the evaluated images (the embedded validation set, seed 2) never calibrate."""
    folder = cache_dir() / "bench_data" / f"calib_seed{seed}_n{n_images}"
    ann = folder / "annotations.json"
    if not ann.is_file():
        make_dataset(folder, n_images, seed=seed)
    return DataSource(ann, folder / "images", f"procedural calibration set (seed {seed}, {n_images} images)",
                      synthetic=True)


@dataclass(frozen=True)
class BenchCrops:
    """Crops (N,3,H,W) float32 normalized RGB with what is needed to decode and score them."""

    crops: np.ndarray
    centers: np.ndarray        # (N,2) float32
    scales: np.ndarray         # (N,2) float32, aspect-fixed padded box size
    boxes_xyxy: np.ndarray     # (N,4) float32, the ground-truth person boxes
    image_ids: np.ndarray      # (N,) int64
    ann_ids: np.ndarray        # (N,) int64
    input_size: tuple[int, int]  # (W, H)
    ann_file: str
    image_dir: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.crops).tobytes()).hexdigest()

    @property
    def areas(self) -> np.ndarray:
        """mmpose's instance areas: product of the padded, aspect-fixed box scale."""
        return (self.scales[:, 0] * self.scales[:, 1]).astype(np.float64)

    def __len__(self) -> int:
        return len(self.crops)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, crops=self.crops, centers=self.centers, scales=self.scales, boxes_xyxy=self.boxes_xyxy,
                 image_ids=self.image_ids, ann_ids=self.ann_ids, input_size=np.asarray(self.input_size),
                 meta=np.asarray(json.dumps({"ann_file": self.ann_file, "image_dir": self.image_dir})))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> BenchCrops:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            return cls(z["crops"], z["centers"], z["scales"], z["boxes_xyxy"], z["image_ids"], z["ann_ids"],
                       tuple(int(v) for v in z["input_size"]), meta["ann_file"], meta["image_dir"])


def build_crops(ann_file: str | os.PathLike, image_dir: str | os.PathLike, input_size: tuple[int, int],
                max_persons: int | None = None) -> BenchCrops:
    """Crop every ground-truth person of the data (mmpose's top-down filter), in annotation order.

    `max_persons` keeps the first `max_persons` persons only (quick runs).
    """
    instances = load_wholebody_instances(ann_file, image_dir)
    if max_persons is not None:
        instances = instances[:max_persons]
    if not instances:
        raise DataError(f"{ann_file} has no usable person (non-crowd, with labelled body keypoints)")
    by_image: dict[str, list[dict]] = {}
    for inst in instances:
        by_image.setdefault(inst["image_path"], []).append(inst)
    parts = []
    for path, insts in by_image.items():
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"cannot read image {path}")
        boxes = np.stack([i["bbox_xyxy"] for i in insts]).astype(np.float32)
        crops, centers, scales = crop_boxes(image, boxes, input_size)
        parts.append((crops, centers, scales, boxes, [i["image_id"] for i in insts], [i["ann_id"] for i in insts]))
    return BenchCrops(
        crops=np.ascontiguousarray(np.concatenate([p[0] for p in parts]), dtype=np.float32),
        centers=np.concatenate([p[1] for p in parts]).astype(np.float32),
        scales=np.concatenate([p[2] for p in parts]).astype(np.float32),
        boxes_xyxy=np.concatenate([p[3] for p in parts]),
        image_ids=np.asarray(sum((p[4] for p in parts), []), np.int64),
        ann_ids=np.asarray(sum((p[5] for p in parts), []), np.int64),
        input_size=(int(input_size[0]), int(input_size[1])),
        ann_file=os.fspath(ann_file), image_dir=os.fspath(image_dir))


def scaling_scene(crops: BenchCrops, persons: int) -> tuple[str, np.ndarray]:
    """An image of the data and `persons` boxes on it (its own boxes repeated cyclically).

    Used for end-to-end (crop + infer + decode) timings with 1..16 persons per image: the image with
    the most persons is taken, so repetition is as small as the data allows.
    """
    ids, counts = np.unique(crops.image_ids, return_counts=True)
    image_id = int(ids[np.argmax(counts)])
    boxes = crops.boxes_xyxy[crops.image_ids == image_id]
    reps = np.resize(np.arange(len(boxes)), persons)
    with open(crops.ann_file) as f:
        name = next(img["file_name"] for img in json.load(f)["images"] if img["id"] == image_id)
    return os.path.join(crops.image_dir, name), boxes[reps]
