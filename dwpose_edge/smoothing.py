"""One-Euro filter (Casiez, Roussel, Vogel, CHI 2012) for keypoint tracks: a low-pass filter whose cutoff
rises with speed, so still keypoints stop jittering while fast ones keep up."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class OneEuroConfig:
    """`min_cutoff` (Hz): cutoff at rest, lower = smoother; `beta` (s/px): how fast the cutoff grows with
    speed, higher = less lag; `d_cutoff` (Hz): cutoff of the speed estimate."""

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "beta", "d_cutoff"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)) or value < 0 or (
                    name != "beta" and value == 0):
                raise InputError(f"One-Euro {name} must be a finite number {'>= 0' if name == 'beta' else '> 0'}, "
                                 f"got {value!r}")


def smoothing_factor(cutoff: float | np.ndarray, dt: float) -> float | np.ndarray:
    """The exponential smoothing weight of a first-order low-pass at `cutoff` Hz for a step of `dt` s."""
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters an array of any fixed shape (e.g. one person's (133, 2) keypoints), element-wise.

    `__call__(x, t)` takes the sample and its time in seconds (strictly increasing); the first sample
    passes through unchanged.
    """

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t = 0.0

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        if x.shape != self._x.shape:
            raise InputError(f"a One-Euro filter keeps one shape: got {x.shape} after {self._x.shape}")
        dt = float(t) - self._t
        if not dt > 0:
            raise InputError(f"One-Euro sample times must increase: {t} after {self._t}")
        c = self.config
        a_d = smoothing_factor(c.d_cutoff, dt)
        self._dx = a_d * (x - self._x) / dt + (1 - a_d) * self._dx
        a = smoothing_factor(c.min_cutoff + c.beta * np.abs(self._dx), dt)
        self._x = a * x + (1 - a) * self._x
        self._t = float(t)
        return self._x.copy()
