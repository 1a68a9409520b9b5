"""Simulated square images: one grid-square opening covered by a holey carbon film.

Holes sit on a square lattice (Quantifoil-style patterns, random rotation); hole ice follows a
bowl (thin centre, thick near the bars) plus a gradient; ``I = I0 * exp(-d / 350 nm)``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from acquisition.physics.atlas import MESHES
from acquisition.physics.ctf import MEAN_FREE_PATH_NM
from acquisition.physics.geometry import Lattice
from acquisition.physics.noise import gaussian_blur, poisson_counts
from acquisition.physics.truth import HoleTruth, SquareImageTruth

F32 = npt.NDArray[np.float32]

#: pattern -> (hole diameter µm, pitch µm).
PATTERNS: dict[str, tuple[float, float]] = {
    "R1.2/1.3": (1.2, 2.5),
    "R2/1": (2.0, 3.0),
    "R2/2": (2.0, 4.0),
}
HOLE_CLASSES = ("empty", "good", "thick", "contaminated")
_CARBON_TRANSMISSION = math.exp(-0.45)
_OPAQUE = 0.01


def _hole_ice(
    rng: np.random.Generator, rho: npt.NDArray[np.float64], grad: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], list[str]]:
    """Ice per hole from the bowl profile; classes with a 90-120 nm gap between good/thick."""
    centre, edge = rng.uniform(20.0, 60.0), rng.uniform(150.0, 300.0)
    ice = centre + (edge - centre) * rho**4 + grad + rng.normal(0.0, 8.0, rho.shape)
    ice = np.where((ice > 90.0) & (ice < 105.0), 90.0 - (ice - 90.0), ice)
    ice = np.where((ice >= 105.0) & (ice < 120.0), 120.0 + (ice - 105.0), ice)
    ice = np.maximum(ice, 15.0)
    classes = ["good" if v <= 90.0 else "thick" for v in ice]
    draw = rng.random(rho.shape)
    for k in range(len(classes)):
        if draw[k] < 0.04:
            classes[k], ice[k] = "empty", 0.0
        elif draw[k] < 0.10:
            classes[k] = "contaminated"
    return ice, classes


def simulate_square(
    seed: int,
    *,
    shape: tuple[int, int] = (2048, 2048),
    pattern: str = "R1.2/1.3",
    mesh: int = 300,
    pixel_size_nm: float | None = None,
    i0: float = 200.0,
    fft_workers: int = 1,
) -> tuple[F32, SquareImageTruth]:
    """Simulate a square image (counts) with per-hole ground truth.

    Args:
        seed: RNG seed; equal seeds and arguments give bit-identical output.
        shape: image shape (rows, columns).
        pattern: ``R1.2/1.3``, ``R2/1`` or ``R2/2`` (hole diameter / gap in µm).
        mesh: grid mesh (sets the opening size in µm).
        pixel_size_nm: pixel size; default makes the opening 75 % of the image width.
        i0: mean counts per pixel on vacuum.
        fft_workers: scipy.fft threads for the blur (does not change the result).
    Returns:
        ``(image, truth)``; truth lists the holes whose disc is fully inside the opening.
    Raises:
        KeyError: for an unknown pattern or mesh.
    """
    diam_um, pitch_um = PATTERNS[pattern]
    mesh_pitch_um, bar_um = MESHES[mesh]
    rng = np.random.default_rng(seed)
    open_um = mesh_pitch_um - bar_um
    px_nm = pixel_size_nm if pixel_size_nm is not None else open_um * 1e3 / (0.75 * min(shape))
    half_open = 0.5 * open_um * 1e3 / px_nm
    radius = 0.5 * diam_um * 1e3 / px_nm
    pitch = pitch_um * 1e3 / px_nm
    centre = (
        shape[0] / 2 + rng.uniform(-0.03, 0.03) * shape[0],
        shape[1] / 2 + rng.uniform(-0.03, 0.03) * shape[1],
    )
    opening = Lattice(centre, 4.0 * half_open, rng.uniform(0.0, 0.5 * math.pi))
    holes = Lattice(
        (centre[0] + rng.uniform(0, pitch), centre[1] + rng.uniform(0, pitch)),
        pitch,
        rng.uniform(0.0, 0.5 * math.pi),
    )
    imin, imax, jmin, jmax = holes.index_range(shape)
    gi, gj = np.meshgrid(np.arange(imin, imax + 1), np.arange(jmin, jmax + 1), indexing="ij")
    sites = np.array(
        [holes.node(float(i), float(j)) for i, j in zip(gi.ravel(), gj.ravel(), strict=True)]
    )
    oc, os_ = math.cos(opening.angle_rad), math.sin(opening.angle_rad)
    sa = (sites[:, 1] - centre[1]) * oc + (sites[:, 0] - centre[0]) * os_
    sb = (sites[:, 0] - centre[0]) * oc - (sites[:, 1] - centre[1]) * os_
    rho = np.maximum(np.abs(sa), np.abs(sb)) / half_open
    grad_dir = rng.uniform(0.0, 2.0 * math.pi)
    grad = 25.0 * (sa * math.cos(grad_dir) + sb * math.sin(grad_dir)) / half_open
    ice, classes = _hole_ice(rng, rho, grad)

    _, _, du, dv = opening.coords(shape)
    is_open = np.maximum(np.abs(du), np.abs(dv)) < np.float32(half_open)
    bowl = np.float32(0.7) * np.hypot(du, dv) / np.float32(half_open)
    carbon_ice = np.float32(40.0) + np.float32(120.0) * bowl**4
    trans = np.exp(carbon_ice * np.float32(-1.0 / MEAN_FREE_PATH_NM)) * np.float32(
        _CARBON_TRANSMISSION
    )
    hi, hj, hu, hv = holes.coords(shape)
    ni, nj = imax - imin + 1, jmax - jmin + 1
    site = (np.clip(hi - imin, 0, ni - 1) * nj + np.clip(hj - jmin, 0, nj - 1)).astype(np.int32)
    in_hole = hu * hu + hv * hv < np.float32(radius * radius)
    hole_trans = np.exp(ice.astype(np.float32) * np.float32(-1.0 / MEAN_FREE_PATH_NM))
    trans[in_hole] = hole_trans[site[in_hole]]
    for k in np.flatnonzero(np.array(classes) == "contaminated"):
        _blob(rng, trans, sites[k], radius)
    trans[~is_open] = _OPAQUE
    trans = gaussian_blur(trans, 0.8, workers=fft_workers)
    image = poisson_counts(rng, trans * np.float32(i0))

    limit = half_open - radius - 0.5
    inside_img = (
        (sites[:, 0] >= radius)
        & (sites[:, 0] <= shape[0] - 1 - radius)
        & (sites[:, 1] >= radius)
        & (sites[:, 1] <= shape[1] - 1 - radius)
    )
    keep = (np.abs(sa) <= limit) & (np.abs(sb) <= limit) & inside_img
    truth_holes = tuple(
        HoleTruth(
            id=n,
            centre=(float(sites[k, 0]), float(sites[k, 1])),
            radius_px=radius,
            cls=classes[k],
            ice_nm=float(ice[k]),
        )
        for n, k in enumerate(np.flatnonzero(keep))
    )
    truth = SquareImageTruth(
        seed=seed,
        shape=(int(shape[0]), int(shape[1])),
        pattern=pattern,
        pixel_size_nm=px_nm,
        i0=i0,
        pitch_px=pitch,
        hole_angle_deg=math.degrees(holes.angle_rad),
        opening_centre=(float(centre[0]), float(centre[1])),
        opening_size_px=2 * half_open,
        opening_angle_deg=math.degrees(opening.angle_rad),
        holes=truth_holes,
    )
    return image, truth


def _blob(
    rng: np.random.Generator, trans: F32, site: npt.NDArray[np.float64], radius: float
) -> None:
    """Darken (transmission x 0.08) one or two contamination blobs over a hole, in place."""
    ny, nx = trans.shape
    for _ in range(int(rng.integers(1, 3))):
        r = rng.uniform(0.35, 0.6) * radius
        ang = rng.uniform(0.0, 2.0 * math.pi)
        dist = rng.uniform(0.0, 0.5) * radius
        by, bx = site[0] + dist * math.sin(ang), site[1] + dist * math.cos(ang)
        y0, y1 = max(int(by - r) - 1, 0), min(int(by + r) + 2, ny)
        x0, x1 = max(int(bx - r) - 1, 0), min(int(bx + r) + 2, nx)
        if y0 >= y1 or x0 >= x1:
            continue
        yy = np.arange(y0, y1)[:, None] - by
        xx = np.arange(x0, x1)[None, :] - bx
        trans[y0:y1, x0:x1][(yy * yy + xx * xx) < r * r] *= np.float32(0.08)
