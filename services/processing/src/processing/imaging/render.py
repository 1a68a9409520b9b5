"""PNG renderings for the UI: image thumbnails and power spectra (bytes, via pillow)."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft
from PIL import Image

from processing.imaging.lattice import bin_image
from processing.imaging.spectrum import centred_full, crop_into, power_spectrum

F32 = npt.NDArray[np.float32]
C64 = npt.NDArray[np.complex64]


def _to_png(gray: npt.NDArray[np.uint8]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _stretch(values: F32, low_pct: float, high_pct: float) -> npt.NDArray[np.uint8]:
    lo, hi = np.percentile(values, [low_pct, high_pct])
    if not hi > lo:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.asarray(np.clip(scaled, 0, 255), dtype=np.uint8)


def thumbnail_png(image: npt.NDArray[np.floating], *, max_side: int = 512) -> bytes:
    """8-bit PNG thumbnail, mean-binned so its longer side is at most ``max_side``.

    Contrast is stretched between the 0.5th and 99.5th percentiles.

    Raises:
        ValueError: if ``image`` is not 2-D or ``max_side < 1``.
    """
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    if max_side < 1:
        raise ValueError("max_side must be >= 1")
    factor = max(1, -(-max(image.shape) // max_side))
    small = bin_image(image, factor)
    return _to_png(_stretch(small, 0.5, 99.5))


def thumbnail_from_spectrum_png(
    spectrum: C64, shape: tuple[int, int], *, max_side: int = 512
) -> bytes:
    """``thumbnail_png`` of the image whose ``rfft2`` is ``spectrum``, without making the
    full-size image: the central crop of the transform is the image binned with an ideal
    low-pass (one small inverse FFT).

    Args:
        spectrum: ``rfft2`` half plane of an image of ``shape``.
        shape: ``(rows, cols)`` of the image.
        max_side: longer side of the thumbnail at most.
    Raises:
        ValueError: if ``spectrum`` does not match ``shape`` or ``max_side < 2``.
    """
    ny, nx = shape
    if spectrum.shape != (ny, nx // 2 + 1):
        raise ValueError(f"spectrum {spectrum.shape} is not the rfft2 of an image {shape}")
    if max_side < 2:
        raise ValueError("max_side must be >= 2")
    factor = max(1, -(-max(shape) // max_side))
    ty, tx = max(2, 2 * (ny // (2 * factor))), max(2, 2 * (nx // (2 * factor)))
    if factor == 1:
        ty, tx = ny, nx
    crop = np.empty((ty, tx // 2 + 1), dtype=np.complex64)
    crop_into(crop, spectrum)
    small = np.asarray(sfft.irfft2(crop, s=(ty, tx)), dtype=np.float32)
    return _to_png(_stretch(small, 0.5, 99.5))


def spectrum_png(image: npt.NDArray[np.floating], *, box: int = 512, fft_workers: int = 1) -> bytes:
    """Alias of ``power_spectrum_png``."""
    return power_spectrum_png(image, box=box, fft_workers=fft_workers)


def power_spectrum_png(
    image: npt.NDArray[np.floating], *, box: int = 512, fft_workers: int = 1
) -> bytes:
    """8-bit PNG of the centred, log-scaled tile-averaged power spectrum (``box`` x ``box``).

    The image is binned so that it holds at least four tiles.

    Raises:
        ValueError: if ``image`` is not 2-D or smaller than 16 pixels.
    """
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    size = min(box, 2 * (min(image.shape) // 4))
    if size < 16:
        raise ValueError(f"image {image.shape} is too small for a spectrum")
    power, _ = power_spectrum(image, box=size, fft_workers=fft_workers)
    return power_png(power)


def power_png(power: F32) -> bytes:
    """8-bit PNG of a power spectrum in ``rfft2`` layout ``(box, box // 2 + 1)``: centred,
    full plane, log-scaled, the zero-frequency spike hidden.

    Raises:
        ValueError: if ``power`` is not such a half plane with ``box >= 4``.
    """
    size = int(power.shape[0]) if power.ndim == 2 else 0
    if size < 4 or size % 2 or power.shape[1] != size // 2 + 1:
        raise ValueError(f"power must be (box, box // 2 + 1), got {power.shape}")
    full = np.log(centred_full(power) + np.float32(1e-12))
    c = size // 2
    full[c - 1 : c + 2, c - 1 : c + 2] = np.median(full)  # hide the DC spike
    return _to_png(_stretch(full, 1.0, 99.8))
