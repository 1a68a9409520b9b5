"""Ice thickness from intensity ratios: ``d = mfp * ln(I0 / I)``."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

#: Inelastic mean free path of 300 kV electrons in vitreous ice (nm), zero-loss imaging.
DEFAULT_MFP_NM = 350.0


def ice_thickness_nm(intensity: float, i0: float, *, mfp_nm: float = DEFAULT_MFP_NM) -> float:
    """Ice thickness (nm) from a mean intensity and the vacuum intensity.

    Args:
        intensity: mean intensity through the ice (same units as ``i0``).
        i0: intensity through vacuum (> 0).
        mfp_nm: mean free path (> 0).
    Returns:
        ``mfp * ln(i0 / intensity)``; 0 when ``intensity >= i0``; ``inf`` if ``intensity <= 0``.
    Raises:
        ValueError: if ``i0`` or ``mfp_nm`` is not positive.
    """
    if not i0 > 0 or not mfp_nm > 0:
        raise ValueError("i0 and mfp_nm must be positive")
    if intensity <= 0:
        return math.inf
    return max(0.0, mfp_nm * math.log(i0 / intensity))


def ice_thickness_proxy(
    frame: npt.NDArray[np.floating],
    *,
    pixel_size_a: float,
    dose_e_per_a2: float,
    mfp_nm: float = DEFAULT_MFP_NM,
) -> float:
    """Ice thickness (nm) of an exposure from the log ratio of its mean counts to the dose.

    Args:
        frame: 2-D summed, gain-corrected frame in electron counts per pixel.
        pixel_size_a: pixel size in Å (> 0).
        dose_e_per_a2: total dose the summed frame received on vacuum (e/Å², > 0).
        mfp_nm: mean free path (> 0).
    Returns:
        ``mfp * ln(dose * px² / mean(frame))`` in nm (0 if the frame is brighter than vacuum).
    Raises:
        ValueError: if ``frame`` is not 2-D or an argument is not positive.
    """
    if frame.ndim != 2:
        raise ValueError(f"frame must be 2-D, got shape {frame.shape}")
    if not pixel_size_a > 0 or not dose_e_per_a2 > 0:
        raise ValueError("pixel_size_a and dose_e_per_a2 must be positive")
    mean = float(np.mean(frame, dtype=np.float64))
    return ice_thickness_nm(mean, dose_e_per_a2 * pixel_size_a**2, mfp_nm=mfp_nm)
