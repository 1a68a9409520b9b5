"""Simulated atlases: a whole grid of squares with ice classes, an ice gradient and a rim.

Transmission follows ``I = I0 * exp(-d / 350 nm)``; bars and the rim pass 1 % of the beam.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from acquisition.physics.ctf import MEAN_FREE_PATH_NM
from acquisition.physics.geometry import Lattice
from acquisition.physics.noise import gaussian_blur, poisson_counts
from acquisition.physics.truth import AtlasTruth, SquareTruth

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: mesh -> (pitch µm, bar width µm) of common copper grids.
MESHES: dict[int, tuple[float, float]] = {200: (127.0, 37.0), 300: (84.7, 26.0), 400: (63.5, 26.0)}
SQUARE_CLASSES = ("good", "thick", "empty", "broken", "cracked", "contaminated")
_CLASS_P = (0.45, 0.2, 0.07, 0.1, 0.08, 0.1)
_OPAQUE = 0.01


def _square_params(
    rng: np.random.Generator, n: int, gradient: F64
) -> tuple[list[str], F64, F64, F64]:
    """Classes, ice (nm), crack lines and broken half-planes for ``n`` cells.

    Returns ``(classes, ice, crack (n, 4: ny, nx, offset, width), broken (n, 3: ny, nx, c))``.
    """
    classes = [SQUARE_CLASSES[k] for k in rng.choice(6, size=n, p=_CLASS_P)]
    ice = np.clip(gradient + rng.normal(0.0, 6.0, n), 15.0, 95.0)
    crack = np.zeros((n, 4))
    broken = np.zeros((n, 3))
    broken[:, 2] = np.inf
    ang = rng.uniform(0.0, 2.0 * math.pi, size=(n, 2))
    for k, cls in enumerate(classes):
        if cls == "thick":
            ice[k] = np.clip(gradient[k] + rng.uniform(100.0, 250.0), 150.0, 400.0)
        elif cls == "empty":
            ice[k] = rng.uniform(0.0, 3.0)
        elif cls == "cracked":
            crack[k] = (math.sin(ang[k, 0]), math.cos(ang[k, 0]), rng.uniform(-0.3, 0.3), 2.5)
        elif cls == "broken":
            broken[k] = (math.sin(ang[k, 1]), math.cos(ang[k, 1]), rng.uniform(-0.35, 0.35))
    return classes, ice, crack, broken


def _add_contamination(
    rng: np.random.Generator,
    trans: F32,
    lattice: Lattice,
    cells: list[tuple[int, int]],
    half_open: float,
) -> None:
    """Multiply ``trans`` by dark blobs (transmission 5 %) inside the given cells, in place."""
    ny, nx = trans.shape
    for i, j in cells:
        cy, cx = lattice.node(i, j)
        for _ in range(int(rng.integers(2, 5))):
            r = rng.uniform(0.12, 0.3) * half_open * 2
            by = cy + rng.uniform(-0.6, 0.6) * half_open
            bx = cx + rng.uniform(-0.6, 0.6) * half_open
            y0, y1 = max(int(by - r) - 1, 0), min(int(by + r) + 2, ny)
            x0, x1 = max(int(bx - r) - 1, 0), min(int(bx + r) + 2, nx)
            if y0 >= y1 or x0 >= x1:
                continue
            yy = np.arange(y0, y1)[:, None] - by
            xx = np.arange(x0, x1)[None, :] - bx
            blob = (yy * yy + xx * xx) < r * r
            trans[y0:y1, x0:x1][blob] *= np.float32(0.05)


def simulate_atlas(
    seed: int,
    *,
    shape: tuple[int, int] = (4096, 4096),
    mesh: int = 300,
    pixel_size_nm: float | None = None,
    i0: float = 400.0,
    fft_workers: int = 1,
) -> tuple[F32, AtlasTruth]:
    """Simulate an atlas (counts) of a whole grid with per-square ground truth.

    Args:
        seed: RNG seed; equal seeds and arguments give bit-identical output.
        shape: image shape (rows, columns).
        mesh: 200, 300 or 400.
        pixel_size_nm: pixel size; default makes the visible disc (radius ~0.45 of the
            image) 2.5 mm across.
        i0: mean counts per pixel on vacuum.
        fft_workers: scipy.fft threads for the blur (does not change the result).
    Returns:
        ``(image, truth)``; truth lists every square whose opening is at least partly visible.
    Raises:
        KeyError: for an unsupported mesh.
    """
    pitch_um, bar_um = MESHES[mesh]
    rng = np.random.default_rng(seed)
    size = float(min(shape))
    rim_r = 0.45 * size * rng.uniform(0.97, 1.0)
    rim_c = (
        shape[0] / 2 + rng.uniform(-0.02, 0.02) * size,
        shape[1] / 2 + rng.uniform(-0.02, 0.02) * size,
    )
    px_nm = pixel_size_nm if pixel_size_nm is not None else 1.25e6 / (0.45 * size)
    pitch = pitch_um * 1e3 / px_nm
    half_open = 0.5 * (pitch_um - bar_um) * 1e3 / px_nm
    angle = rng.uniform(0.0, 0.5 * math.pi)
    origin = (rim_c[0] + rng.uniform(0, pitch), rim_c[1] + rng.uniform(0, pitch))
    lattice = Lattice(origin, pitch, angle)
    imin, imax, jmin, jmax = lattice.index_range(shape)
    ni, nj = imax - imin + 1, jmax - jmin + 1
    grid_i, grid_j = np.meshgrid(
        np.arange(imin, imax + 1), np.arange(jmin, jmax + 1), indexing="ij"
    )
    centres = np.array(
        [
            lattice.node(float(i), float(j))
            for i, j in zip(grid_i.ravel(), grid_j.ravel(), strict=True)
        ]
    )
    g_dir = rng.uniform(0.0, 2.0 * math.pi)
    proj = (
        (centres[:, 0] - rim_c[0]) * math.sin(g_dir) + (centres[:, 1] - rim_c[1]) * math.cos(g_dir)
    ) / rim_r
    gradient = 55.0 + 30.0 * np.clip(proj, -1.0, 1.0)
    classes, ice, crack, broken = _square_params(rng, ni * nj, gradient)

    ci, cj, du, dv = lattice.coords(shape)
    cell = (np.clip(ci - imin, 0, ni - 1) * nj + np.clip(cj - jmin, 0, nj - 1)).astype(np.int32)
    edge = np.maximum(np.abs(du), np.abs(dv)) / np.float32(half_open)
    is_open = edge < 1.0
    thick = ice.astype(np.float32)[cell] * (1.0 + np.float32(0.3) * edge**6)
    nu, nv = du / np.float32(half_open), dv / np.float32(half_open)
    cr = crack.astype(np.float32)
    crack_d = np.abs(cr[cell, 0] * nu + cr[cell, 1] * nv - cr[cell, 2]) * np.float32(half_open)
    br = broken.astype(np.float32)
    vacuum = (crack_d < 0.5 * cr[cell, 3]) | (br[cell, 0] * nu + br[cell, 1] * nv > br[cell, 2])
    thick[vacuum] = 0.0
    trans = np.exp(thick * np.float32(-1.0 / MEAN_FREE_PATH_NM))
    trans[~is_open] = _OPAQUE
    ry = (np.arange(shape[0], dtype=np.float32) - np.float32(rim_c[0]))[:, None]
    rx = (np.arange(shape[1], dtype=np.float32) - np.float32(rim_c[1]))[None, :]
    trans[ry * ry + rx * rx > np.float32(rim_r * rim_r)] = _OPAQUE
    contaminated = [
        (int(a), int(b))
        for a, b, c in zip(grid_i.ravel(), grid_j.ravel(), classes, strict=True)
        if c == "contaminated"
    ]
    _add_contamination(rng, trans, lattice, contaminated, half_open)
    trans = gaussian_blur(trans, 1.0, workers=fft_workers)
    image = poisson_counts(rng, trans * np.float32(i0))

    squares: list[SquareTruth] = []
    corners = np.array([(-1, -1), (-1, 1), (1, -1), (1, 1)]) * half_open
    for k, (cy, cx) in enumerate(centres):
        i, j = int(grid_i.ravel()[k]), int(grid_j.ravel()[k])
        cy_c = [lattice.node(i + a / pitch, j + b / pitch) for a, b in corners]
        inside_img = all(0 <= y <= shape[0] - 1 and 0 <= x <= shape[1] - 1 for y, x in cy_c)
        in_rim = all(math.hypot(y - rim_c[0], x - rim_c[1]) < rim_r for y, x in cy_c)
        partly = math.hypot(cy - rim_c[0], cx - rim_c[1]) < rim_r + half_open and (
            -half_open < cy < shape[0] + half_open and -half_open < cx < shape[1] + half_open
        )
        if not partly:
            continue
        squares.append(
            SquareTruth(
                id=len(squares),
                centre=(float(cy), float(cx)),
                size_px=2 * half_open,
                cls=classes[k],
                ice_nm=float(ice[k]),
                fully_visible=inside_img and in_rim,
            )
        )
    truth = AtlasTruth(
        seed=seed,
        shape=(int(shape[0]), int(shape[1])),
        mesh=mesh,
        pixel_size_nm=px_nm,
        pitch_px=pitch,
        angle_deg=math.degrees(angle),
        i0=i0,
        rim_centre=(float(rim_c[0]), float(rim_c[1])),
        rim_radius_px=rim_r,
        squares=tuple(squares),
    )
    return image, truth
