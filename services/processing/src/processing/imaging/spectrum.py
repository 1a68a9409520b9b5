"""Averaged power spectra of micrographs (tiles, half-plane ``rfft2`` layout)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

F32 = npt.NDArray[np.float32]


def tile_starts(length: int, box: int, stride: int) -> list[int]:
    """Start offsets of tiles of ``box`` along an axis of ``length`` (last one flush)."""
    if length < box:
        return []
    starts = list(range(0, length - box + 1, stride))
    if starts[-1] != length - box:
        starts.append(length - box)
    return starts


def power_spectrum(
    image: npt.NDArray[np.floating],
    *,
    box: int = 512,
    stride: int | None = None,
    fft_workers: int = 1,
) -> tuple[F32, int]:
    """Mean periodogram of mean-subtracted square tiles.

    Args:
        image: 2-D image at least ``box`` pixels on each side.
        box: tile side in pixels (even).
        stride: tile step (default ``box``, i.e. no overlap).
        fft_workers: scipy.fft threads.
    Returns:
        ``(power, n_tiles)`` with power of shape ``(box, box // 2 + 1)`` in ``rfft2`` layout
        (axis 0 in ``fftfreq`` order), normalised so white noise of variance v gives v.
    Raises:
        ValueError: if the image is not 2-D or smaller than ``box``.
    """
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    step = stride or box
    ys, xs = tile_starts(image.shape[0], box, step), tile_starts(image.shape[1], box, step)
    if not ys or not xs:
        raise ValueError(f"image {image.shape} is smaller than the {box}-pixel box")
    total = np.zeros((box, box // 2 + 1), dtype=np.float64)
    n = 0
    # One row of tiles per batch keeps memory small while still batching the FFTs.
    for y in ys:
        row = np.stack([np.asarray(image[y : y + box, x : x + box], dtype=np.float32) for x in xs])
        row -= row.mean(axis=(1, 2), keepdims=True)
        spec = sfft.rfft2(row, workers=fft_workers)
        total += (spec.real**2 + spec.imag**2).sum(axis=0)
        n += len(xs)
    return (total / (n * box * box)).astype(np.float32), n


def radius_grid(box: int) -> F32:
    """Radius in Fourier pixels of each element of a ``(box, box // 2 + 1)`` half-plane."""
    fy = sfft.fftfreq(box).astype(np.float32)[:, None] * box
    fx = sfft.rfftfreq(box).astype(np.float32)[None, :] * box
    return np.asarray(np.sqrt(fy * fy + fx * fx), dtype=np.float32)


def centred_full(power: F32) -> F32:
    """Full, centred ``(box, box)`` spectrum from the half-plane layout (for display)."""
    box = power.shape[0]
    full = np.empty((box, box), dtype=np.float32)
    full[:, box // 2 :] = sfft.fftshift(power, axes=0)[:, : box // 2]
    # Negative kx from Hermitian symmetry: P(ky, -m) = P(-ky, m).
    flipped = sfft.fftshift(power[(-np.arange(box)) % box, :], axes=0)
    full[:, : box // 2] = flipped[:, box // 2 : 0 : -1]
    return full
