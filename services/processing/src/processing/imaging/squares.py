"""Square finder for atlases: lattice of grid squares, rim, class and ice per square.

Pipeline: bin, threshold the opaque bars, label square openings, fit the square lattice to
their centroids, fit the visible rim circle, then classify every fully visible lattice cell
from its transmission statistics (``d = mfp * ln(I0 / I)``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from processing.imaging.ice import DEFAULT_MFP_NM
from processing.imaging.lattice import LatticeFit, basis_from_points, bin_image, fit_lattice

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

SQUARE_CLASSES = ("good", "thick", "empty", "broken", "cracked", "contaminated")
_BAR_LEVEL = 0.1
_VACUUM_NM = 6.0
_THICK_NM = 120.0


@dataclasses.dataclass(frozen=True)
class FoundSquare:
    """A fully visible grid square.

    Attributes:
        y, x: centre in pixels of the input image.
        size_px: side of the square opening (pixels).
        cls: one of ``good, thick, empty, broken, cracked, contaminated``.
        score: ranking score in [0, 1]; every ``good`` square outranks every other class,
            and among good squares thinner ice (towards 40 nm) ranks higher.
        ice_nm: median ice thickness over the intact film (nm; 0 for empty).
    """

    y: float
    x: float
    size_px: float
    cls: str
    score: float
    ice_nm: float


def _rim_circle(mask: npt.NDArray[np.bool_]) -> tuple[float, float, float] | None:
    """Fit the visible-disc circle ``(cy, cx, r)`` to the outermost bright pixel on 720 rays.

    Rays whose outermost bright pixel touches the image border carry no rim information and
    are ignored; the fit keeps the upper envelope (rays through bars stop short).
    Returns ``None`` when fewer than 30 rays see the rim.
    """
    ny, nx = mask.shape
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    cy, cx = float(ys.mean()), float(xs.mean())
    theta = np.linspace(0.0, 2 * math.pi, 720, endpoint=False)
    radii = np.arange(0.0, math.hypot(ny, nx), 0.5)
    py = cy + np.sin(theta)[:, None] * radii[None, :]
    px = cx + np.cos(theta)[:, None] * radii[None, :]
    inside = (py >= 0) & (py <= ny - 1) & (px >= 0) & (px <= nx - 1)
    iy = np.clip(np.rint(py), 0, ny - 1).astype(np.intp)
    ix = np.clip(np.rint(px), 0, nx - 1).astype(np.intp)
    hit = mask[iy, ix] & inside
    last = hit.shape[1] - 1 - np.argmax(hit[:, ::-1], axis=1)
    has = hit.any(axis=1)
    ey, ex = py[np.arange(720), last], px[np.arange(720), last]
    on_border = (ey < 2) | (ey > ny - 3) | (ex < 2) | (ex > nx - 3)
    ok = has & ~on_border
    if ok.sum() < 30:
        return None
    pts = np.column_stack([ey[ok], ex[ok]])
    circle = (cy, cx, 0.0)
    keep = np.ones(len(pts), dtype=bool)
    for _ in range(6):
        a = np.column_stack([2 * pts[keep, 0], 2 * pts[keep, 1], np.ones(keep.sum())])
        b = (pts[keep] ** 2).sum(axis=1)
        sol, *_ = np.linalg.lstsq(a, b, rcond=None)
        r = math.sqrt(max(sol[2] + sol[0] ** 2 + sol[1] ** 2, 0.0))
        circle = (float(sol[0]), float(sol[1]), r)
        resid = np.hypot(pts[:, 0] - sol[0], pts[:, 1] - sol[1]) - r
        keep = resid > -1.5
        if keep.sum() < 30:
            break
    return circle


def _score(cls: str, ice: float) -> float:
    """Rank score: good squares in (0.5, 1], the other classes below 0.5."""
    if cls == "good":
        return 0.5 + 0.5 * math.exp(-(((ice - 40.0) / 60.0) ** 2))
    if cls == "thick":
        return 0.3 * math.exp(-(((ice - _THICK_NM) / 150.0) ** 2))
    return {"cracked": 0.15, "contaminated": 0.1, "broken": 0.05}.get(cls, 0.0)


def _cell_keys(
    shape: tuple[int, int], lattice: LatticeFit, half: float, ij: F64
) -> npt.NDArray[np.int64]:
    """Per-pixel index into ``ij`` of the cell whose inner 80 % contains it, else -1."""
    inv = np.linalg.inv(lattice.basis())
    yy = np.arange(shape[0], dtype=np.float32)[:, None] - np.float32(lattice.origin[0])
    xx = np.arange(shape[1], dtype=np.float32)[None, :] - np.float32(lattice.origin[1])
    u = yy * np.float32(inv[0, 0]) + xx * np.float32(inv[0, 1])
    v = yy * np.float32(inv[1, 0]) + xx * np.float32(inv[1, 1])
    iu, iv = np.rint(u), np.rint(v)
    frac = np.float32(0.8 * half / lattice.pitch)
    interior = (np.abs(u - iu) < frac) & (np.abs(v - iv) < frac)
    lo = ij.min(axis=0).astype(np.int64)
    span = (ij.max(axis=0) - lo + 1).astype(np.int64)
    table = np.full(int(span[0] * span[1]), -1, dtype=np.int64)
    table[(ij[:, 0] - lo[0]).astype(np.int64) * span[1] + (ij[:, 1] - lo[1]).astype(np.int64)] = (
        np.arange(len(ij))
    )
    a = iu.astype(np.int64) - lo[0]
    b = iv.astype(np.int64) - lo[1]
    valid = interior & (a >= 0) & (a < span[0]) & (b >= 0) & (b < span[1])
    key = np.full(shape, -1, dtype=np.int64)
    key[valid] = table[a[valid] * span[1] + b[valid]]
    return key


def _stats_from_labels(trans: F32, key: npt.NDArray[np.int64], n: int) -> F64:
    """Per-cell (n, 5): mean t of all non-dark pixels, of intact film, vacuum, bright, dark."""
    sel = key >= 0
    dark_all = trans < 2 * _BAR_LEVEL
    # Erode the lit area so the blurred bar edges do not pull the local mean down.
    weight = ndimage.binary_erosion(~dark_all, iterations=3).astype(np.float32)
    local = ndimage.gaussian_filter(trans * weight, 2.5) / np.maximum(
        ndimage.gaussian_filter(weight, 2.5), np.float32(1e-3)
    )
    hp_all = trans - local
    film_px = weight > 0
    noise_px = 1.4826 * float(np.median(np.abs(hp_all[film_px]))) if film_px.any() else 0.0
    # Smooth (within the lit area) until pixel noise is ~0.5 %: vacuum (t = 1) and the
    # thinnest good ice (15 nm, t = 0.958) must separate pixel by pixel.
    sigma = float(np.clip(noise_px / (2 * math.sqrt(math.pi) * 0.005), 0.7, 3.0))
    lit_w = (~dark_all).astype(np.float32)
    calm = ndimage.gaussian_filter(trans * lit_w, sigma) / np.maximum(
        ndimage.gaussian_filter(lit_w, sigma), np.float32(1e-3)
    )
    k, t = key[sel], np.where(dark_all, trans, calm)[sel].astype(np.float64)
    hp = hp_all[sel].astype(np.float64)
    count = np.maximum(np.bincount(k, minlength=n), 1)
    vac = t > math.exp(-_VACUUM_NM / DEFAULT_MFP_NM)
    dark = dark_all[sel]
    normal = ~vac & ~dark
    lit = ~dark
    film = weight[sel] > 0
    noise = 1.4826 * float(np.median(np.abs(hp[normal]))) if normal.any() else 0.0
    bright = film & (hp > max(4.0 * noise, 0.005))
    out = np.empty((n, 5))
    out[:, 0] = np.bincount(k, weights=t * lit, minlength=n) / np.maximum(
        np.bincount(k, weights=lit, minlength=n), 1
    )
    out[:, 1] = np.bincount(k, weights=t * normal, minlength=n) / np.maximum(
        np.bincount(k, weights=normal, minlength=n), 1
    )
    out[:, 2] = np.bincount(k, weights=vac, minlength=n) / count
    out[:, 3] = np.bincount(k, weights=bright, minlength=n) / count
    out[:, 4] = np.bincount(k, weights=dark, minlength=n) / count
    return out


def _classify(stats: F64, mfp_nm: float) -> tuple[str, float]:
    """Class and ice (nm) of one cell from ``_stats_from_labels`` features."""
    t_all, t_film, vac, bright, dark = (float(v) for v in stats)
    ice_all = mfp_nm * math.log(1.0 / min(max(t_all, 1e-3), 1.0))
    ice = mfp_nm * math.log(1.0 / min(max(t_film, 1e-3), 1.0))
    if ice_all < 8.0:
        return "empty", 0.0
    if dark > 0.02:
        return "contaminated", ice
    if vac > 0.15:
        return "broken", ice
    if vac > 0.003 or bright > 0.004:
        return "cracked", ice
    return ("thick" if ice > _THICK_NM else "good"), ice


def find_squares(
    image: npt.NDArray[np.floating],
    *,
    i0: float | None = None,
    mfp_nm: float = DEFAULT_MFP_NM,
    fft_workers: int = 1,
) -> list[FoundSquare]:
    """Find, classify and rank the fully visible grid squares of an atlas.

    Args:
        image: 2-D atlas (counts or any linear intensity), bars dark.
        i0: intensity of the unobstructed beam (vacuum) in image units; estimated from the
            brightest pixels when ``None`` (correct if any square is empty or broken).
        mfp_nm: inelastic mean free path for ``d = mfp * ln(I0 / I)``.
        fft_workers: accepted for a uniform worker interface (the finder is FFT-free).
    Returns:
        Squares sorted by descending score (empty list if no lattice is found).
    Raises:
        ValueError: if ``image`` is not 2-D.
    """
    del fft_workers
    if image.ndim != 2:
        raise ValueError(f"atlas must be 2-D, got shape {image.shape}")
    factor = max(1, round(min(image.shape) / 2048))
    small = ndimage.gaussian_filter(bin_image(image, factor), 0.7)
    level = float(i0) if i0 is not None else float(np.percentile(small, 99.9))
    if not level > 0:
        return []
    trans = small / np.float32(level)
    mask = trans > _BAR_LEVEL
    labels, n = ndimage.label(mask)
    if n < 4:
        return []
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    big = areas > 0.5 * np.percentile(areas, 90)
    cent = np.array(ndimage.center_of_mass(mask, labels, np.flatnonzero(big) + 1))
    basis = basis_from_points(cent)
    if basis is None:
        return []
    lattice = fit_lattice(cent, *basis)
    if lattice is None:
        return []
    # Opening size from the area above half of each opening's mean level (the blurred edge
    # above the bar threshold would otherwise inflate it).
    ids = np.flatnonzero(big) + 1
    level_of = np.zeros(n + 1, dtype=np.float32)
    level_of[ids] = np.asarray(ndimage.mean(trans, labels, ids), dtype=np.float32)
    above = (trans > 0.5 * level_of[labels]) & (labels > 0)
    half_areas = np.bincount(labels[above], minlength=n + 1)[ids]
    half = 0.5 * math.sqrt(float(np.median(half_areas)))
    return _squares_on_lattice(trans, mask, lattice, half, factor, mfp_nm)


def _squares_on_lattice(
    trans: F32,
    mask: npt.NDArray[np.bool_],
    lattice: LatticeFit,
    half: float,
    factor: int,
    mfp_nm: float,
) -> list[FoundSquare]:
    ny, nx = trans.shape
    circle = _rim_circle(mask)
    ij = lattice.indices_covering((ny, nx))
    centres = lattice.nodes(ij)
    e1 = np.array(lattice.a1) / math.hypot(*lattice.a1)
    e2 = np.array(lattice.a2) / math.hypot(*lattice.a2)
    visible = np.ones(len(ij), dtype=bool)
    reach = 1.05 * half + 1.0  # err on the side of calling a rim square hidden
    for s1, s2 in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
        corner = centres + reach * (s1 * e1 + s2 * e2)
        visible &= (corner[:, 0] >= 0) & (corner[:, 0] <= ny - 1)
        visible &= (corner[:, 1] >= 0) & (corner[:, 1] <= nx - 1)
        if circle is not None:
            dist = np.hypot(corner[:, 0] - circle[0], corner[:, 1] - circle[1])
            visible &= dist < circle[2] - 1.0 / factor
    key = _cell_keys((ny, nx), lattice, half, ij[visible])
    stats = _stats_from_labels(trans, key, int(visible.sum()))
    found = []
    for (cy, cx), row in zip(centres[visible], stats, strict=True):
        cls, ice = _classify(row, mfp_nm)
        fy, fx = (cy + 0.5) * factor - 0.5, (cx + 0.5) * factor - 0.5
        found.append(FoundSquare(fy, fx, 2 * half * factor, cls, _score(cls, ice), ice))
    found.sort(key=lambda s: -s.score)
    return found
