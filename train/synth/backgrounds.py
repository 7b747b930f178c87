"""Backgrounds: crops of bundled real photos (no people) and procedural textures, with colour jitter."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

PHOTO_DIR = Path(__file__).with_name("backgrounds")


@lru_cache(maxsize=1)
def photos() -> tuple[np.ndarray, ...]:
    """The bundled background photos (BGR uint8), sorted by file name."""
    out = []
    for p in sorted(PHOTO_DIR.glob("*.jpg")):
        im = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if im is not None:
            out.append(im)
    return tuple(out)


def _photo(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    ims = photos()
    im = ims[int(rng.integers(len(ims)))]
    ih, iw = im.shape[:2]
    zoom = rng.uniform(1.0, 2.5)
    cw, ch = min(iw, int(iw / zoom)), min(ih, int(ih / zoom))
    ar = w / h
    cw, ch = (min(cw, int(ch * ar)), min(ch, int(cw / ar)))
    x0, y0 = int(rng.integers(0, iw - cw + 1)), int(rng.integers(0, ih - ch + 1))
    crop = cv2.resize(im[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.3:
        crop = crop[::-1] if rng.random() < 0.3 else np.ascontiguousarray(np.rot90(cv2.resize(crop, (h, w))))
    crop = crop.astype(np.float32) / 255.0
    if np.allclose(crop[..., 0], crop[..., 1], atol=0.02) and rng.random() < 0.8:   # tint grayscale textures
        crop = crop * (0.5 + rng.random(3).astype(np.float32))
    return crop


def _noise(rng: np.random.Generator, w: int, h: int, octaves: int = 5) -> np.ndarray:
    """Fractal value noise in [0, 1], (h, w)."""
    out = np.zeros((h, w), np.float32)
    amp, tot = 1.0, 0.0
    for o in range(octaves):
        n = 2 ** (o + 1) + 1
        g = rng.random((n, n)).astype(np.float32)
        out += amp * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
        tot += amp
        amp *= rng.uniform(0.4, 0.65)
    out /= tot
    return (out - out.min()) / max(float(out.max() - out.min()), 1e-6)


def _procedural(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    c1, c2 = rng.random(3).astype(np.float32), rng.random(3).astype(np.float32)
    kind = int(rng.integers(5))
    if kind == 0:       # fractal noise between two colours
        t = _noise(rng, w, h)[..., None]
    elif kind == 1:     # wall + floor
        yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        t = (yy > rng.uniform(0.3, 0.8)).astype(np.float32) * np.ones((1, w, 1), np.float32)
        t = 0.8 * t + 0.2 * _noise(rng, w, h)[..., None]
    elif kind == 2:     # stripes / tiles
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a, p = rng.uniform(0, np.pi), rng.uniform(8, 60)
        u = xx * np.cos(a) + yy * np.sin(a)
        t = (np.sin(u / p * np.pi) > 0).astype(np.float32)
        if rng.random() < 0.5:
            v = -xx * np.sin(a) + yy * np.cos(a)
            t = np.abs(t - (np.sin(v / p * np.pi) > 0))
        t = cv2.GaussianBlur(t, (0, 0), 1.0)[..., None]
    elif kind == 3:     # gradient
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, 2 * np.pi)
        t = (xx * np.cos(a) + yy * np.sin(a))
        t = ((t - t.min()) / max(float(t.max() - t.min()), 1))[..., None]
    else:               # smooth colour noise
        t = np.stack([_noise(rng, w, h, 3) for _ in range(3)], -1)
    return c1 * (1 - t) + c2 * t


def _clutter(rng: np.random.Generator, img: np.ndarray) -> None:
    """Random rectangles, ellipses and lines drawn in place (furniture-ish shapes)."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 7))):
        col = tuple(float(v) for v in rng.random(3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        k = int(rng.integers(3))
        if k == 0:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(5, w // 2)), y + int(rng.integers(5, h // 2))), col, -1)
        elif k == 1:
            cv2.ellipse(img, (x, y), (int(rng.integers(3, w // 5)), int(rng.integers(3, h // 5))),
                        float(rng.uniform(0, 180)), 0, 360, col, -1, cv2.LINE_AA)
        else:
            cv2.line(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), col,
                     int(rng.integers(1, 8)), cv2.LINE_AA)


def sample_background(rng: np.random.Generator, w: int, h: int, clutter: bool = True) -> np.ndarray:
    """(h, w, 3) float32 RGB in [0, 1]: a photo crop (60%) or a procedural texture, maybe cluttered."""
    if photos() and rng.random() < 0.6:
        img = _photo(rng, w, h)[..., ::-1].copy()
    else:
        img = _procedural(rng, w, h).astype(np.float32)
    if clutter and rng.random() < 0.25:
        _clutter(rng, img)
    gain = rng.uniform(0.6, 1.3) * (1 + rng.normal(0, 0.08, 3))
    return np.clip(img * gain.astype(np.float32), 0, 1)
