"""SimCC decoding and flip-test merging, as mmpose 1.x's SimCCLabel and RTMCCHead do them."""
from __future__ import annotations

import numpy as np

from .specs import FLIP_INDICES, SIMCC_SPLIT_RATIO


def simcc_maximum(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax bin per axis (first wins on ties) and score = min(max_x, max_y) on raw logits.

    Where the score is <= 0 the location is set to -1, as mmpose does.
    """
    x_locs = np.argmax(simcc_x, axis=-1)
    y_locs = np.argmax(simcc_y, axis=-1)
    locs = np.stack([x_locs, y_locs], axis=-1).astype(np.float32)
    scores = np.minimum(simcc_x.max(axis=-1), simcc_y.max(axis=-1))
    locs[scores <= 0.0] = -1
    return locs, scores


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                 input_size: tuple[int, int], split_ratio: float = SIMCC_SPLIT_RATIO
                 ) -> tuple[np.ndarray, np.ndarray]:
    """SimCC logits (N,K,Wx), (N,K,Wy) -> (keypoints N,K,2 in image pixels, scores N,K)."""
    simcc_x, simcc_y = np.asarray(simcc_x), np.asarray(simcc_y)
    locs, scores = simcc_maximum(simcc_x, simcc_y)
    locs = locs / split_ratio
    # float64 for the mapping back to the image, as mmpose's TopdownPoseEstimator (input_size is int there)
    size = np.asarray(input_size, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float32)[:, None, :]
    scales = np.asarray(scales, dtype=np.float32)[:, None, :]
    keypoints = locs / size * scales + centers - 0.5 * scales
    return keypoints.astype(np.float32), scores.astype(np.float32)


def flip_back(simcc_x: np.ndarray, simcc_y: np.ndarray,
              flip_indices: np.ndarray = FLIP_INDICES) -> tuple[np.ndarray, np.ndarray]:
    """Undo a horizontal input flip on the logits: swap left/right channels, reverse x bins."""
    return simcc_x[:, flip_indices, ::-1], simcc_y[:, flip_indices]


def merge_flip(orig: tuple[np.ndarray, np.ndarray], flipped: tuple[np.ndarray, np.ndarray],
               flip_indices: np.ndarray = FLIP_INDICES) -> tuple[np.ndarray, np.ndarray]:
    """Average the logits of the original crop and of the flipped crop (mapped back)."""
    fx, fy = flip_back(flipped[0], flipped[1], flip_indices)
    return (orig[0] + fx) * 0.5, (orig[1] + fy) * 0.5
