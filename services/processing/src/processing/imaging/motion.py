"""Global frame alignment of dose-fractionated movies and the dose-weighted aligned sum.

Every frame is Fourier-transformed once at full size. Alignment runs on the central
(low-frequency) crop of those transforms, which is binning with ideal anti-aliasing:
iterative leave-one-out cross-correlation against the sum of the other aligned frames,
with a Gaussian low-pass and a 3-point Gaussian sub-pixel peak fit. The full-resolution sum
applies the shifts as phase ramps and Grant & Grigorieff (2015) exposure weights.
"""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
C64 = npt.NDArray[np.complex64]


@dataclasses.dataclass(frozen=True, eq=False)
class MotionResult:
    """Result of ``align_movie``.

    Attributes:
        shifts_px: ``(n_frames, 2)`` float64 ``(dy, dx)`` displacement of the specimen in each
            frame relative to frame 0 (full-resolution pixels); ``shifts_px[0] == (0, 0)``.
        summed: float32 aligned sum (dose-weighted if requested); its mean equals the mean
            of the plain frame sum, so it stays in electron counts.
        binning: the effective binning used for alignment.
    """

    shifts_px: F64
    summed: F32
    binning: int


def _ramp(n: int, shift: float, *, real_axis: bool) -> C64:
    """``exp(2 pi i f shift)`` over the frequencies of one FFT axis of length ``n``."""
    f = sfft.rfftfreq(n) if real_axis else sfft.fftfreq(n)
    return np.asarray(np.exp(2j * np.pi * f * shift), dtype=np.complex64)


def _crop(spec: C64, size: tuple[int, int]) -> C64:
    """Low-frequency crop of an ``rfft2`` half-plane to an image of ``size``."""
    hy = size[0] // 2
    out = np.empty((size[0], size[1] // 2 + 1), dtype=np.complex64)
    out[:hy] = spec[:hy, : size[1] // 2 + 1]
    out[hy:] = spec[-(size[0] - hy) :, : size[1] // 2 + 1]
    return out


def _peak(cc: F32, guess: tuple[float, float], radius: int) -> tuple[float, float]:
    """Sub-pixel maximum of a periodic correlation map near ``guess`` (3-point Gaussian)."""
    ny, nx = cc.shape
    gy, gx = int(round(guess[0])), int(round(guess[1]))
    oy = np.arange(gy - radius, gy + radius + 1)
    ox = np.arange(gx - radius, gx + radius + 1)
    win = cc[np.ix_(oy % ny, ox % nx)]
    ky, kx = np.unravel_index(int(np.argmax(win)), win.shape)
    py, px = int(oy[ky]), int(ox[kx])

    def sub(m: float, c: float, p: float) -> float:
        if min(m, c, p) > 0:
            m, c, p = math.log(m), math.log(c), math.log(p)
        den = m - 2 * c + p
        return 0.0 if den >= 0 else max(-0.5, min(0.5, 0.5 * (m - p) / den))

    dy = sub(cc[(py - 1) % ny, px % nx], cc[py % ny, px % nx], cc[(py + 1) % ny, px % nx])
    dx = sub(cc[py % ny, (px - 1) % nx], cc[py % ny, px % nx], cc[py % ny, (px + 1) % nx])
    return py + dy, px + dx


def _align(
    small: C64,
    size: tuple[int, int],
    iterations: int,
    sigma: float,
    workers: int,
    max_shift: int,
    start: F64 | None = None,
    tolerance: float = 0.02,
) -> F64:
    """Leave-one-out alignment of cropped frame spectra; shifts in cropped pixels."""
    n = small.shape[0]
    fy = sfft.fftfreq(size[0])[:, None]
    fx = sfft.rfftfreq(size[1])[None, :]
    lowpass = np.exp(-2 * (math.pi * sigma) ** 2 * (fy * fy + fx * fx)).astype(np.float32)
    weighted = small * lowpass[None]
    shifts = np.zeros((n, 2)) if start is None else start.copy()
    cross = np.empty_like(small)
    for _ in range(iterations):
        aligned = np.empty_like(small)
        for i in range(n):
            ramp_y = _ramp(size[0], shifts[i, 0], real_axis=False)[:, None]
            np.multiply(small[i], ramp_y, out=aligned[i])
            aligned[i] *= _ramp(size[1], shifts[i, 1], real_axis=True)[None, :]
        total = aligned.sum(axis=0)
        for i in range(n):
            # frame i against the sum of the other aligned frames
            np.subtract(total, aligned[i], out=cross[i])
            np.conjugate(cross[i], out=cross[i])
            cross[i] *= weighted[i]
        cc = np.asarray(sfft.irfft2(cross, s=size, workers=workers), dtype=np.float32)
        new = np.array([_peak(cc[i], (shifts[i, 0], shifts[i, 1]), max_shift) for i in range(n)])
        new -= new.mean(axis=0)
        change = float(np.abs(new - shifts).max())
        shifts = new
        if change < tolerance:
            break
    return shifts


def smooth_trajectory(shifts: F64, weight: float) -> F64:
    """Whittaker smoother: minimise ``|s - y|² + weight * |D² s|²`` per axis.

    The second differences at frames 1 and 2 are not penalised: the motion is fast at the
    start of an exposure and smooth afterwards.
    """
    n = len(shifts)
    if weight <= 0 or n < 4:
        return shifts
    d2 = np.zeros((n - 2, n))
    for k in range(n - 2):
        d2[k, k : k + 3] = (1.0, -2.0, 1.0)
    lam = np.full(n - 2, weight)
    lam[:2] = 0.0
    system = np.eye(n) + d2.T @ (lam[:, None] * d2)
    return np.asarray(np.linalg.solve(system, shifts), dtype=np.float64)


def critical_exposure(g_per_a: F32) -> F32:
    """Critical exposure (e/Å²) at frequency ``g`` (1/Å); Grant & Grigorieff 2015, 300 kV."""
    return (
        np.float32(0.245) * np.maximum(g_per_a, np.float32(1e-6)) ** np.float32(-1.665)
        + np.float32(2.81)
    ).astype(np.float32)


def align_movie(
    frames: npt.NDArray[np.floating],
    *,
    pixel_size_a: float | None = None,
    dose_per_frame_e_per_a2: float = 1.0,
    align_size: int = 1024,
    iterations: int = 8,
    lowpass_sigma_px: float = 1.5,
    smoothing: float = 4.0,
    max_shift_px: float = 80.0,
    dose_weighting: bool = True,
    voltage_kv: float = 300.0,
    fft_workers: int = 1,
) -> MotionResult:
    """Align the frames of a movie globally and sum them.

    Args:
        frames: ``(n_frames, rows, cols)`` gain-corrected counts, ``n_frames >= 2``.
        pixel_size_a: pixel size (Å, > 0), for the dose weights; ``None`` disables dose
            weighting (plain aligned sum).
        dose_per_frame_e_per_a2: exposure per frame (e/Å², > 0), for the dose weights.
        align_size: largest side of the Fourier crop the alignment runs on (the effective
            binning is ``max(rows, cols) / align_size``, at least 1).
        iterations: maximum alignment iterations (stops earlier once converged).
        lowpass_sigma_px: Gaussian low-pass of the correlation (full-resolution pixels).
        smoothing: weight of the second-difference penalty of the trajectory smoother (0 =
            raw per-frame estimates); the first two frames are exempt so that the initial
            jump is kept.
        max_shift_px: largest frame-to-reference shift searched (full-resolution pixels).
        dose_weighting: weight frequencies by exposure (Grant & Grigorieff 2015).
        voltage_kv: only 300 kV critical-exposure constants are built in; other voltages
            scale them by 0.8 (200 kV) as in the original paper.
        fft_workers: scipy.fft threads.
    Returns:
        Shifts relative to frame 0 and the full-resolution aligned sum.
    Raises:
        ValueError: if ``frames`` is not 3-D with at least 2 frames, or an argument is not
            positive.
    """
    if frames.ndim != 3 or frames.shape[0] < 2:
        raise ValueError(f"frames must be (n >= 2, rows, cols), got {frames.shape}")
    if (pixel_size_a is not None and not pixel_size_a > 0) or not dose_per_frame_e_per_a2 > 0:
        raise ValueError("pixel_size_a and dose_per_frame_e_per_a2 must be positive")
    n, ny, nx = frames.shape
    binning = max(1, math.ceil(max(ny, nx) / align_size))
    size = (2 * (ny // (2 * binning)), 2 * (nx // (2 * binning)))
    # Batches of frames: pocketfft threads scale across a batch far better than within one.
    spectra: list[C64] = []
    for start in range(0, n, 4):
        batch = sfft.rfft2(
            np.asarray(frames[start : start + 4], dtype=np.float32), workers=fft_workers
        )
        spectra.extend(batch[k] for k in range(batch.shape[0]))
    small = np.stack([_crop(s, size) for s in spectra])
    scale = (ny / size[0], nx / size[1])
    radius = max(3, int(math.ceil(max_shift_px / min(scale))))
    sigma = max(0.75, lowpass_sigma_px / min(scale))
    # Coarse-to-fine: converge on a half-size crop (4x cheaper), then polish at full crop.
    half = (2 * (size[0] // 4), 2 * (size[1] // 4))
    coarse = np.stack([_crop(s, half) for s in small])
    ratio = np.array([size[0] / half[0], size[1] / half[1]])
    first = _align(coarse, half, iterations, max(0.5, sigma / 2), fft_workers, max(3, radius // 2))
    shifts_small = _align(
        small, size, 3, sigma, fft_workers, 3, start=first * ratio, tolerance=0.005
    )
    shifts = smooth_trajectory(shifts_small * np.array(scale), smoothing)
    shifts = shifts - shifts[0]  # frame 0 is the reference of shifts and sum alike
    dose = dose_per_frame_e_per_a2 if dose_weighting and pixel_size_a is not None else 0.0
    px = pixel_size_a if pixel_size_a is not None else 1.0
    summed = _weighted_sum(spectra, shifts, (ny, nx), px, dose, voltage_kv, fft_workers)
    return MotionResult(shifts, summed, binning)


def _weighted_sum(
    spectra: list[C64],
    shifts: F64,
    shape: tuple[int, int],
    pixel_size_a: float,
    dose: float,
    voltage_kv: float,
    workers: int,
) -> F32:
    """Sum of shifted frames, ``n * sum_i w_i F_i / sum_i w_i`` (dose 0 = plain sum).

    Consumes ``spectra`` (multiplied in place). Row blocks run in ``workers`` threads: the
    element-wise passes release the GIL.
    """
    n = len(spectra)
    rows = spectra[0].shape[0]
    acc = np.zeros_like(spectra[0])
    fy = sfft.fftfreq(shape[0]).astype(np.float32)[:, None] / np.float32(pixel_size_a)
    fx = sfft.rfftfreq(shape[1]).astype(np.float32)[None, :] / np.float32(pixel_size_a)
    ramps_y = [_ramp(shape[0], s[0], real_axis=False)[:, None] for s in shifts]
    ramps_x = [_ramp(shape[1], s[1], real_axis=True)[None, :] for s in shifts]

    def block(r0: int, r1: int) -> None:
        q = w = None
        if dose > 0:
            crit = critical_exposure(np.sqrt(fy[r0:r1] * fy[r0:r1] + fx * fx))
            if voltage_kv < 250:
                crit *= np.float32(0.8)
            # w_i = exp(-N_i / (2 Ne)) with N_i = (i + 1/2) dose, so w_{i+1} = w_i * q.
            q = np.exp(np.float32(-dose / 2.0) / crit)
            w = np.sqrt(q)
        part = acc[r0:r1]
        for i, spec in enumerate(spectra):
            term = spec[r0:r1]
            term *= ramps_y[i][r0:r1]
            term *= ramps_x[i]
            if w is not None and q is not None:
                term *= w
                w *= q
            part += term
        if q is not None:
            # sum_i w_i = q^(1/2) (1 - q^n) / (1 - q), -> n where q -> 1 (low frequencies)
            one_minus = np.maximum(np.float32(1.0) - q, np.float32(1e-7))
            norm = np.sqrt(q) * (np.float32(1.0) - q**n) / one_minus
            norm = np.where(one_minus <= 1e-6, np.float32(n), norm)
            part *= np.float32(n) / norm

    bounds = np.linspace(0, rows, max(1, workers) + 1).astype(int)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(lambda k: block(int(bounds[k]), int(bounds[k + 1])), range(len(bounds) - 1)))
    return np.asarray(sfft.irfft2(acc, s=shape, workers=workers), dtype=np.float32)
