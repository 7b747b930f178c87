"""Top-down crops exactly as mmpose 1.x makes them: GetBBoxCenterScale + TopdownAffine + PoseDataPreprocessor."""
from __future__ import annotations

import cv2
import numpy as np

from .errors import InputError
from .specs import BBOX_PADDING, MEAN_RGB, STD_RGB


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate a BGR uint8 HxWx3 image; raise InputError naming the problem otherwise."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array (H,W,3) BGR uint8, got {type(image).__name__}")
    if image.ndim == 2:
        raise InputError(f"image is grayscale {image.shape}; convert it with cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)")
    if image.ndim != 3 or image.shape[2] not in (3,):
        raise InputError(f"image must have shape (H,W,3) BGR, got {image.shape}{_shape_hint(image.shape)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"image is empty: shape {image.shape}; skip empty frames before calling the estimator")
    if image.dtype != np.uint8:
        raise InputError(f"image dtype must be uint8 (0-255 BGR as cv2.imread gives), got {image.dtype}"
                         f"{_DTYPE_HINTS.get(image.dtype.kind, '')}")
    return image


_DTYPE_HINTS = {
    "u": "; 16-bit: convert with (img >> 8).astype(np.uint8)",
    "f": "; float in [0, 1]: convert with (img * 255).clip(0, 255).round().astype(np.uint8)",
}


def _shape_hint(shape: tuple[int, ...]) -> str:
    if len(shape) == 3 and shape[2] == 4:
        return " (RGBA/BGRA: drop alpha with cv2.cvtColor(img, cv2.COLOR_BGRA2BGR))"
    if len(shape) == 3 and shape[2] == 1:
        return " (one channel: convert with cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))"
    if len(shape) == 4:
        return " (a batch: call the estimator once per image)"
    return ""


# float32 represents every integer up to 2**24: beyond it crop centres and sizes round to >= 2 px
MAX_COORD = float(2 ** 24)


def check_boxes(boxes_xyxy: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """Validate boxes (N,4) x1,y1,x2,y2 in pixels; NaN/inf, inverted, zero-area, fully outside boxes and
    coordinates beyond +-2**24 px are errors (InputError naming the first bad box)."""
    boxes = np.asarray(boxes_xyxy)
    if boxes.ndim == 1 and boxes.shape[0] == 4:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        hint = " (drop the score column: boxes[:, :4])" if boxes.ndim == 2 and boxes.shape[1] == 5 else ""
        raise InputError(f"boxes must have shape (N,4) as x1,y1,x2,y2, got {boxes.shape}{hint}")
    if not np.issubdtype(boxes.dtype, np.number):
        raise InputError(f"boxes must be numeric, got dtype {boxes.dtype}")
    boxes = boxes.astype(np.float32)
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        raise InputError(f"boxes {np.flatnonzero(bad).tolist()} contain NaN or inf; drop them first "
                         "(boxes[np.isfinite(boxes).all(axis=1)])")
    huge = (np.abs(boxes) > MAX_COORD).any(axis=1)
    if huge.any():
        i = int(np.flatnonzero(huge)[0])
        raise InputError(f"box {i} {boxes[i].tolist()} has a coordinate beyond +-{MAX_COORD:.0f} px, where float32 "
                         "crop geometry loses whole pixels; clip boxes to the image first")
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    bad = (w <= 0) | (h <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"box {i} {boxes[i].tolist()} is inverted or has zero area: need x2>x1 "
                         "and y2>y1 (boxes are x1,y1,x2,y2 corners, not x,y,w,h); drop empty detections")
    img_h, img_w = image_shape[:2]
    outside = (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0) | (boxes[:, 0] >= img_w) | (boxes[:, 1] >= img_h)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise InputError(f"box {i} {boxes[i].tolist()} lies entirely outside the {img_w}x{img_h} image; "
                         "drop it (boxes partly inside are fine)")
    return boxes


def boxes_to_center_scale(boxes_xyxy: np.ndarray, input_size: tuple[int, int],
                          padding: float = BBOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Box -> (center, scale) padded by 1.25 with the aspect ratio forced to input W/H (enlarging)."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float32)
    center = (boxes[:, 0:2] + boxes[:, 2:4]) * 0.5
    scale = (boxes[:, 2:4] - boxes[:, 0:2]) * padding
    aspect = input_size[0] / input_size[1]
    w, h = scale[:, 0:1], scale[:, 1:2]
    scale = np.where(w > h * aspect, np.hstack([w, w / aspect]), np.hstack([h * aspect, h]))
    return center.astype(np.float32), scale.astype(np.float32)


def warp_matrix(center: np.ndarray, scale: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """2x3 affine from image to crop, via three float32 points as mmpose's get_warp_matrix (rot=0)."""
    dst_w, dst_h = output_size
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + np.array([scale[0] * -0.5, 0.0])
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([dst_w * -0.5, 0.0])
    for pts in (src, dst):  # third point: the first two's difference rotated by 90 degrees
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]], dtype=np.float32)
    return cv2.getAffineTransform(src, dst)


def normalize(crops_bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(N,H,W,3) BGR uint8 -> (N,3,H,W) float32 RGB, (x - mean) / std.

    One channel plane at a time: the same float32 subtract/divide as a broadcast over the last axis (bit
    for bit) but with long contiguous inner loops; the broadcast over 3 interleaved channels ran ~12x
    slower and was most of the per-person cost outside inference.
    """
    n, h, w, _ = crops_bgr.shape
    if out is None:
        out = np.empty((n, 3, h, w), dtype=np.float32)
    for c in range(3):
        plane = out[:, c]
        np.subtract(crops_bgr[..., 2 - c], MEAN_RGB[c], out=plane, dtype=np.float32)
        plane /= STD_RGB[c]
    return out


def crop_boxes(image_bgr: np.ndarray, boxes_xyxy: np.ndarray, input_size: tuple[int, int],
               workspace: CropWorkspace | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop and normalize every box: returns (crops N,3,H,W float32 RGB, centers N,2, scales N,2).

    `input_size` is (W, H) as in mmpose configs. Boxes partly outside the image are
    allowed (the outside is zero-padded as in mmpose); invalid boxes raise InputError. With a
    `workspace` the crops are views of its buffers, valid until its next use.
    """
    image = check_image(image_bgr)
    boxes = check_boxes(boxes_xyxy, image.shape)
    w, h = int(input_size[0]), int(input_size[1])
    centers, scales = boxes_to_center_scale(boxes, (w, h))
    if workspace is None:
        crops, out = np.empty((len(boxes), h, w, 3), dtype=np.uint8), None
    else:
        crops, out = workspace.buffers(len(boxes), h, w)
    for i in range(len(boxes)):
        mat = warp_matrix(centers[i], scales[i], (w, h))
        cv2.warpAffine(image, mat, (w, h), dst=crops[i], flags=cv2.INTER_LINEAR)
    return normalize(crops, out), centers, scales


class CropWorkspace:
    """Crop buffers kept between calls of one thread.

    A batch of crops is several MB; allocated afresh on every call, glibc hands it out as new mmap
    pages and each call pays their page faults (measured: ~0.5 ms a person with OpenVINO at 8 persons,
    ~15% of the call). Not thread-safe: one workspace per thread.
    """

    def __init__(self) -> None:
        self._u8 = np.empty((0, 0, 0, 3), np.uint8)
        self._f32 = np.empty((0, 3, 0, 0), np.float32)

    def buffers(self, n: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """(n,h,w,3) uint8 and (n,3,h,w) float32 views, the buffers grown when too small."""
        if self._u8.shape[0] < n or self._u8.shape[1:3] != (h, w):
            self._u8 = np.empty((n, h, w, 3), np.uint8)
            self._f32 = np.empty((n, 3, h, w), np.float32)
        return self._u8[:n], self._f32[:n]
