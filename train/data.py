"""COCO-WholeBody top-down training data: RTMPose's train pipeline and SimCC targets, in numpy/OpenCV.

Mirrors mmpose 1.3.2 (`datasets/datasets/wholebody/coco_wholebody_dataset.py`,
`datasets/transforms/common_transforms.py`, `topdown_transforms.py`, `codecs/simcc_label.py`) and the
`rtmpose-*_coco-ubody-wholebody` configs:

    GetBBoxCenterScale(padding 1.25) -> RandomFlip(0.5) -> RandomHalfBody -> RandomBBoxTransform
    (shift 0.16 p0.3, scale [0.5,1.5], rotate 90 p0.6) -> TopdownAffine -> YOLOXHSVRandomAug
    -> Blur p0.1, MedianBlur p0.1, CoarseDropout (1 hole, 0.2-0.4 of each side, p1.0)
    -> SimCCLabel(sigma, split 2.0, normalize=False)

The last 30 epochs of RTMPose training switch to `AugConfig.rtmpose_stage2()` (shift 0, dropout p0.5);
mmdet's PipelineSwitchHook does that at epoch max_epochs - 30 (recreate the DataLoader when switching
if its workers are persistent). Random numbers come from numpy Generators, so a sample is a pure
function of (seed, epoch, index); the distributions are mmpose's, the streams are not.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dwpose_edge.errors import DataError, InputError
from dwpose_edge.evaluation.annotations import PART_FIELDS, load_wholebody_instances  # noqa: F401 (re-exported)
from dwpose_edge.specs import BBOX_PADDING, FLIP_INDICES, MEAN_RGB, NUM_KEYPOINTS, SIMCC_SPLIT_RATIO, STD_RGB

# mmpose coco_wholebody metainfo: type 'upper' / 'lower' (face and hands have no type).
UPPER_BODY_IDS = np.arange(0, 11)
LOWER_BODY_IDS = np.arange(11, 23)


@dataclass(frozen=True)
class AugConfig:
    """Train-time augmentation; defaults = rtmpose wholebody `train_pipeline` (stage 1, epochs 0-239)."""

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_total: int = 9        # counted over all 133 keypoints, as mmpose does
    half_body_min_upper: int = 2
    half_body_min_lower: int = 3
    half_body_padding: float = 1.5
    half_body_upper_prob: float = 0.7
    shift_factor: float = 0.16
    shift_prob: float = 0.3
    scale_factor: tuple[float, float] = (0.5, 1.5)
    scale_prob: float = 1.0
    rotate_factor: float = 90.0         # config value (RandomBBoxTransform's own default is 80)
    rotate_prob: float = 0.6
    hsv_deltas: tuple[int, int, int] = (5, 30, 30)   # YOLOXHSVRandomAug hue, saturation, value
    hsv: bool = True
    blur_prob: float = 0.1              # albumentations Blur, kernel 3/5/7
    median_blur_prob: float = 0.1       # albumentations MedianBlur, kernel 3/5/7
    dropout_prob: float = 1.0           # albumentations CoarseDropout, 1 hole, zero fill
    dropout_size: tuple[float, float] = (0.2, 0.4)

    @classmethod
    def rtmpose_stage2(cls) -> AugConfig:
        """`train_pipeline_stage2` of the configs (last 30 epochs): no shift, CoarseDropout p=0.5."""
        return cls(shift_factor=0.0, dropout_prob=0.5)

    @classmethod
    def none(cls) -> AugConfig:
        """No augmentation at all (plain crop of the padded box), for tests and debugging."""
        return cls(flip_prob=0.0, half_body_prob=0.0, shift_prob=0.0, scale_prob=0.0, rotate_prob=0.0,
                   hsv=False, blur_prob=0.0, median_blur_prob=0.0, dropout_prob=0.0)

    @classmethod
    def light(cls) -> AugConfig:
        """Not RTMPose: flips, +-25% scale, small shifts/rotations and colour only, no cut-outs or half bodies:
        a from-scratch network on generated people learns far faster without the heavy pipeline."""
        return cls(half_body_prob=0.0, shift_factor=0.1, scale_factor=(0.75, 1.25), rotate_factor=30.0,
                   rotate_prob=0.3, blur_prob=0.05, median_blur_prob=0.0, dropout_prob=0.0)

    @classmethod
    def preset(cls, name: str) -> AugConfig:
        """'rtmpose' (the configs' stage-1 pipeline), 'light' or 'none'."""
        presets = {"rtmpose": cls, "light": cls.light, "none": cls.none}
        if name not in presets:
            raise InputError(f"unknown augmentation preset {name!r}; choose one of {sorted(presets)}")
        return presets[name]()

    def replace(self, **changes: Any) -> AugConfig:
        return replace(self, **changes)


# ----------------------------------------------------------------------------- geometry

def get_warp_matrix(center: np.ndarray, scale: np.ndarray, rot: float, output_size: tuple[int, int]) -> np.ndarray:
    """mmpose's `get_warp_matrix` (no shift, no inverse): float32 three-point affine, rotation in degrees.

    With rot=0 this equals `dwpose_edge.preprocess.warp_matrix` bit for bit.
    """
    dst_w, dst_h = output_size
    rad = np.deg2rad(np.float32(rot))  # float32 as in training (RandomBBoxTransform's rotation is float32)
    sn, cs = np.sin(rad), np.cos(rad)
    src_dir = np.array([[cs, -sn], [sn, cs]]) @ np.array([scale[0] * -0.5, 0.0])
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([dst_w * -0.5, 0.0])
    for pts in (src, dst):  # third point: (p0 - p1) rotated by 90 degrees around p1
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]], dtype=np.float32)
    return cv2.getAffineTransform(src, dst)


def fix_aspect_ratio(scale: np.ndarray, aspect: float) -> np.ndarray:
    """Enlarge (w, h) to w/h = aspect (TopdownAffine._fix_aspect_ratio)."""
    w, h = float(scale[0]), float(scale[1])
    out = [w, w / aspect] if w > h * aspect else [h * aspect, h]
    return np.asarray(out, dtype=np.float32)


def encode_simcc(keypoints: np.ndarray, visible: np.ndarray, input_size: tuple[int, int],
                 sigma: tuple[float, float], split_ratio: float = SIMCC_SPLIT_RATIO
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian SimCC labels as mmpose's SimCCLabel (normalize=False, use_dark=False).

    keypoints (K,2) in crop pixels, visible (K,) -> target_x (K, W*r), target_y (K, H*r) float32 with
    peak 1 at round(k * r) (numpy round-half-even, as np.around), and weights (K,) = visible, set to 0
    where the Gaussian lies entirely outside the bins (3-sigma rule). Keypoints with visible < 0.5
    get all-zero labels.
    """
    k = len(keypoints)
    n_x = int(np.around(input_size[0] * split_ratio))
    n_y = int(np.around(input_size[1] * split_ratio))
    sig = np.asarray(sigma, dtype=np.float64)
    mu = np.around(np.asarray(keypoints, np.float64) * split_ratio).astype(np.int64)
    weight = np.asarray(visible, dtype=np.float32).copy()
    labelled = weight >= 0.5
    left_top = mu - sig * 3
    right_bottom = mu + sig * 3 + 1
    outside = ((left_top[:, 0] >= n_x) | (left_top[:, 1] >= n_y)
               | (right_bottom[:, 0] < 0) | (right_bottom[:, 1] < 0))
    weight[labelled & outside] = 0
    on = labelled & ~outside
    tx = np.zeros((k, n_x), np.float32)
    ty = np.zeros((k, n_y), np.float32)
    # float32 throughout, as mmpose computes it under numpy 1 (value-based casting of the scalars)
    x = np.arange(n_x, dtype=np.float32)
    y = np.arange(n_y, dtype=np.float32)
    mu32 = mu.astype(np.float32)
    tx[on] = np.exp(-((x[None] - mu32[on, 0:1]) ** 2) / np.float32(2 * sig[0] ** 2))
    ty[on] = np.exp(-((y[None] - mu32[on, 1:2]) ** 2) / np.float32(2 * sig[1] ** 2))
    return tx, ty, weight


def _truncnorm(rng: np.random.Generator, size: int) -> np.ndarray:
    """Standard normal truncated to [-1, 1] (scipy.stats.truncnorm(-1, 1) in mmpose), by rejection."""
    out = rng.standard_normal(size)
    bad = np.abs(out) > 1
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 1
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- photometric

def hsv_jitter(img: np.ndarray, rng: np.random.Generator, deltas: tuple[int, int, int]) -> np.ndarray:
    """YOLOXHSVRandomAug: each of h/s/v gets a uniform(-d, d) int offset with probability 1/2."""
    gains = rng.uniform(-1, 1, 3) * np.asarray(deltas, np.float64)
    gains *= rng.integers(0, 2, 3)
    gains = gains.astype(np.int16)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + gains[0]) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + gains[1], 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + gains[2], 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


def coarse_dropout(img: np.ndarray, rng: np.random.Generator, size: tuple[float, float]) -> np.ndarray:
    """albumentations CoarseDropout(max_holes=1, fractional sizes, fill 0): one zeroed rectangle."""
    h, w = img.shape[:2]
    hh = int(h * rng.uniform(*size))
    ww = int(w * rng.uniform(*size))
    y1 = int(rng.integers(0, h - hh + 1))
    x1 = int(rng.integers(0, w - ww + 1))
    img = img.copy()
    img[y1:y1 + hh, x1:x1 + ww] = 0
    return img


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) uint8 RGB (as returned with normalize=False) -> float32 (x - mean) / std, on its device."""
    mean = torch.as_tensor(MEAN_RGB, device=images.device).view(1, 3, 1, 1)
    std = torch.as_tensor(STD_RGB, device=images.device).view(1, 3, 1, 1)
    return (images.float() - mean) / std


# ----------------------------------------------------------------------------- dataset

# DataLoader workers start with "forkserver" (or "spawn" where it is missing), not "fork": a forked worker
# inherits the thread pools of OpenVINO / onnxruntime / OpenMP in the parent, which crashed the parent
# process here (SIGSEGV) when those runtimes had been used before training in the same process.
WORKER_CONTEXT = "forkserver" if "forkserver" in __import__("multiprocessing").get_all_start_methods() else "spawn"

class WholeBodyDataset(Dataset):
    """COCO-WholeBody person crops with SimCC targets, one item per annotated person.

    `input_size` is (W, H) and `sigma` (sx, sy) as in `ModelSpec` (e.g. (192, 256), (4.9, 5.66)).
    `train=False` gives the val pipeline (plain padded-box crop, no randomness). Items are dicts:
    `img` (3,H,W) float32 normalized RGB (uint8 RGB if normalize=False; see `normalize_batch`),
    `target_x` (133, 2W), `target_y` (133, 2H), `target_weight` (133,), `keypoints` (133,2) in crop
    pixels, `visible` (133,), `center`, `scale` (2,) (aspect-fixed), `rotation`, `flipped`,
    `image_id`, `ann_id`. With `seed` set, item i of epoch e is a pure function of (seed, e, i):
    call `set_epoch(e)` each epoch (DataLoader workers see it if they are not persistent).
    """

    def __init__(self, ann_file: str | os.PathLike, image_dir: str | os.PathLike,
                 input_size: tuple[int, int] = (192, 256), sigma: tuple[float, float] = (4.9, 5.66),
                 train: bool = True, *, aug: AugConfig | None = None, seed: int | None = None,
                 normalize: bool = True, padding: float = BBOX_PADDING,
                 split_ratio: float = SIMCC_SPLIT_RATIO, use_valid_flags: bool = False) -> None:
        self.instances = load_wholebody_instances(ann_file, image_dir, use_valid_flags=use_valid_flags)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.sigma = (float(sigma[0]), float(sigma[1]))
        self.train = train
        self.aug = aug if aug is not None else AugConfig()
        self.seed = seed
        self.epoch = 0
        self.normalize = normalize
        self.padding = float(padding)
        self.split_ratio = float(split_ratio)

    def __len__(self) -> int:
        return len(self.instances)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng([int(self.seed), self.epoch, int(index)])

    def __getitem__(self, index: int) -> dict[str, Any]:
        inst = self.instances[index]
        img = cv2.imread(inst["image_path"], cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"cannot read image {inst['image_path']} (annotation {inst['ann_id']})")
        sample = self.transform(img, inst["bbox_xyxy"], inst["keypoints"], inst["visible"], self._rng(index))
        sample["image_id"] = inst["image_id"]
        sample["ann_id"] = inst["ann_id"]
        return sample

    # The pipeline, on one person. Public so a trainer or test can feed in-memory images.
    def transform(self, img: np.ndarray, bbox_xyxy: np.ndarray, keypoints: np.ndarray, visible: np.ndarray,
                  rng: np.random.Generator) -> dict[str, Any]:
        a = self.aug
        keypoints = np.asarray(keypoints, np.float32).copy()
        visible = np.asarray(visible, np.float32).copy()
        box = np.asarray(bbox_xyxy, np.float32)
        center = (box[:2] + box[2:]) * 0.5
        scale = (box[2:] - box[:2]) * self.padding
        rot, flipped = 0.0, False
        if self.train:
            if a.flip_prob > 0 and rng.random() < a.flip_prob:
                img, keypoints, visible, center = self._flip(img, keypoints, visible, center)
                flipped = True
            center, scale = self._half_body(keypoints, visible, center, scale, rng)
            center, scale, rot = self._bbox_transform(center, scale, rng)
        scale = fix_aspect_ratio(scale, self.input_size[0] / self.input_size[1])
        mat = get_warp_matrix(center, scale, rot, self.input_size)
        crop = cv2.warpAffine(img, mat, self.input_size, flags=cv2.INTER_LINEAR)
        kpts_crop = cv2.transform(keypoints[None].astype(np.float32), mat)[0]
        if self.train:
            crop = self._photometric(crop, rng)
        tx, ty, weight = encode_simcc(kpts_crop, visible, self.input_size, self.sigma, self.split_ratio)
        rgb = np.ascontiguousarray(crop[..., ::-1].transpose(2, 0, 1))
        if self.normalize:
            image = torch.from_numpy((rgb.astype(np.float32) - MEAN_RGB[:, None, None]) / STD_RGB[:, None, None])
        else:
            image = torch.from_numpy(rgb)
        return {
            "img": image,
            "target_x": torch.from_numpy(tx),
            "target_y": torch.from_numpy(ty),
            "target_weight": torch.from_numpy(weight),
            "keypoints": torch.from_numpy(np.ascontiguousarray(kpts_crop, dtype=np.float32)),
            "visible": torch.from_numpy(visible),
            "center": torch.from_numpy(np.asarray(center, np.float32)),
            "scale": torch.from_numpy(scale),
            "rotation": float(rot),
            "flipped": flipped,
        }

    @staticmethod
    def _flip(img, keypoints, visible, center):
        """RandomFlip horizontal on the whole image: x -> w - 1 - x, left/right labels swapped."""
        w = img.shape[1]
        img = cv2.flip(img, 1)
        keypoints = keypoints[FLIP_INDICES].copy()
        keypoints[:, 0] = w - 1 - keypoints[:, 0]
        visible = visible[FLIP_INDICES].copy()
        center = np.array([w - center[0] - 1, center[1]], dtype=np.float32)
        return img, keypoints, visible, center

    def _half_body(self, keypoints, visible, center, scale, rng):
        """RandomHalfBody: a box around the visible upper (or lower) body+feet keypoints, x1.5."""
        a = self.aug
        if a.half_body_prob <= 0 or visible.sum() < a.half_body_min_total:
            return center, scale
        if rng.random() > a.half_body_prob:
            return center, scale
        upper = [i for i in UPPER_BODY_IDS if visible[i] > 0]
        lower = [i for i in LOWER_BODY_IDS if visible[i] > 0]
        prefer_upper = rng.random() < a.half_body_upper_prob
        if len(upper) < a.half_body_min_upper and len(lower) < a.half_body_min_lower:
            return center, scale
        if len(lower) < a.half_body_min_lower:
            ids = upper
        elif len(upper) < a.half_body_min_upper:
            ids = lower
        else:
            ids = upper if prefer_upper else lower
        sel = keypoints[ids]
        size = (sel.max(axis=0) - sel.min(axis=0)) * a.half_body_padding
        if size.max() <= 0:  # coincident keypoints would give a singular warp (mmpose does not guard this)
            return center, scale
        return sel.mean(axis=0).astype(np.float32), size.astype(np.float32)

    def _bbox_transform(self, center, scale, rng):
        """RandomBBoxTransform: truncated-normal shift / scale / rotation, each applied with its prob."""
        a = self.aug
        v = _truncnorm(rng, 4)
        offset = v[:2] * a.shift_factor
        if not rng.random() < a.shift_prob:
            offset = np.zeros(2, np.float32)
        lo, hi = a.scale_factor
        s = v[2] * (hi - lo) * 0.5 + (hi + lo) * 0.5
        if not rng.random() < a.scale_prob:
            s = 1.0
        rot = float(v[3] * a.rotate_factor)
        if not rng.random() < a.rotate_prob:
            rot = 0.0
        return (center + offset * scale).astype(np.float32), (scale * s).astype(np.float32), rot

    def _photometric(self, crop, rng):
        a = self.aug
        if a.hsv:
            crop = hsv_jitter(crop, rng, a.hsv_deltas)
        if a.blur_prob > 0 and rng.random() < a.blur_prob:
            k = int(rng.choice([3, 5, 7]))
            crop = cv2.blur(crop, (k, k))
        if a.median_blur_prob > 0 and rng.random() < a.median_blur_prob:
            crop = cv2.medianBlur(crop, int(rng.choice([3, 5, 7])))
        if a.dropout_prob > 0 and rng.random() < a.dropout_prob:
            crop = coarse_dropout(crop, rng, a.dropout_size)
        return crop


__all__ = ["WholeBodyDataset", "AugConfig", "load_wholebody_instances", "encode_simcc", "get_warp_matrix",
           "fix_aspect_ratio", "normalize_batch", "hsv_jitter", "coarse_dropout", "NUM_KEYPOINTS"]
