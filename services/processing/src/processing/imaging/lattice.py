"""Square-lattice estimation shared by the square and hole finders.

A lattice is ``origin + i*a1 + j*a2`` in pixel coordinates ``(y, x)``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

F64 = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class LatticeFit:
    """A fitted lattice: ``node(i, j) = origin + i*a1 + j*a2`` (pixels, ``(y, x)``)."""

    origin: tuple[float, float]
    a1: tuple[float, float]
    a2: tuple[float, float]

    @property
    def pitch(self) -> float:
        """Mean length of the two basis vectors (pixels)."""
        return 0.5 * (math.hypot(*self.a1) + math.hypot(*self.a2))

    def basis(self) -> F64:
        """2x2 matrix whose columns are ``a1`` and ``a2``."""
        return np.array([[self.a1[0], self.a2[0]], [self.a1[1], self.a2[1]]])

    def to_index(self, points: F64) -> F64:
        """Fractional lattice indices ``(n, 2)`` of pixel points ``(n, 2)``."""
        inv = np.linalg.inv(self.basis())
        out = (np.asarray(points, dtype=np.float64) - np.array(self.origin)) @ inv.T
        return np.asarray(out, dtype=np.float64)

    def nodes(self, indices: F64) -> F64:
        """Pixel positions ``(n, 2)`` of lattice indices ``(n, 2)``."""
        out = np.asarray(indices, dtype=np.float64) @ self.basis().T + np.array(self.origin)
        return np.asarray(out, dtype=np.float64)

    def scaled(self, factor: float) -> LatticeFit:
        """The same lattice in coordinates scaled by ``factor`` (e.g. binned -> full)."""
        o = ((self.origin[0] + 0.5) * factor - 0.5, (self.origin[1] + 0.5) * factor - 0.5)
        a1 = (self.a1[0] * factor, self.a1[1] * factor)
        a2 = (self.a2[0] * factor, self.a2[1] * factor)
        return LatticeFit(o, a1, a2)

    def indices_covering(self, shape: tuple[int, int]) -> F64:
        """All integer indices ``(n, 2)`` whose node may fall inside an image of ``shape``."""
        corners = np.array([[0, 0], [0, shape[1]], [shape[0], 0], [shape[0], shape[1]]], float)
        ij = self.to_index(corners)
        lo = np.floor(ij.min(axis=0)) - 1
        hi = np.ceil(ij.max(axis=0)) + 1
        gi, gj = np.meshgrid(
            np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij"
        )
        return np.stack([gi.ravel(), gj.ravel()], axis=1)


def basis_from_points(points: F64) -> tuple[float, float] | None:
    """Pitch and angle (rad, in [0, pi/2)) of a square lattice from sample node positions.

    Uses nearest-neighbour vectors; the angle is the 4-fold circular mean.
    Returns ``None`` with fewer than 4 points.
    """
    if len(points) < 4:
        return None
    tree = cKDTree(points)
    dist, idx = tree.query(points, k=min(5, len(points)))
    d1 = np.median(dist[:, 1])
    vecs = points[idx[:, 1:]] - points[:, None, :]
    lengths = dist[:, 1:]
    ok = (lengths > 0.75 * d1) & (lengths < 1.25 * d1)
    v = vecs[ok]
    if len(v) < 3:
        return None
    theta = np.arctan2(v[:, 0], v[:, 1])
    angle = (math.atan2(float(np.sin(4 * theta).sum()), float(np.cos(4 * theta).sum())) / 4) % (
        math.pi / 2
    )
    return float(np.median(lengths[ok])), angle


def fit_lattice(
    points: F64, pitch: float, angle: float, *, iterations: int = 4
) -> LatticeFit | None:
    """Least-squares lattice through node positions, given an approximate pitch and angle.

    Points that sit more than 0.2 pitch off the lattice are dropped as outliers.
    Returns ``None`` if fewer than 4 points support the fit.
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 4:
        return None
    c, s = math.cos(angle), math.sin(angle)
    centre = np.median(pts, axis=0)
    start = pts[np.argmin(((pts - centre) ** 2).sum(axis=1))]
    fit = LatticeFit(
        (float(start[0]), float(start[1])), (pitch * s, pitch * c), (pitch * c, -pitch * s)
    )
    keep = np.ones(len(pts), dtype=bool)
    for _ in range(iterations):
        ij = np.rint(fit.to_index(pts))
        design = np.column_stack([np.ones(len(pts)), ij])
        resid = np.hypot(*(fit.nodes(ij) - pts).T)
        keep = resid < 0.2 * fit.pitch
        if keep.sum() < 4:
            return None
        coef, *_ = np.linalg.lstsq(design[keep], pts[keep], rcond=None)
        fit = LatticeFit(
            (float(coef[0, 0]), float(coef[0, 1])),
            (float(coef[1, 0]), float(coef[1, 1])),
            (float(coef[2, 0]), float(coef[2, 1])),
        )
    return fit


def bin_image(image: npt.NDArray[np.floating], factor: int) -> npt.NDArray[np.float32]:
    """Mean-bin a 2-D image by an integer factor (trailing rows/columns are dropped)."""
    if factor <= 1:
        return np.asarray(image, dtype=np.float32)
    ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    view = np.asarray(image[:ny, :nx], dtype=np.float32)
    binned = view.reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))
    return np.asarray(binned, dtype=np.float32)
