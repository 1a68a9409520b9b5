"""Random fields, Poisson counting and Fourier shifts shared by the image simulators.

Everything here is deterministic for a given ``numpy.random.Generator`` state.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# Above this mean count per pixel the normal approximation of the Poisson law (rounded to
# integers) is used: its skew error is < 1/sqrt(20) of a count and it is 4x faster.
_NORMAL_APPROX_MEAN = 20.0
_NEGLIGIBLE = 1e-12
"""A Poisson term this small no longer moves the CDF at the precision of a float32 draw."""


def poisson_counts(rng: np.random.Generator, lam: F32) -> F32:
    """Draw electron counts with mean ``lam`` per pixel.

    Exact inversion sampling when the mean count is low (movie frames, ~1 e/px); for mean
    counts above 20 per pixel the rounded normal approximation N(lam, lam) is used.

    Args:
        rng: the generator to draw from (advanced in place).
        lam: non-negative expected counts per pixel.
    Returns:
        float32 array of non-negative integer counts, same shape as ``lam``.
    """
    lam = np.maximum(np.asarray(lam, dtype=np.float32), np.float32(0.0))
    if lam.size and float(lam.mean()) > _NORMAL_APPROX_MEAN:
        noise = rng.standard_normal(lam.shape, dtype=np.float32)
        out = np.rint(lam + np.sqrt(lam) * noise)
        np.maximum(out, 0.0, out=out)
        return np.asarray(out, dtype=np.float32)
    # Inversion: count k is the number of Poisson CDF steps that u exceeds. The first steps
    # run on whole arrays (no gathers); the rare long tails finish on an index list.
    flat = lam.ravel()
    u = rng.random(flat.shape, dtype=np.float32)
    p = np.negative(flat)
    np.exp(p, out=p)
    cdf = p.copy()
    above = np.greater(u, cdf)
    counts = above.astype(np.float32)
    for k in range(1, 4):
        np.multiply(p, flat, out=p)
        np.multiply(p, np.float32(1.0 / k), out=p)
        np.add(cdf, p, out=cdf)
        np.greater(u, cdf, out=above)
        np.add(counts, above, out=counts)
    idx = np.flatnonzero(above)
    lam_a = flat[idx].astype(np.float64)
    p_a, cdf_a, u_a = p[idx].astype(np.float64), cdf[idx].astype(np.float64), u[idx]
    k = 3
    while idx.size and k < 1000:
        k += 1
        p_a = p_a * lam_a / k
        cdf_a = cdf_a + p_a
        # A u above the limit of the CDF as rounded (float32 for the first steps) would count
        # on to the cap: once a term is negligible the CDF has reached its limit, and the
        # count stands.
        keep = (u_a > cdf_a) & (p_a > _NEGLIGIBLE)
        idx, lam_a, p_a, cdf_a, u_a = idx[keep], lam_a[keep], p_a[keep], cdf_a[keep], u_a[keep]
        counts[idx] = k + 1
    return counts.reshape(lam.shape)


def freq_grid(shape: tuple[int, int]) -> tuple[F32, F32]:
    """Spatial frequencies (cycles/pixel) of an ``rfft2`` of ``shape``.

    Returns:
        ``(fy, fx)`` broadcastable to ``(shape[0], shape[1] // 2 + 1)``; ``fy`` runs along
        axis 0 (image rows, +y), ``fx`` along axis 1 (columns, +x).
    """
    fy = sfft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = sfft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    return fy, fx


def fourier_shift_real(
    spectrum: npt.NDArray[np.complex64],
    shape: tuple[int, int],
    shift_yx: tuple[float, float],
    *,
    workers: int = 1,
) -> F32:
    """Shift an image given by its ``rfft2`` so that content moves by ``shift_yx`` pixels.

    ``out(y, x) = img(y - dy, x - dx)`` with periodic boundaries.
    """
    fy, fx = freq_grid(shape)
    ey = np.exp(-2j * np.pi * fy * shift_yx[0]).astype(np.complex64)
    ex = np.exp(-2j * np.pi * fx * shift_yx[1]).astype(np.complex64)
    shifted = spectrum * ey
    shifted *= ex
    return np.asarray(sfft.irfft2(shifted, s=shape, workers=workers), dtype=np.float32)


def power_law_field(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    exponent: float,
    f_min: float,
    workers: int = 1,
) -> F32:
    """Zero-mean, unit-variance Gaussian field with amplitude spectrum ``~ 1/f**exponent``.

    Args:
        rng: generator.
        shape: output shape (rows, columns).
        exponent: 1.0 gives the classic 1/f amplitude (1/f² power) background.
        f_min: frequency (cycles/pixel) below which the spectrum is flat.
        workers: scipy.fft worker threads.
    """
    fy, fx = freq_grid(shape)
    f2 = np.maximum(fy * fy + fx * fx, np.float32(f_min * f_min))
    amp = f2 ** np.float32(-0.5 * exponent) if exponent != 1.0 else 1.0 / np.sqrt(f2)
    amp = amp.astype(np.float32, copy=False)
    amp[0, 0] = 0.0
    white = rng.standard_normal(shape, dtype=np.float32)
    field = sfft.irfft2(sfft.rfft2(white, workers=workers) * amp, s=shape, workers=workers)
    field = np.asarray(field, dtype=np.float32)
    std = float(field.std())
    if std > 0:
        field /= np.float32(std)
    return field


def gaussian_blur(image: F32, sigma_px: float, *, workers: int = 1) -> F32:
    """Periodic Gaussian blur through the FFT (fast for large images)."""
    fy, fx = freq_grid((image.shape[0], image.shape[1]))
    g = np.exp(np.float32(-2.0 * (np.pi * sigma_px) ** 2) * (fy * fy + fx * fx))
    out = sfft.irfft2(sfft.rfft2(image, workers=workers) * g, s=image.shape, workers=workers)
    return np.asarray(out, dtype=np.float32)
