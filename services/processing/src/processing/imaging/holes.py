"""Hole finder for square images: hole lattice, opening mask, class and ice per hole.

Pipeline: bin, find the square opening (bars are opaque), get the hole lattice from the
Fourier peaks of the opening, refine it on bright-hole centroids, estimate the hole radius,
then measure ``d = mfp * ln(I0 / I)`` inside every hole that lies fully in the opening.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft
from scipy import ndimage

from processing.imaging.ice import DEFAULT_MFP_NM
from processing.imaging.lattice import LatticeFit, bin_image, fit_lattice

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

HOLE_CLASSES = ("empty", "good", "thick", "contaminated")
_BAR_LEVEL = 0.1
_EMPTY_NM = 8.0
_THICK_NM = 105.0


@dataclasses.dataclass(frozen=True)
class FoundHole:
    """A hole fully inside the square opening.

    Attributes:
        y, x: centre in pixels of the input image.
        radius_px: fitted hole radius (pixels, shared by all holes of the image).
        cls: ``empty``, ``good``, ``thick`` or ``contaminated``; only ``good`` is usable.
        score: ranking score; good holes in (0.5, 1] (ice near 40 nm best), others below.
        ice_nm: ice thickness proxy ``mfp * ln(I0 / I)`` over the hole centre (nm).
    """

    y: float
    x: float
    radius_px: float
    cls: str
    score: float
    ice_nm: float


def _opening(trans: F32) -> npt.NDArray[np.bool_]:
    """The largest lit region (the square opening) with enclosed dark spots filled."""
    labels, n = ndimage.label(trans > _BAR_LEVEL)
    if n == 0:
        return np.zeros(trans.shape, dtype=bool)
    areas = np.bincount(labels.ravel())
    areas[0] = 0
    return np.asarray(ndimage.binary_fill_holes(labels == int(np.argmax(areas))), dtype=bool)


def _fourier_lattice(trans: F32, opening: npt.NDArray[np.bool_], workers: int) -> LatticeFit | None:
    """Approximate hole lattice from the two strongest orthogonal Fourier peaks."""
    ny, nx = trans.shape
    level = float(trans[opening].mean())
    img = np.where(opening, trans - np.float32(level), np.float32(0.0))
    power = np.abs(sfft.fftshift(sfft.fft2(img, workers=workers))) ** 2
    cy, cx = ny // 2, nx // 2
    fy = (np.arange(ny) - cy)[:, None] / ny
    fx = (np.arange(nx) - cx)[None, :] / nx
    f = np.hypot(fy, fx)
    power[(f < 1.0 / 150.0) | (f > 1.0 / 6.0)] = 0.0
    peak = tuple(int(v) for v in np.unravel_index(int(np.argmax(power)), power.shape))
    k1 = _refine_peak(power, peak, cy, cx, ny, nx)
    k2_guess = (-k1[1] * ny / nx, k1[0] * nx / ny)
    p2 = (int(round(cy + k2_guess[0] * ny)), int(round(cx + k2_guess[1] * nx)))
    if not (0 < p2[0] < ny - 1 and 0 < p2[1] < nx - 1):
        return None
    k2 = _refine_peak(power, p2, cy, cx, ny, nx)
    recip = np.array([[k1[0], k1[1]], [k2[0], k2[1]]])
    if abs(np.linalg.det(recip)) < 1e-12:
        return None
    basis = np.linalg.inv(recip)  # columns are real-space a1, a2 (y, x)
    # Origin from the phases at the two peaks (features centred on nodes), then pick it or
    # the half-shifted sub-lattice, whichever sits on features that differ from the film.
    yy = np.arange(ny, dtype=np.float64)[:, None]
    xx = np.arange(nx, dtype=np.float64)[None, :]
    phases = []
    for ky, kx in (k1, k2):
        coef = complex((img * np.exp(-2j * math.pi * (ky * yy + kx * xx))).sum())
        phases.append(-math.atan2(coef.imag, coef.real) / (2 * math.pi))
    origin = np.linalg.solve(recip, np.array(phases))
    a1, a2 = basis[:, 0], basis[:, 1]
    best: LatticeFit | None = None
    best_dev = -1.0
    for shift in (0.0, 0.5):
        o = origin + shift * (a1 + a2)
        cand = LatticeFit((float(o[0]), float(o[1])), (a1[0], a1[1]), (a2[0], a2[1]))
        nodes = cand.nodes(cand.indices_covering((ny, nx)))
        iy, ix = np.rint(nodes).astype(np.intp).T
        ok = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
        ok[ok] &= opening[iy[ok], ix[ok]]
        dev = float(np.abs(img[iy[ok], ix[ok]]).mean()) if ok.any() else 0.0
        if dev > best_dev:
            best, best_dev = cand, dev
    return best


def _refine_peak(
    power: F64, peak: tuple[int, ...], cy: int, cx: int, ny: int, nx: int
) -> tuple[float, float]:
    """Centroid of the 5x5 neighbourhood of a peak, as a frequency (cycles/pixel)."""
    py, px = int(peak[0]), int(peak[1])
    win = power[py - 2 : py + 3, px - 2 : px + 3]
    if win.shape != (5, 5) or win.sum() <= 0:
        return (py - cy) / ny, (px - cx) / nx
    oy, ox = np.mgrid[-2:3, -2:3]
    return (py + float((win * oy).sum() / win.sum()) - cy) / ny, (
        px + float((win * ox).sum() / win.sum()) - cx
    ) / nx


def _refine_on_holes(trans: F32, lattice: LatticeFit, opening: npt.NDArray[np.bool_]) -> LatticeFit:
    """Re-fit the lattice to intensity centroids of bright holes near every node."""
    ny, nx = trans.shape
    ij = lattice.indices_covering((ny, nx))
    nodes = lattice.nodes(ij)
    half = int(max(2, 0.3 * lattice.pitch))
    inside = (nodes[:, 0] > half) & (nodes[:, 0] < ny - 1 - half)
    inside &= (nodes[:, 1] > half) & (nodes[:, 1] < nx - 1 - half)
    nodes = nodes[inside]
    iy, ix = np.rint(nodes).astype(np.intp).T
    nodes = nodes[opening[iy, ix]]
    if len(nodes) < 4:
        return lattice
    film = float(np.median(trans[opening]))
    oy, ox = np.mgrid[-half : half + 1, -half : half + 1]
    disc = (oy**2 + ox**2) <= half * half
    cy, cx = np.rint(nodes).astype(np.intp).T
    patches = trans[cy[:, None, None] + oy[None], cx[:, None, None] + ox[None]] - np.float32(film)
    weight = np.where(disc[None] & (patches > 0), patches, 0.0)
    total = weight.sum(axis=(1, 2))
    bright = total > np.percentile(total, 50)
    if bright.sum() < 4:
        return lattice
    cy_ref = cy[bright] + (weight[bright] * oy).sum(axis=(1, 2)) / total[bright]
    cx_ref = cx[bright] + (weight[bright] * ox).sum(axis=(1, 2)) / total[bright]
    a1 = np.array(lattice.a1)
    angle = math.atan2(a1[0], a1[1]) % (math.pi / 2)
    refined = fit_lattice(np.column_stack([cy_ref, cx_ref]), lattice.pitch, angle)
    return refined if refined is not None else lattice


def _radius(trans: F32, lattice: LatticeFit, opening: npt.NDArray[np.bool_]) -> float:
    """Hole radius from the mean radial profile of the brightest holes (half-contrast point)."""
    ny, nx = trans.shape
    nodes = lattice.nodes(lattice.indices_covering((ny, nx)))
    rmax = 0.5 * lattice.pitch
    ok = (nodes[:, 0] > rmax) & (nodes[:, 0] < ny - 1 - rmax)
    ok &= (nodes[:, 1] > rmax) & (nodes[:, 1] < nx - 1 - rmax)
    nodes = nodes[ok]
    nodes = nodes[opening[tuple(np.rint(nodes).astype(np.intp).T)]]
    radii = np.arange(0.0, rmax, 0.25)
    ang = np.linspace(0, 2 * math.pi, 32, endpoint=False)
    py = nodes[:, 0, None, None] + radii[None, :, None] * np.sin(ang)[None, None, :]
    px = nodes[:, 1, None, None] + radii[None, :, None] * np.cos(ang)[None, None, :]
    prof = ndimage.map_coordinates(trans, [py.ravel(), px.ravel()], order=1)
    prof = prof.reshape(py.shape).mean(axis=2)
    contrast = prof[:, 0] - prof[:, -1]
    top = prof[contrast >= np.percentile(contrast, 75)].mean(axis=0)
    mid = 0.5 * (top[0] + top[-1])
    below = np.flatnonzero(top < mid)
    if len(below) == 0:
        return 0.3 * lattice.pitch
    k = int(below[0])
    if k == 0:
        return float(radii[0])
    frac = (top[k - 1] - mid) / max(top[k - 1] - top[k], 1e-9)
    return float(radii[k - 1] + frac * (radii[k] - radii[k - 1]))


def _classify(ice: float, dark: float) -> tuple[str, float]:
    """Class and score of a hole from its ice proxy (nm) and dark-pixel fraction."""
    if ice < _EMPTY_NM:
        return "empty", 0.0
    if dark > 0.03:
        return "contaminated", 0.05
    if ice > _THICK_NM:
        return "thick", 0.3 * math.exp(-(((ice - _THICK_NM) / 150.0) ** 2))
    return "good", 0.5 + 0.5 * math.exp(-(((ice - 40.0) / 50.0) ** 2))


def find_holes(
    image: npt.NDArray[np.floating],
    *,
    i0: float | None = None,
    mfp_nm: float = DEFAULT_MFP_NM,
    fft_workers: int = 1,
) -> list[FoundHole]:
    """Find, classify and rank the holes of a square image.

    Args:
        image: 2-D square image (counts or any linear intensity), grid bars dark.
        i0: intensity of the unobstructed beam in image units; estimated from the brightest
            pixels when ``None`` (right only if some hole is empty).
        mfp_nm: inelastic mean free path for ``d = mfp * ln(I0 / I)``.
        fft_workers: scipy.fft threads for the lattice search.
    Returns:
        Holes fully inside the opening, sorted by descending score (empty if none found).
    Raises:
        ValueError: if ``image`` is not 2-D.
    """
    if image.ndim != 2:
        raise ValueError(f"square image must be 2-D, got shape {image.shape}")
    factor = max(1, round(min(image.shape) / 1024))
    small = ndimage.gaussian_filter(bin_image(image, factor), 1.0)
    level = float(i0) if i0 is not None else float(np.percentile(small, 99.9))
    if not level > 0:
        return []
    trans = small / np.float32(level)
    opening = _opening(trans)
    if opening.sum() < 100:
        return []
    coarse = _fourier_lattice(trans, opening, fft_workers)
    if coarse is None:
        return []
    lattice = _refine_on_holes(trans, coarse, opening)
    radius = _radius(trans, lattice, opening) * factor
    full = lattice.scaled(factor)
    edt = ndimage.distance_transform_edt(np.pad(opening, 1))[1:-1, 1:-1]
    sites = full.nodes(full.indices_covering(image.shape))
    ny, nx = image.shape
    ok = (sites[:, 0] >= radius) & (sites[:, 0] <= ny - 1 - radius)
    ok &= (sites[:, 1] >= radius) & (sites[:, 1] <= nx - 1 - radius)
    sites = sites[ok]
    room = ndimage.map_coordinates(edt, ((sites + 0.5) / factor - 0.5).T, order=1) * factor
    sites = sites[room >= radius + 1.5 * factor]
    return _measure(np.asarray(image, dtype=np.float32) / np.float32(level), sites, radius, mfp_nm)


def _measure(trans: F32, sites: F64, radius: float, mfp_nm: float) -> list[FoundHole]:
    """Ice proxy and class of each site from the pixels within 0.7 radius of its centre."""
    r = max(1, int(0.7 * radius))
    oy, ox = np.mgrid[-r : r + 1, -r : r + 1]
    disc = (oy**2 + ox**2) <= r * r
    oy, ox = oy[disc], ox[disc]
    cy, cx = np.rint(sites).astype(np.intp).T
    ny, nx = trans.shape
    py = np.clip(cy[:, None] + oy[None], 0, ny - 1)
    px = np.clip(cx[:, None] + ox[None], 0, nx - 1)
    t = trans[py, px]
    dark = t < 0.3
    lit = np.maximum((~dark).sum(axis=1), 1)
    mean_t = np.where(dark, 0.0, t).sum(axis=1) / lit
    found = []
    for (y, x), m, d in zip(sites, mean_t, dark.mean(axis=1), strict=True):
        ice = mfp_nm * math.log(1.0 / min(max(float(m), 1e-3), 1.0))
        cls, score = _classify(ice, float(d))
        found.append(FoundHole(float(y), float(x), radius, cls, score, ice))
    found.sort(key=lambda h: -h.score)
    return found
