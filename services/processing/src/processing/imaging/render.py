"""PNG renderings for the UI: image thumbnails and power spectra (bytes, via pillow)."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image

from processing.imaging.lattice import bin_image
from processing.imaging.spectrum import centred_full, power_spectrum

F32 = npt.NDArray[np.float32]


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
    full = np.log(centred_full(power) + np.float32(1e-12))
    c = size // 2
    full[c - 1 : c + 2, c - 1 : c + 2] = np.median(full)  # hide the DC spike
    return _to_png(_stretch(full, 1.0, 99.8))
