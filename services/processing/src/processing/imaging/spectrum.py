"""Averaged power spectra of micrographs (half-plane ``rfft2`` layout).

Two estimators: the mean periodogram of tiles (``power_spectrum``), and the periodogram of
the whole image averaged over frequency bins of a coarser grid (``binned_power``), which
needs the image's transform only — the motion correction already has it for the aligned sum.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft
from scipy import sparse

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
C64 = npt.NDArray[np.complex64]


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


def _bin_matrix(fine: F64, box: int, half: bool) -> sparse.csr_array:
    """Averaging matrix ``(coarse, fine)`` from frequencies ``fine`` (cycles/px) of one axis
    to the ``box``-pixel grid (fftfreq order, or 0 .. box/2 if ``half``).

    Each fine frequency is shared between its two nearest coarse ones with linear weights,
    so a coarse bin averages a triangle of fine ones reaching its neighbours: centred for any
    size ratio, and as wide as the main lobe a tile's edges give a tile periodogram (about
    as many independent values per bin, the same frequency resolution). Rows are
    normalised to averages.
    """
    u = fine * box  # position in coarse bins
    lo = np.floor(u)
    frac = u - lo
    n_coarse = box // 2 + 1 if half else box
    rows = np.concatenate([lo, lo + 1]).astype(np.intp)
    rows = np.clip(rows, 0, box // 2) if half else rows % box
    weights = np.concatenate([1.0 - frac, frac])
    cols = np.arange(fine.size)
    keep = weights > 0
    m = sparse.csr_array(
        (weights[keep], (rows[keep], np.concatenate([cols, cols])[keep])),
        shape=(n_coarse, fine.size),
    )
    total = np.asarray(m.sum(axis=1)).ravel()
    scale = sparse.diags_array(1.0 / np.maximum(total, 1e-12))
    return sparse.csr_array((scale @ m).astype(np.float32))


def binned_power(spectrum: C64, shape: tuple[int, int], box: int) -> F32:
    """Periodogram of a whole image averaged onto the frequency grid of a ``box`` tile.

    What a tile-averaged periodogram (``power_spectrum``) estimates, with less work: one
    transform of the image (here: given) and a sparse weighted average.

    Args:
        spectrum: ``rfft2`` of the image, ``(rows, cols // 2 + 1)``.
        shape: ``(rows, cols)`` of the image.
        box: output tile size (even, at most the smaller image side).
    Returns:
        Power of shape ``(box, box // 2 + 1)`` in ``rfft2`` layout, normalised as
        ``power_spectrum`` (white noise of variance v gives v). The zero-frequency bin is
        dominated by the image mean (tiles subtract theirs): it means nothing.
    Raises:
        ValueError: if the spectrum does not match ``shape`` or ``box`` does not fit.
    """
    ny, nx = shape
    if spectrum.shape != (ny, nx // 2 + 1):
        raise ValueError(f"spectrum {spectrum.shape} is not the rfft2 of an image {shape}")
    if box < 2 or box % 2 or box > min(ny, nx):
        raise ValueError(f"box {box} must be even and fit in the image {shape}")
    rows = sparse.csc_array(_bin_matrix(sfft.fftfreq(ny), box, half=False))
    cols = _bin_matrix(sfft.rfftfreq(nx), box, half=True)
    binned = np.zeros((box, spectrum.shape[1]), dtype=np.float32)
    step = max(1, (1 << 18) // spectrum.shape[1])  # row blocks of 1 MB: no big temporaries
    power = np.empty((step, spectrum.shape[1]), dtype=np.float32)
    square = np.empty_like(power)
    for r0 in range(0, ny, step):
        r1 = min(ny, r0 + step)
        block = spectrum[r0:r1]
        p, sq = power[: r1 - r0], square[: r1 - r0]
        np.multiply(block.real, block.real, out=p)
        np.multiply(block.imag, block.imag, out=sq)
        p += sq
        binned += rows[:, r0:r1] @ p
    binned *= np.float32(1.0 / (ny * nx))
    return np.ascontiguousarray((cols @ binned.T).T, dtype=np.float32)


def crop_into(out: C64, spec: C64) -> None:
    """Low-frequency crop of an ``rfft2`` half-plane into ``out`` (a smaller half-plane): the
    transform of the image binned with an ideal low-pass."""
    rows, cols = out.shape[0], out.shape[1]
    hy = rows // 2
    out[:hy] = spec[:hy, :cols]
    out[hy:] = spec[spec.shape[0] - (rows - hy) :, :cols]


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
