"""HOG + linear-SVM pedestrian detector (Dalal & Triggs 2005) in numpy, independent of OpenCV's objdetect.

The descriptor follows OpenCV 4.x `HOGDescriptor()` defaults, so OpenCV's trained people detector
applies unchanged: 64x128 window, 8x8 cells, 16x16 blocks on an 8 px stride, 9 unsigned orientation
bins over 0-180 degrees, square-root gamma, centred [-1, 0, 1] gradients taking the colour channel
with the largest gradient, bilinear votes in orientation and trilinear (spatial) votes into the 2x2
cells of each block, a Gaussian block window with sigma = (block_w + block_h) / 8, L2-Hys block
normalisation clipped at 0.2, and the descriptor laid out block-major with blocks (and the cells
inside a block) in column-major order, as `HOGDescriptor.compute` returns it.

`data/hog_people_svm.npy` holds OpenCV's default people detector (3780 weights + bias), extracted
once from OpenCV 4.x with `cv2.HOGDescriptor_getDefaultPeopleDetector()` by
tests/hog_ref/extract_svm.py. OpenCV is BSD-3-Clause (<= 4.4) / Apache-2.0 (>= 4.5) licensed.

Two scan backends give the same boxes (`HogPeopleDetector(backend=...)`): "numpy" (this module; only
`cv2.resize` from OpenCV, so it runs on OpenCV 5, which dropped objdetect's HOGDescriptor, and on
builds without objdetect) and "opencv" (`cv2.HOGDescriptor.detectMultiScale` fed the same SVM file).
"auto", the default, takes "opencv" where this cv2 has `HOGDescriptor` (feature-detected at run time
with hasattr, not by version number) and "numpy" elsewhere, because it is 2.5x faster for the same
boxes. Measured by tests/hog_ref/compare_paths.py (OpenCV 4.14.0.94, numpy 2.4.6, a 2-core x86 VM
shared with other jobs; ms per `detect.HogDetector.detect`, best of 5, median over images):

    images                           numpy 1 thread  2 threads   opencv 1 thread  2 threads
    8 vtest.avi frames, 768x576           273           316             109          84 (53, 2nd core idle)
    17 real photos, 512-868 px wide       268           590             105          92

(the numpy path gains nothing from a second thread: only its BLAS product is threaded, and OpenBLAS's
second thread competes with the other jobs). On those 17 photos (package photos, vtest crop and
frames, opencv-doc basketball/messi and three people-free photos) both paths give the same 28 final
boxes (IoU 1.000), the same groups and the same 332 raw windows, scores within 0.001 (OpenCV's
fast atan2).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ..data import DATA_DIR
from ..errors import InputError

CELL = 8
BLOCK = 16
NBINS = 9
WIN_W, WIN_H = 64, 128
BLOCKS_X = (WIN_W - BLOCK) // CELL + 1   # 7
BLOCKS_Y = (WIN_H - BLOCK) // CELL + 1   # 15
BLOCK_LEN = 4 * NBINS                    # 36
DESCRIPTOR_LEN = BLOCKS_X * BLOCKS_Y * BLOCK_LEN  # 3780
L2HYS_THRESHOLD = 0.2
SIGMA = (BLOCK + BLOCK) / 8.0

_GAMMA_LUT = np.sqrt(np.arange(256, dtype=np.float32))


@functools.lru_cache(maxsize=1)
def load_people_svm() -> np.ndarray:
    """OpenCV's default people detector: (3781,) float32, 3780 weights then the bias."""
    svm = np.load(DATA_DIR / "hog_people_svm.npy")
    if svm.shape != (DESCRIPTOR_LEN + 1,):
        raise InputError(f"hog_people_svm.npy has shape {svm.shape}, expected ({DESCRIPTOR_LEN + 1},)")
    svm.setflags(write=False)
    return svm


def _check_gray_or_bgr(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise InputError("HOG needs a uint8 image (H,W), (H,W,1) or (H,W,3) BGR, got "
                         f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}")
    if image.ndim == 3 and image.shape[2] not in (1, 3):
        raise InputError(f"HOG needs 1 or 3 channels, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"image is empty: shape {image.shape}")
    return image if image.ndim == 3 else image[:, :, None]


def gradients(image: np.ndarray, pad: int = 0, gamma: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Gradient magnitude and unsigned angle in [0, pi) of the image padded by `pad` px (mirror, edge
    pixel not repeated); per pixel the channel with the largest magnitude wins (first on ties)."""
    img = _check_gray_or_bgr(image)
    p = pad + 1
    if p < min(img.shape[:2]):
        img = np.pad(img, ((p, p), (p, p), (0, 0)), mode="reflect")
    else:
        img = _mirror_pad(img, p)
    planes = np.moveaxis(img, 2, 0)
    f = _GAMMA_LUT[planes] if gamma else planes.astype(np.float32)   # (C, H+2p, W+2p)
    dx = f[:, 1:-1, 2:] - f[:, 1:-1, :-2]
    dy = f[:, 2:, 1:-1] - f[:, :-2, 1:-1]
    best_dx, best_dy, best = dx[0], dy[0], dx[0] * dx[0] + dy[0] * dy[0]
    for c in range(1, len(f)):
        mag2 = dx[c] * dx[c] + dy[c] * dy[c]
        wins = mag2 > best
        best_dx, best_dy, best = np.where(wins, dx[c], best_dx), np.where(wins, dy[c], best_dy), np.maximum(mag2, best)
    angle = np.arctan2(best_dy, best_dx)
    angle += np.where(angle < 0, np.float32(np.pi), np.float32(0))
    angle[angle >= np.float32(np.pi)] -= np.float32(np.pi)
    return np.sqrt(best), angle


def _mirror_pad(img: np.ndarray, p: int) -> np.ndarray:
    """Mirror padding (edge not repeated) wider than the image itself, by repeated reflection."""
    h, w = img.shape[:2]
    ys = _reflect101(np.arange(-p, h + p), h)
    xs = _reflect101(np.arange(-p, w + p), w)
    return img[ys[:, None], xs[None, :]]


def _reflect101(i: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    i = np.abs(i) % period
    return np.where(i >= n, period - i, i)


def orientation_votes(mag: np.ndarray, angle: np.ndarray, nbins: int = NBINS) -> np.ndarray:
    """(H, W, nbins) float32: each pixel's magnitude split linearly between the two nearest bin centres
    ((b + 0.5) * 180 / nbins degrees, wrapping around 180)."""
    a = angle * np.float32(nbins / np.pi) - np.float32(0.5)   # in [-0.5, nbins - 0.5)
    lo = np.floor(a)
    frac = a - lo
    b0 = lo.astype(np.int32)
    b0[b0 < 0] += nbins
    b1 = b0 + 1
    b1[b1 == nbins] = 0
    votes = np.zeros(mag.size * nbins, np.float32)
    base = np.arange(0, mag.size * nbins, nbins, dtype=np.int64).reshape(mag.shape)
    hi = mag * frac
    votes[base + b0] = mag - hi
    votes[base + b1] = hi
    return votes.reshape(mag.shape + (nbins,))


@functools.lru_cache(maxsize=4)
def _axis_weights(sigma: float = SIGMA) -> np.ndarray:
    """(2 cells, 2 tiles, CELL) weights along one block axis: Gaussian window x linear cell interpolation.

    Pixel u of the 16 px block axis sits at (u + 0.5) / 8 - 0.5 in cell units and is shared between
    the two cells around it; shares falling outside the block's two cells are dropped."""
    u = np.arange(BLOCK, dtype=np.float64)
    gauss = np.exp(-((u - BLOCK / 2) ** 2) / (2 * sigma * sigma))
    pos = (u + 0.5) / CELL - 0.5
    w = np.zeros((2, BLOCK))
    for cell in (0, 1):
        w[cell] = np.clip(1 - np.abs(pos - cell), 0, 1) * gauss
    return w.reshape(2, 2, CELL).astype(np.float32)


def block_histograms(votes: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """L2-Hys normalised block histograms of every 16x16 block on the 8 px grid: (nby, nbx, 36),
    cells column-major inside the block (cx, cy, bin)."""
    h, w = votes.shape[:2]
    ty, tx = h // CELL, w // CELL
    if ty < 2 or tx < 2:
        raise InputError(f"HOG needs at least {BLOCK}x{BLOCK} px, got {w}x{h}")
    v = votes[:ty * CELL, :tx * CELL].reshape(ty, CELL, tx, CELL, NBINS)
    wk = _axis_weights(sigma).reshape(4, CELL)                 # (cell, tile) pairs x offset in tile
    # rows: a[cy*2+tyo, Ty, Tx, s, bin] = sum_r wk[cy*2+tyo, r] * v[Ty, r, Tx, s, bin]
    a = np.tensordot(wk, v, axes=([1], [1]))                  # (4, ty, tx, 8, 9)
    # columns: t[cy*2+tyo, Ty, Tx, bin, cx*2+txo]
    t = np.matmul(a.transpose(0, 1, 2, 4, 3), wk.T)            # (4, ty, tx, 9, 4)
    t = t.reshape(2, 2, ty, tx, NBINS, 2, 2)                   # cy, tyo, Ty, Tx, bin, cx, txo
    nby, nbx = ty - 1, tx - 1
    hist = (t[:, 0, :-1, :-1, :, :, 0] + t[:, 0, :-1, 1:, :, :, 1]
            + t[:, 1, 1:, :-1, :, :, 0] + t[:, 1, 1:, 1:, :, :, 1])  # cy, by, bx, bin, cx
    hist = hist.transpose(1, 2, 4, 0, 3).reshape(nby, nbx, BLOCK_LEN)
    return _l2hys(hist)


def _l2hys(hist: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.einsum("...i,...i->...", hist, hist))[..., None]
    hist = np.minimum(hist / (norm + np.float32(0.1 * BLOCK_LEN)), np.float32(L2HYS_THRESHOLD))
    norm = np.sqrt(np.einsum("...i,...i->...", hist, hist))[..., None]
    return (hist / (norm + np.float32(1e-3))).astype(np.float32)


def image_blocks(image: np.ndarray, pad: int = 0, gamma: bool = True) -> np.ndarray:
    """Block histograms of the whole image padded by `pad` px: (nby, nbx, 36)."""
    mag, angle = gradients(image, pad, gamma)
    return block_histograms(orientation_votes(mag, angle))


def compute(image: np.ndarray, win_stride: int = CELL, padding: int = 0, gamma: bool = True) -> np.ndarray:
    """HOG descriptors of every 64x128 window, like OpenCV's `HOGDescriptor().compute(img, (s, s), (p, p))`:
    (n_rows, n_cols, 3780), windows at (col * s - p, row * s - p)."""
    _check_stride(win_stride, padding)
    blocks = image_blocks(image, padding, gamma)
    windows = np.lib.stride_tricks.sliding_window_view(blocks, (BLOCKS_Y, BLOCKS_X), axis=(0, 1))
    step = win_stride // CELL
    windows = windows[::step, ::step]                          # (rows, cols, 36, BY, BX)
    rows, cols = windows.shape[:2]
    return np.ascontiguousarray(windows.transpose(0, 1, 4, 3, 2)).reshape(rows, cols, DESCRIPTOR_LEN)


def _check_stride(win_stride: int, padding: int) -> None:
    if win_stride <= 0 or win_stride % CELL:
        raise InputError(f"win_stride must be a positive multiple of {CELL}, got {win_stride}")
    if padding < 0 or padding % CELL:
        raise InputError(f"padding must be a non-negative multiple of {CELL}, got {padding}")


def window_scores(blocks: np.ndarray, svm: np.ndarray, win_stride: int = CELL) -> np.ndarray:
    """SVM score w.x + b of every window over a block map: (rows, cols)."""
    nby, nbx = blocks.shape[:2]
    rows, cols = nby - BLOCKS_Y + 1, nbx - BLOCKS_X + 1
    if rows <= 0 or cols <= 0:
        return np.zeros((0, 0), np.float32)
    weights = svm[:DESCRIPTOR_LEN].reshape(BLOCKS_X, BLOCKS_Y, BLOCK_LEN)
    # per block position, its dot product with each of the 7x15 block weight vectors, then shift-and-add
    per_block = blocks.reshape(-1, BLOCK_LEN) @ weights.reshape(-1, BLOCK_LEN).T
    per_block = per_block.reshape(nby, nbx, BLOCKS_X, BLOCKS_Y)
    score = np.full((rows, cols), svm[DESCRIPTOR_LEN], np.float32)
    for bx in range(BLOCKS_X):
        for by in range(BLOCKS_Y):
            score += per_block[by:by + rows, bx:bx + cols, bx, by]
    step = win_stride // CELL
    return score[::step, ::step]


def pyramid_scales(height: int, width: int, scale_step: float = 1.05, max_levels: int = 64) -> list[float]:
    """Downscale factors (1, s, s^2, ...) while the resized image still holds a 64x128 window."""
    scales, scale = [], 1.0
    while len(scales) < max_levels:
        if round(width / scale) < WIN_W or round(height / scale) < WIN_H:
            break
        scales.append(scale)
        if scale_step <= 1:
            break
        scale *= scale_step
    return scales


BACKENDS = ("auto", "numpy", "opencv")
OPENCV_GROUP_EPS = 0.2   # fixed inside cv::HOGDescriptor::detectMultiScale


def opencv_has_hog() -> bool:
    """Whether this cv2 build has objdetect's HOGDescriptor (OpenCV 4.x wheels do; OpenCV 5 does not)."""
    return hasattr(cv2, "HOGDescriptor")


@dataclass
class HogPeopleDetector:
    """Multi-scale sliding-window search with the HOG people SVM, grouped like OpenCV's detectMultiScale.

    `detect` returns boxes (N,4) xyxy float32 and scores (N,) float32, best first; scores are the best
    SVM margin w.x + b in each group. `group_threshold` = 0 returns every raw window above threshold.
    `backend`: "auto" (OpenCV's HOGDescriptor where cv2 has it and `group_eps` is OpenCV's 0.2, else
    numpy), "numpy" or "opencv"; `self.backend_used` says which one runs."""

    scale_step: float = 1.05
    win_stride: int = CELL
    padding: int = CELL
    hit_threshold: float = 0.0
    group_threshold: int = 2
    group_eps: float = 0.2
    gamma: bool = True
    max_levels: int = 64
    backend: str = "auto"

    def __post_init__(self) -> None:
        _check_stride(self.win_stride, self.padding)
        if self.backend not in BACKENDS:
            raise InputError(f"HOG backend must be one of {BACKENDS}, got {self.backend!r}")
        opencv_ok = self.group_eps == OPENCV_GROUP_EPS or self.group_threshold == 0
        if self.backend == "opencv" and not opencv_has_hog():
            raise InputError(f"OpenCV {cv2.__version__} has no cv2.HOGDescriptor: use backend='numpy' "
                             "(or 'auto'), or install opencv-python-headless<5")
        if self.backend == "opencv" and not opencv_ok:
            raise InputError(f"OpenCV's HOG groups with eps {OPENCV_GROUP_EPS}, got group_eps={self.group_eps}: "
                             "use backend='numpy' for another eps")
        use_cv = self.backend == "opencv" or (self.backend == "auto" and opencv_has_hog() and opencv_ok)
        self.backend_used = "opencv" if use_cv else "numpy"
        self._cv_hog = _opencv_people_hog(self.gamma, self.max_levels) if use_cv else None

    def raw_hits(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every window scoring >= hit_threshold over the pyramid: (boxes xyxy clipped to the image, scores)."""
        if self._cv_hog is not None:
            return self._opencv_detect(image, 0)
        boxes, scores = self._scan(image)
        return _clip_to(boxes, image.shape), scores

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._cv_hog is not None:
            boxes, scores = self._opencv_detect(image, self.group_threshold)
            order = np.argsort(-scores, kind="stable")
            return boxes[order], scores[order]
        boxes, scores = self._scan(image)
        if self.group_threshold > 0:
            boxes, scores = group_rectangles(boxes, scores, self.group_threshold, self.group_eps)
        order = np.argsort(-scores, kind="stable")
        return _clip_to(boxes[order], image.shape), scores[order]

    def _opencv_detect(self, image: np.ndarray, group_threshold: int) -> tuple[np.ndarray, np.ndarray]:
        """cv2's detectMultiScale: boxes come back already clipped to the image (xyxy float32), scores float32."""
        _check_gray_or_bgr(image)
        img = np.ascontiguousarray(image)
        stride, pad = (self.win_stride,) * 2, (self.padding,) * 2
        rects, weights = self._cv_hog.detectMultiScale(img, hitThreshold=self.hit_threshold, winStride=stride,
                                                       padding=pad, scale=self.scale_step,
                                                       groupThreshold=group_threshold)
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        rects[:, 2:] += rects[:, :2]
        return rects, np.asarray(weights, np.float32).reshape(-1)

    def _scan(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        img = _check_gray_or_bgr(image)
        h, w = img.shape[:2]
        svm = load_people_svm()
        boxes, scores = [], []
        for scale in pyramid_scales(h, w, self.scale_step, self.max_levels):
            size = (int(round(w / scale)), int(round(h / scale)))
            level = img if size == (w, h) else cv2.resize(img, size, interpolation=cv2.INTER_LINEAR_EXACT)
            if level.ndim == 2:
                level = level[:, :, None]
            score = window_scores(image_blocks(level, self.padding, self.gamma), svm, self.win_stride)
            rows, cols = np.nonzero(score >= self.hit_threshold)
            x = np.rint((cols * self.win_stride - self.padding) * scale)
            y = np.rint((rows * self.win_stride - self.padding) * scale)
            bw, bh = round(WIN_W * scale), round(WIN_H * scale)
            boxes.append(np.stack([x, y, x + bw, y + bh], axis=1))
            scores.append(score[rows, cols])
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        return np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32)


def _opencv_people_hog(gamma: bool, max_levels: int) -> "cv2.HOGDescriptor":
    """cv2.HOGDescriptor with the geometry above and our SVM file (the same numbers as OpenCV's own)."""
    hog = cv2.HOGDescriptor((WIN_W, WIN_H), (BLOCK, BLOCK), (CELL, CELL), (CELL, CELL), NBINS, 1, -1.0,
                            cv2.HOGDescriptor_L2Hys, L2HYS_THRESHOLD, gamma, max_levels, False)
    hog.setSVMDetector(load_people_svm())
    return hog


def _clip_to(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Windows reaching into the padding end at the image border (as OpenCV reports them)."""
    out = boxes.copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, shape[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, shape[0])
    return out


def group_rectangles(boxes: np.ndarray, scores: np.ndarray, min_neighbours: int = 2, eps: float = 0.2
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Cluster boxes of similar size and place (every edge within eps * mean of the smaller sides),
    drop clusters of <= min_neighbours boxes, average each cluster's box and keep its best score;
    drop clusters lying inside a better-supported one (as cv::groupRectangles documents)."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4).astype(np.float32), scores.reshape(0).astype(np.float32)
    labels = _cluster(boxes, eps)
    n = np.bincount(labels)
    xywh = boxes.astype(np.float64).copy()
    xywh[:, 2:] -= xywh[:, :2]
    sums = np.zeros((len(n), 4))
    np.add.at(sums, labels, xywh)
    mean = np.rint(sums / n[:, None])  # corner and size averaged separately, then rounded
    mean[:, 2:] += mean[:, :2]
    best = np.full(len(n), -np.inf)
    np.maximum.at(best, labels, scores.astype(np.float64))
    big = np.nonzero(n > min_neighbours)[0]
    keep = [i for i in big if not _inside_stronger(i, big, mean, n, eps)]
    return mean[keep].astype(np.float32), best[keep].astype(np.float32)


def _cluster(boxes: np.ndarray, eps: float) -> np.ndarray:
    """Connected components of the 'similar boxes' relation: (N,) labels 0..K-1."""
    b = boxes.astype(np.float64)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    delta = eps * 0.5 * (np.minimum(w[:, None], w[None]) + np.minimum(h[:, None], h[None]))
    similar = np.all(np.abs(b[:, None, :] - b[None, :, :]) <= delta[..., None], axis=2)
    labels = np.arange(len(b))
    while True:
        new = np.where(similar, labels[None, :], len(b)).min(axis=1)
        new = new[new]  # pointer jumping
        if np.array_equal(new, labels):
            break
        labels = new
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


def _inside_stronger(i: int, big: np.ndarray, mean: np.ndarray, n: np.ndarray, eps: float) -> bool:
    x1, y1, x2, y2 = mean[i]
    for j in big:
        if j == i:
            continue
        a1, b1, a2, b2 = mean[j]
        dx, dy = np.rint((a2 - a1) * eps), np.rint((b2 - b1) * eps)
        inside = x1 >= a1 - dx and y1 >= b1 - dy and x2 <= a2 + dx and y2 <= b2 + dy
        if inside and (n[j] > max(3, n[i]) or n[i] < 3):
            return True
    return False
