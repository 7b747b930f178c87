"""Validate an exported model against the PyTorch reference on the same crops; raise ParityError on failure."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import cv2
import numpy as np

from dwpose_edge.data import DATA_DIR
from dwpose_edge.errors import ParityError
from dwpose_edge.specs import SIMCC_SPLIT_RATIO
from dwpose_edge.preprocess import CropWorkspace, crop_boxes, normalize

# precision -> (pixel radius, minimum fraction of keypoints within it), in input (crop) space
# bf16 (8-bit mantissa) moves a few keypoints by 1-2 px on flat SimCC peaks: the embedded model measured 96.7% within
# 2 px on these crops, 97.7% on 44 other photo crops and 99.4% on its 362 validation crops (OpenVINO, this CPU)
THRESHOLDS: dict[str, tuple[float, float]] = {"fp32": (1.0, 0.995), "fp16": (1.0, 0.98), "bf16": (2.0, 0.95),
                                              "int8": (2.0, 0.95)}

Infer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Agreement:
    """How closely a runtime's outputs follow the reference on the same crops."""

    n_crops: int
    n_keypoints: int
    max_logit_diff: float
    mean_px_error: float
    within_1px: float
    within_2px: float
    within_5px: float

    def as_dict(self) -> dict[str, float]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def passes(self, precision: str) -> bool:
        radius, fraction = THRESHOLDS[precision]
        return {1.0: self.within_1px, 2.0: self.within_2px}[radius] >= fraction


def validation_crops(input_size: tuple[int, int], n_random: int = 8, seed: int = 0) -> np.ndarray:
    """Crops from the bundled real photos (fixed + seeded random boxes), (N,3,H,W) float32.

    Identical for every runtime, so all comparisons use the very same tensors.
    """
    return normalize(validation_crops_u8(input_size, n_random, seed))


def validation_crops_u8(input_size: tuple[int, int], n_random: int = 8, seed: int = 0) -> np.ndarray:
    """The same crops before normalisation, (N,H,W,3) uint8 BGR: what an export folder's device check set stores."""
    rng = np.random.default_rng(seed)
    crops = []
    for name in ("grace_hopper.jpg", "astronaut.jpg"):
        image = cv2.imread(str(DATA_DIR / name))
        h, w = image.shape[:2]
        boxes = [[0, 0, w, h], [w * 0.2, h * 0.05, w * 0.8, h * 0.95]]
        for _ in range(n_random // 2):
            x1, y1 = rng.uniform(0, w * 0.6), rng.uniform(0, h * 0.6)
            boxes.append([x1, y1, x1 + rng.uniform(w * 0.2, w * 0.6), y1 + rng.uniform(h * 0.2, h * 0.6)])
        ws = CropWorkspace()
        crop_boxes(image, np.array(boxes, np.float32), input_size, workspace=ws)
        crops.append(ws.buffers(len(boxes), input_size[1], input_size[0])[0].copy())
    return np.concatenate(crops)


def keypoint_locations(simcc_x: np.ndarray, simcc_y: np.ndarray,
                       split_ratio: float = SIMCC_SPLIT_RATIO) -> np.ndarray:
    """Argmax keypoint positions in input (crop) pixels, (N,K,2)."""
    # plain argmax (not simcc_maximum, which marks score<=0 as -1): positions are compared whatever the score
    locs = np.stack([np.argmax(simcc_x, -1), np.argmax(simcc_y, -1)], -1).astype(np.float32)
    return locs / split_ratio


def agreement(reference: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> Agreement:
    """Compare two sets of SimCC logits computed on the same crops."""
    ref_x, ref_y = (np.asarray(a, np.float32) for a in reference)
    tst_x, tst_y = (np.asarray(a, np.float32) for a in test)
    if ref_x.shape != tst_x.shape or ref_y.shape != tst_y.shape:
        raise ParityError(f"output shapes differ: reference {ref_x.shape}/{ref_y.shape}, "
                          f"runtime {tst_x.shape}/{tst_y.shape}")
    if not (np.isfinite(tst_x).all() and np.isfinite(tst_y).all()):
        raise ParityError("runtime produced NaN/inf logits")
    err = np.linalg.norm(keypoint_locations(ref_x, ref_y) - keypoint_locations(tst_x, tst_y), axis=-1)
    diff = max(float(np.abs(ref_x - tst_x).max()), float(np.abs(ref_y - tst_y).max()))
    return Agreement(n_crops=int(ref_x.shape[0]), n_keypoints=int(err.size), max_logit_diff=diff,
                     mean_px_error=float(err.mean()), within_1px=float((err <= 1.0).mean()),
                     within_2px=float((err <= 2.0).mean()), within_5px=float((err <= 5.0).mean()))


def run_batched(infer: Infer, crops: np.ndarray, batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(infer(crops[i:i + batch]) for i in range(0, len(crops), batch)))
    return np.concatenate(xs), np.concatenate(ys)


def validate(reference: Infer, candidate: Infer, crops: np.ndarray, precision: str, what: str) -> Agreement:
    """Run both on `crops`; return the Agreement, or raise ParityError naming the figures."""
    result = agreement(run_batched(reference, crops), run_batched(candidate, crops))
    if not result.passes(precision):
        radius, fraction = THRESHOLDS[precision]
        got = result.within_1px if radius == 1.0 else result.within_2px
        raise ParityError(
            f"{what} disagrees with the reference: {got:.2%} of keypoints within {radius:g} px "
            f"(needs >= {fraction:.1%}), mean error {result.mean_px_error:.3f} px, "
            f"max logit diff {result.max_logit_diff:.4g} over {result.n_crops} crops")
    return result
