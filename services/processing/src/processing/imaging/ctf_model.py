"""CTF phase model in CTFFIND conventions, shared by the fitter and the renderer.

Positive defocus = underfocus; ``defocus1 >= defocus2``; the astigmatism angle is the
direction of defocus1, counter-clockwise from +x (array axis 1) towards +y (axis 0).
``CTF = -sin(chi)``, ``chi = pi*lambda*g²*df(theta) - pi/2*Cs*lambda³*g⁴ + asin(ac)``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class Optics:
    """Microscope constants: voltage (kV), spherical aberration (mm), amplitude contrast."""

    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07

    @property
    def wavelength_a(self) -> float:
        """Relativistic electron wavelength (Å)."""
        v = self.voltage_kv * 1e3
        return 12.2643 / math.sqrt(v * (1.0 + 0.978466e-6 * v))

    @property
    def cs_a(self) -> float:
        """Spherical aberration in Å."""
        return self.cs_mm * 1e7

    @property
    def phase_offset(self) -> float:
        """Amplitude-contrast phase ``asin(ac)`` (rad)."""
        return math.asin(self.amplitude_contrast)


@dataclasses.dataclass(frozen=True)
class PlaneGrid:
    """Per-pixel quantities of selected half-plane spectrum pixels (Å⁻² for ``g2``)."""

    g2: F64
    dxx: F64  # gx² - gy²  (= g² cos 2θ)
    dxy: F64  # 2 gx gy    (= g² sin 2θ)
    radius: F64  # Fourier pixels

    def subset(self, keep: npt.NDArray[np.bool_]) -> PlaneGrid:
        """The grid restricted to ``keep``."""
        return PlaneGrid(self.g2[keep], self.dxx[keep], self.dxy[keep], self.radius[keep])


def plane_grid(box: int, pixel_size_a: float) -> PlaneGrid:
    """Grid of the full ``(box, box // 2 + 1)`` half-plane, flattened."""
    fy = np.broadcast_to(sfft.fftfreq(box)[:, None], (box, box // 2 + 1)) / pixel_size_a
    fx = np.broadcast_to(sfft.rfftfreq(box)[None, :], (box, box // 2 + 1)) / pixel_size_a
    gy, gx = fy.ravel(), fx.ravel()
    g2 = gy * gy + gx * gx
    return PlaneGrid(g2, gx * gx - gy * gy, 2 * gx * gy, np.sqrt(g2) * box * pixel_size_a)


def chi_2d(grid: PlaneGrid, mean_df: float, ax: float, ay: float, optics: Optics) -> F64:
    """Phase ``chi`` with ``df(θ) = mean + ax cos 2θ + ay sin 2θ`` (all Å)."""
    lam = optics.wavelength_a
    g2df = mean_df * grid.g2 + ax * grid.dxx + ay * grid.dxy
    return (
        math.pi * lam * g2df
        - 0.5 * math.pi * optics.cs_a * lam**3 * grid.g2 * grid.g2
        + optics.phase_offset
    )


def chi_1d(g2: F64, defocus_a: float, optics: Optics) -> F64:
    """Isotropic phase ``chi`` at squared frequencies ``g2`` (Å⁻²)."""
    lam = optics.wavelength_a
    return (
        math.pi * lam * defocus_a * g2
        - 0.5 * math.pi * optics.cs_a * lam**3 * g2 * g2
        + optics.phase_offset
    )


def to_principal(mean_df: float, ax: float, ay: float) -> tuple[float, float, float]:
    """``(defocus1, defocus2, angle_deg)`` with defocus1 >= defocus2 and angle in [0, 180)."""
    half = math.hypot(ax, ay)
    angle = (math.degrees(math.atan2(ay, ax)) / 2.0) % 180.0
    return mean_df + half, mean_df - half, angle


def from_principal(df1: float, df2: float, angle_deg: float) -> tuple[float, float, float]:
    """Inverse of ``to_principal``: ``(mean, ax, ay)``."""
    half = 0.5 * (df1 - df2)
    phi = 2.0 * math.radians(angle_deg)
    return 0.5 * (df1 + df2), half * math.cos(phi), half * math.sin(phi)


def equiphase_radius(
    grid: PlaneGrid, mean_df: float, ax: float, ay: float, optics: Optics, box: int, px: float
) -> F64:
    """Radius (Fourier pixels) at which an isotropic CTF of ``mean_df`` has the same phase."""
    lam = optics.wavelength_a
    a = 0.5 * math.pi * optics.cs_a * lam**3
    b = math.pi * lam * mean_df
    x = math.pi * lam * (mean_df * grid.g2 + ax * grid.dxx + ay * grid.dxy) - a * grid.g2**2
    disc = np.maximum(b * b - 4 * a * x, 0.0)
    u = 2 * x / (b + np.sqrt(disc))  # smaller root of a u² - b u + x = 0, stable form
    return np.sqrt(np.maximum(u, 0.0)) * box * px
