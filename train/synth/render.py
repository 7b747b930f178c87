"""Z-buffered ray casting of shaded round cones (tapered capsules) and ellipsoids, in numpy.

Camera frame: OpenCV pinhole (x right, y down, z forward), camera at the origin. Depth is the
distance along each pixel's ray, so keypoint visibility can compare `norm(point)` with the buffer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

Albedo = Callable[[np.ndarray, np.ndarray], np.ndarray]   # (points (n,3), normals (n,3)) -> rgb (n,3)


@dataclass
class Light:
    """Directional light towards `direction` (unit, camera frame) plus hemispheric ambient."""

    direction: np.ndarray
    ambient: float = 0.4
    diffuse: float = 0.7
    specular: float = 0.15
    color: np.ndarray = field(default_factory=lambda: np.ones(3))


class Canvas:
    """Per-pixel depth, colour (RGB float 0..1, background left at 0) and owner id (-1 = background)."""

    def __init__(self, width: int, height: int, focal: float, cx: float, cy: float, light: Light):
        self.w, self.h, self.f, self.cx, self.cy, self.light = width, height, focal, cx, cy, light
        self.depth = np.full((height, width), np.inf)
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.owner = np.full((height, width), -1, np.int16)
        self._u = (np.arange(width) - cx) / focal     # pixel centres at integer coordinates (OpenCV)
        self._v = (np.arange(height) - cy) / focal

    def rays(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """(n, 3) unit ray directions of the pixels of `box` (x0, y0, x1, y1), row-major."""
        x0, y0, x1, y1 = box
        d = np.empty((y1 - y0, x1 - x0, 3))
        d[..., 0] = self._u[None, x0:x1]
        d[..., 1] = self._v[y0:y1, None]
        d[..., 2] = 1.0
        d = d.reshape(-1, 3)
        return d / np.sqrt((d * d).sum(1))[:, None]

    def project(self, p: np.ndarray) -> np.ndarray:
        """(..., 3) camera points -> (..., 2) pixel coordinates (pixel centres at integers)."""
        z = np.maximum(p[..., 2:3], 1e-6)
        return p[..., :2] / z * self.f + np.array([self.cx, self.cy])

    def _bbox(self, centers: np.ndarray, radii: np.ndarray) -> tuple[int, int, int, int] | None:
        """Conservative pixel box of a set of spheres, clipped to the image; None if off-screen."""
        c, r = np.atleast_2d(centers), np.atleast_1d(radii)
        zn = c[:, 2] - r
        if (zn < 0.05).any():
            return None
        xs = np.concatenate([(c[:, 0] - r) / zn, (c[:, 0] - r) / (c[:, 2] + r), (c[:, 0] + r) / zn,
                             (c[:, 0] + r) / (c[:, 2] + r)])
        ys = np.concatenate([(c[:, 1] - r) / zn, (c[:, 1] - r) / (c[:, 2] + r), (c[:, 1] + r) / zn,
                             (c[:, 1] + r) / (c[:, 2] + r)])
        x0 = max(int(np.floor(xs.min() * self.f + self.cx)) - 1, 0)
        x1 = min(int(np.ceil(xs.max() * self.f + self.cx)) + 1, self.w)
        y0 = max(int(np.floor(ys.min() * self.f + self.cy)) - 1, 0)
        y1 = min(int(np.ceil(ys.max() * self.f + self.cy)) + 1, self.h)
        if x0 >= x1 or y0 >= y1:
            return None
        return x0, y0, x1, y1

    def _composite(self, box, rd: np.ndarray, t: np.ndarray, nrm: np.ndarray, albedo: Albedo, owner: int) -> None:
        x0, y0, x1, y1 = box
        zb = self.depth[y0:y1, x0:x1].reshape(-1)
        m = np.isfinite(t) & (t > 0) & (t < zb)
        if not m.any():
            return
        idx = np.flatnonzero(m)
        tt, n, r = t[idx], nrm[idx], rd[idx]
        pts = r * tt[:, None]
        n = n / np.sqrt((n * n).sum(1))[:, None]
        flip = (n * r).sum(1) > 0
        n[flip] *= -1
        lt = self.light
        lam = np.clip(n @ lt.direction, 0, None)
        hemi = 0.75 + 0.25 * (-n[:, 1])
        refl = lt.direction - 2 * (n @ lt.direction)[:, None] * n
        spec = np.clip((refl * r).sum(1), 0, None) ** 12 * lt.specular
        col = albedo(pts, n) * (lt.ambient * hemi + lt.diffuse * lam)[:, None] + spec[:, None]
        col = col * lt.color
        zb[idx] = tt
        self.depth[y0:y1, x0:x1] = zb.reshape(y1 - y0, x1 - x0)
        rgb = self.rgb[y0:y1, x0:x1].reshape(-1, 3)
        rgb[idx] = col
        self.rgb[y0:y1, x0:x1] = rgb.reshape(y1 - y0, x1 - x0, 3)
        own = self.owner[y0:y1, x0:x1].reshape(-1)
        own[idx] = owner
        self.owner[y0:y1, x0:x1] = own.reshape(y1 - y0, x1 - x0)

    def round_cone(self, pa: np.ndarray, pb: np.ndarray, ra: float, rb: float, albedo: Albedo, owner: int) -> None:
        """Convex hull of spheres (pa, ra) and (pb, rb) (iq's ray / rounded-cone intersection)."""
        if ra < rb:
            pa, pb, ra, rb = pb, pa, rb, ra
        ba = pb - pa
        if np.linalg.norm(ba) <= (ra - rb) + 1e-6:
            return self.ellipsoid(pa, np.eye(3) * ra, albedo, owner)
        box = self._bbox(np.stack([pa, pb]), np.array([ra, rb]))
        if box is None:
            return None
        rd = self.rays(box)
        oa, ob = -pa, -pb
        rr = ra - rb
        m0, m1, m5, m7 = ba @ ba, ba @ oa, oa @ oa, ob @ ob
        m2, m3, m6 = rd @ ba, rd @ oa, rd @ ob
        d2 = m0 - rr * rr
        k2 = d2 - m2 * m2
        k1 = d2 * m3 - m1 * m2 + m2 * rr * ra
        k0 = d2 * m5 - m1 * m1 + m1 * rr * ra * 2.0 - m0 * ra * ra
        h = k1 * k1 - k0 * k2
        t = np.full(len(rd), np.inf)
        nrm = np.zeros_like(rd)
        ok = h >= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            tb = (-np.sqrt(np.where(ok, h, 0)) - k1) / k2
        y = m1 - ra * rr + tb * m2
        body = ok & (y > 0) & (y < d2) & (k2 > 1e-12)
        t[body] = tb[body]
        nrm[body] = d2 * (oa + tb[body, None] * rd[body]) - ba * y[body, None]
        rest = ok & ~body
        h1 = m3 * m3 - m5 + ra * ra
        h2 = m6 * m6 - m7 + rb * rb
        c1 = rest & (h1 > 0)
        t1 = np.where(c1, -m3 - np.sqrt(np.where(c1, h1, 0)), np.inf)
        c2 = rest & (h2 > 0)
        t2 = np.where(c2, -m6 - np.sqrt(np.where(c2, h2, 0)), np.inf)
        use1 = c1 & (t1 <= t2)
        use2 = c2 & (t2 < t1)
        t[use1] = t1[use1]
        nrm[use1] = oa + t1[use1, None] * rd[use1]
        t[use2] = t2[use2]
        nrm[use2] = ob + t2[use2, None] * rd[use2]
        self._composite(box, rd, t, nrm, albedo, owner)
        return None

    def ellipsoid(self, center: np.ndarray, axes: np.ndarray, albedo: Albedo, owner: int) -> None:
        """Ellipsoid whose semi-axis vectors are the columns of `axes` (mutually orthogonal)."""
        radius = float(np.linalg.norm(axes, axis=0).max())
        box = self._bbox(center[None], np.array([radius]))
        if box is None:
            return
        rd = self.rays(box)
        inv = np.linalg.inv(axes)
        ro = inv @ (-center)
        rdl = rd @ inv.T
        a = (rdl * rdl).sum(1)
        b = rdl @ ro
        c = ro @ ro - 1.0
        disc = b * b - a * c
        ok = disc >= 0
        t = np.where(ok, (-b - np.sqrt(np.where(ok, disc, 0))) / a, np.inf)
        loc = ro + np.where(ok, t, 0.0)[:, None] * rdl
        nrm = np.where(ok[:, None], loc @ inv, 0.0)
        self._composite(box, rd, t, nrm, albedo, owner)


def solid(rgb: np.ndarray) -> Albedo:
    """Albedo callback of a uniform colour."""
    c = np.asarray(rgb, np.float32)
    return lambda p, n: np.broadcast_to(c, (len(p), 3))
