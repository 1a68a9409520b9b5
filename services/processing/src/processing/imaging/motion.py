"""Global frame alignment of dose-fractionated movies and the dose-weighted aligned sum.

Every frame is Fourier-transformed once, at full size and in float32; those transforms make
the sum, and their central (low-frequency) crops, which are binning with ideal anti-aliasing,
are what the alignment sees. Only the low frequencies the crops need are transformed before
the alignment; the rest of each transform is finished block by block inside the weighted sum,
while the block is in cache, so a frame crosses memory as few times as it can (two workers on
one machine share its memory bandwidth: with one pass more they scaled 1.5-1.7x, not 2x).

Alignment: iterative leave-one-out cross-correlation against the sum of the other aligned
frames, with a Gaussian low-pass. Each correlation is evaluated only
in a small window around the current estimate, by matrix DFTs (no inverse FFT of whole maps),
and refined by a 3-point Gaussian fit on samples centred on the estimate, so the iteration
settles where the peak is symmetric. The full-resolution sum applies the shifts as phase
ramps and Grant & Grigorieff (2015) exposure weights in one cache-blocked pass over the
transforms; the pipeline uses its Fourier transform directly (``MotionResult.spectrum``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from processing.imaging.spectrum import crop_into

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
C64 = npt.NDArray[np.complex64]

_BLOCK_ELEMENTS = 1 << 15
"""Complex elements per row block of the weighted sum (256 kB: stays in a core's L2)."""


class NonFiniteFrame(ValueError):
    """A frame holds NaN or infinite values (found from its transform's zero frequency)."""


@dataclasses.dataclass(frozen=True, eq=False)
class MotionResult:
    """Result of ``align_movie``.

    Attributes:
        shifts_px: ``(n_frames, 2)`` float64 ``(dy, dx)`` displacement of the specimen in each
            frame relative to frame 0 (full-resolution pixels); ``shifts_px[0] == (0, 0)``.
        spectrum: ``rfft2`` (half plane, complex64) of the aligned sum.
        shape: ``(rows, cols)`` of the sum.
        binning: the effective binning used for alignment.
    """

    shifts_px: F64
    spectrum: C64
    shape: tuple[int, int]
    binning: int
    fft_workers: int = 1

    @functools.cached_property
    def summed(self) -> F32:
        """Float32 aligned sum (dose-weighted if requested); its mean equals the mean of the
        plain frame sum, so it stays in electron counts. Computed on first use unless
        ``align_movie`` was asked for it."""
        out = sfft.irfft2(self.spectrum, s=self.shape, workers=self.fft_workers)
        return np.asarray(out, dtype=np.float32)


def _ramp(n: int, shift: float, *, real_axis: bool) -> C64:
    """``exp(2 pi i f shift)`` over the frequencies of one FFT axis of length ``n``."""
    f = sfft.rfftfreq(n) if real_axis else sfft.fftfreq(n)
    return np.asarray(np.exp(2j * np.pi * f * shift), dtype=np.complex64)


class _Workspace:
    """Buffers reused from one movie to the next (per process, one movie at a time).

    A 40 × 4096² movie needs 2.7 GB of transforms. Fresh memory costs a page fault per
    page on first touch, and on a VM far more than the FFT that fills it (measured: 2.3
    CPU-s for 640 MB of never-used memory, 0.4–0.6 s with 4 kB pages, against 0.1 s for
    memory the process already has), so the worker keeps these and writes every transform in
    place; it also keeps the dose weights, which depend on the acquisition settings only.
    Only one caller at a time gets them; a concurrent one gets fresh buffers.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffers: dict[tuple[str, tuple[int, ...], str], npt.NDArray[np.generic]] = {}
        self._weights: tuple[tuple[Any, ...], tuple[F32, F32]] | None = None

    @contextlib.contextmanager
    def borrow(self) -> Iterator[_Workspace | None]:
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            yield self
        finally:
            self._lock.release()

    def weights(
        self, key: tuple[Any, ...], make: Callable[..., tuple[F32, F32]]
    ) -> tuple[F32, F32]:
        """``make(*key)``, kept for the next movie with the same ``key`` (one key at a time)."""
        if self._weights is None or self._weights[0] != key:
            self._weights = None  # free the old ones first
            self._weights = (key, make(*key))
        return self._weights[1]

    def get(self, name: str, shape: tuple[int, ...], dtype: type[np.generic]) -> npt.NDArray[Any]:
        key = (name, shape, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            for old in [k for k in self._buffers if k[0] == name]:
                del self._buffers[old]  # another movie size: drop the old one first
            buf = self._buffers[key] = np.empty(shape, dtype=dtype)
        return buf


_WORKSPACE = _Workspace()


def _buffer(
    ws: _Workspace | None, name: str, shape: tuple[int, ...], dtype: type[np.generic]
) -> npt.NDArray[Any]:
    return ws.get(name, shape, dtype) if ws is not None else np.empty(shape, dtype=dtype)


_ROW_BLOCK_BYTES = 1 << 20
"""Float32 input per block of the rows' real FFTs (1 MB: a block and its transform stay in a
core's L2 until the transposed copy)."""


def _rfft_rows_transposed(frame: npt.NDArray[np.generic], out: C64, stage: F32) -> None:
    """Real FFTs of the rows of ``frame`` ``(rows, cols)``, any real dtype, into ``out``
    ``(cols // 2 + 1, rows)``, transposed: a block of rows at a time, converted to float32 in
    ``stage`` (at least one block) and copied while its transform is small (scipy.fft has no
    ``out``; writing straight into the transposed view through pocketfft's own module
    measured no faster)."""
    rows = stage.shape[0]
    direct = frame.dtype == np.float32 and frame.flags.c_contiguous
    for r0 in range(0, frame.shape[0], rows):
        part = frame[r0 : r0 + rows]
        if not direct:
            np.copyto(stage[: len(part)], part, casting="unsafe")
            part = stage[: len(part)]
        out[:, r0 : r0 + rows] = sfft.rfft(part, axis=-1, workers=1).T


def _fft_rows_in_place(x: C64) -> None:
    """Complex FFTs along the last (contiguous) axis of ``x``, written back into ``x``."""
    done = sfft.fft(x, axis=-1, workers=1, overwrite_x=True)
    if not np.shares_memory(done, x):  # in place is what scipy does, not what it promises
        x[...] = done


def _transform(
    frames: npt.NDArray[np.generic], size: tuple[int, int], workers: int, ws: _Workspace | None
) -> tuple[C64, C64]:
    """Full-size float32 transforms of all frames, **transposed** and only partly finished,
    and their central crops to ``size`` in the usual layout.

    ``spectra[k]`` has the shape ``(cols // 2 + 1, rows)``: the ``rfft2`` half plane with its
    axes swapped. Its first ``size[1] // 2 + 1`` rows (the low ``kx`` the crop needs) are
    finished; the others hold only the real FFTs of the image rows, and ``_weighted_sum``
    does their second FFT while the block is in cache (a pass over memory less per frame,
    the resource two workers on one machine share worst).

    Per frame: real FFTs of the image rows, a block of rows at a time converted from the
    frame's dtype (no full-size float copy) and written transposed; then complex FFTs of the
    low-``kx`` rows, now contiguous, in place. With ``workers`` > 1 the frames are shared out
    between that many threads, each transforming whole frames on its own (pocketfft's own
    threads only sped up the FFTs). Raises ``NonFiniteFrame`` for the first frame whose zero
    frequency (its sum) is not finite, which any NaN or infinity in it makes so.
    """
    n, ny, nx = frames.shape
    spectra = _buffer(ws, "spectra", (n, nx // 2 + 1, ny), np.complex64)
    small = _buffer(ws, "small", (n, size[0], size[1] // 2 + 1), np.complex64)
    threads = max(1, min(workers, n))
    stage_shape = (max(1, _ROW_BLOCK_BYTES // (4 * nx)), nx)
    stages = [_buffer(ws, f"stage{t}", stage_shape, np.float32) for t in range(threads)]
    hy, cx = size[0] // 2, size[1] // 2 + 1

    def one(k: int, stage: F32) -> bool:
        out = spectra[k]
        _rfft_rows_transposed(frames[k], out, stage)
        low = out[:cx]
        _fft_rows_in_place(low)
        small[k, :hy] = low[:, :hy].T
        small[k, hy:] = low[:, ny - (size[0] - hy) :].T
        return bool(np.isfinite(out[0, 0]))

    def share(t: int) -> list[int]:
        """The frames of thread ``t`` that are not finite (it stops at the first)."""
        for k in range(t, n, threads):
            if not one(k, stages[t]):
                return [k]
        return []

    if threads == 1:
        bad = share(0)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            bad = [k for found in pool.map(share, range(threads)) for k in found]
    if bad:
        raise NonFiniteFrame(f"frame {min(bad)} contains NaN or infinite values")
    return spectra, small


@dataclasses.dataclass(frozen=True, eq=False)
class _Grid:
    """Frequencies of a cropped half-plane and the weights that make its sums real maps."""

    fy: F64  # cycles per pixel, fftfreq order
    fx: F64  # cycles per pixel, 0 .. 1/2
    column_weight: F64  # 1 for the zero (and Nyquist) column, 2 for the others
    _offsets_by_radius: dict[int, tuple[C64, C64]] = dataclasses.field(default_factory=dict)

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def of(size: tuple[int, int]) -> _Grid:
        fx = sfft.rfftfreq(size[1])
        weight = np.full(fx.shape, 2.0)
        weight[0] = 1.0
        if size[1] % 2 == 0:
            weight[-1] = 1.0
        return _Grid(sfft.fftfreq(size[0]), fx, weight)

    def window(self, centre: F64, radius: int) -> tuple[C64, C64]:
        """Matrices evaluating a map at ``centre + (-radius .. radius)`` on both axes:
        ``(w, rows)`` for y and ``(cols, w)`` for x (column weights folded in)."""
        oy, ox = self.offsets(radius)
        ey = np.exp(2j * np.pi * centre[0] * self.fy).astype(np.complex64)[None, :] * oy
        ex = np.exp(2j * np.pi * centre[1] * self.fx).astype(np.complex64)[:, None] * ox
        return ey, ex

    def offsets(self, radius: int) -> tuple[C64, C64]:
        """``window`` at centre 0 (kept: a few radii per grid)."""
        if radius not in self._offsets_by_radius:
            o = np.arange(-radius, radius + 1, dtype=np.float64)
            oy = np.exp(2j * np.pi * o[:, None] * self.fy[None, :]).astype(np.complex64)
            ox = np.exp(2j * np.pi * self.fx[:, None] * o[None, :]) * self.column_weight[:, None]
            self._offsets_by_radius[radius] = (oy, ox.astype(np.complex64))
        return self._offsets_by_radius[radius]


def _sub(m: float, c: float, p: float) -> float:
    """Offset of the maximum of a 3-point Gaussian (log-parabola) through ``m, c, p``."""
    if min(m, c, p) > 0:
        m, c, p = math.log(m), math.log(c), math.log(p)
    den = m - 2 * c + p
    return 0.0 if den >= 0 else max(-0.5, min(0.5, 0.5 * (m - p) / den))


def _windows(values: npt.NDArray[Any], oy: C64, ox: C64) -> F64:
    """``Re(oy @ values[:, i, :] @ ox)`` for every ``i`` of ``values`` ``(rows, n, cols)``, in
    two matrix products over all of them (a few large products, not one small one per frame:
    BLAS threads, where there are any, then have work worth waking for)."""
    rows, n, cols = values.shape
    w = oy.shape[0]
    if np.iscomplexobj(values):
        left = oy @ values.reshape(rows, n * cols)  # (w, n * cols)
        left = left.reshape(w, n, cols).transpose(1, 0, 2).reshape(n * w, cols)
        out = (left @ ox).real
    else:
        re = (oy.real @ values.reshape(rows, n * cols)).reshape(w, n, cols)
        im = (oy.imag @ values.reshape(rows, n * cols)).reshape(w, n, cols)
        re = re.transpose(1, 0, 2).reshape(n * w, cols)
        im = im.transpose(1, 0, 2).reshape(n * w, cols)
        out = re @ ox.real - im @ ox.imag
    return np.asarray(out, dtype=np.float64).reshape(n, w, w)


def _align(
    spectra: C64,
    size: tuple[int, int],
    iterations: int,
    sigma: float,
    max_shift: int,
    ws: _Workspace | None,
    start: F64 | None = None,
    tolerance: float = 0.02,
) -> F64:
    """Leave-one-out alignment of cropped frame spectra; shifts in cropped pixels.

    The correlation of frame ``i`` with the sum of the *other* aligned frames is
    ``conj(T - A_i) W_i`` with ``T = sum_j A_j``, ``A_i = F_i ramp(s_i)``, ``W_i = F_i L``;
    near ``s_i``, at ``s_i + o``, it is the transform of ``conj(T) L A_i`` at ``o`` minus
    the self part: ``conj(A_i) W_i = |F_i|² L conj(ramp(s_i))``, the low-passed
    autocorrelation of frame ``i`` moved to ``s_i``, which at ``s_i + o`` does not depend on
    the shifts and is computed once (``auto``). With the ``A_i`` side by side, one pair of
    matrix products gives every frame's window.
    """
    n, rows, cols = spectra.shape
    grid = _Grid.of(size)
    max_shift = max(1, min(max_shift, min(size) // 2 - 2))
    lowpass = np.exp(
        -2 * (math.pi * sigma) ** 2 * (grid.fy[:, None] ** 2 + grid.fx[None, :] ** 2)
    ).astype(np.float32)
    # Without the mean the correlation is zero-mean: its peak is not a 1e-5 ripple on a huge
    # constant, which float32 sums could not resolve to a fraction of a pixel.
    lowpass[0, 0] = 0.0
    reach = max_shift + 2
    chunk = min(n, 8)
    power = np.empty((rows, chunk, cols), dtype=np.float32)
    auto = np.empty((n, 2 * reach + 1, 2 * reach + 1))
    for first in range(0, n, chunk):
        m = min(chunk, n - first)
        part = power if m == chunk else np.empty((rows, m, cols), dtype=np.float32)
        for k in range(m):
            f = spectra[first + k]
            np.multiply(f.real, f.real, out=part[:, k])
            part[:, k] += f.imag * f.imag
            part[:, k] *= lowpass
        auto[first : first + m] = _windows(part, *grid.offsets(reach))
    del power
    aligned = _buffer(ws, f"aligned{size}", (rows, n, cols), np.complex64)
    shifts = np.zeros((n, 2)) if start is None else start.copy()
    total = np.empty((rows, cols), dtype=np.complex64)
    radius = max_shift if start is None else 2
    for _ in range(iterations):
        total[...] = 0
        for i in range(n):
            slot = aligned[:, i]
            np.multiply(spectra[i], _ramp(size[1], shifts[i, 1], real_axis=True), out=slot)
            slot *= _ramp(size[0], shifts[i, 0], real_axis=False)[:, None]
            total += slot
        np.conjugate(total, out=total)
        total *= lowpass
        for i in range(n):
            aligned[:, i] *= total
        cc = _windows(aligned, *grid.offsets(radius))
        cc -= auto[:, reach - radius : reach + radius + 1, reach - radius : reach + radius + 1]
        new = np.array(
            [
                shifts[i] + _peak(cc[i], aligned[:, i], auto[i], grid, radius, reach)
                for i in range(n)
            ]
        )
        new -= new.mean(axis=0)
        change = float(np.abs(new - shifts).max())
        shifts = new
        radius = 2
        if change < tolerance:
            break
    return shifts


def _peak(
    cc: F64, product: C64, auto: F64, grid: _Grid, radius: int, reach: int
) -> npt.NDArray[np.float64]:
    """Sub-pixel offset of the maximum of a window ``cc`` of correlations at integer offsets
    ``-radius .. radius`` (``IDFT(product)(o) - auto(o)``).

    While the maximum sits on the window's edge, the window follows it (evaluated from
    ``product``), as far as ``auto`` (known within ``reach``) allows. The 3-point Gaussian
    fit runs on samples at integer offsets from the current estimate: as the alignment
    iterates, the samples end up symmetric about the peak, where such a fit has no bias.
    """
    at = np.zeros(2, dtype=np.intp)  # window centre
    while True:
        ky, kx = np.unravel_index(int(np.argmax(cc)), cc.shape)
        step = np.array([ky - radius, kx - radius], dtype=np.intp)
        edge = (ky in (0, 2 * radius)) or (kx in (0, 2 * radius))
        if not edge or np.abs(at + step).max() + radius > reach:
            break
        at += step
        ey, ex = grid.window(at.astype(np.float64), radius)
        c0, c1 = reach + int(at[0]), reach + int(at[1])
        cc = (ey @ product @ ex).real - auto[
            c0 - radius : c0 + radius + 1, c1 - radius : c1 + radius + 1
        ]
    offset = (at + step).astype(np.float64)
    if not edge:
        offset[0] += _sub(float(cc[ky - 1, kx]), float(cc[ky, kx]), float(cc[ky + 1, kx]))
        offset[1] += _sub(float(cc[ky, kx - 1]), float(cc[ky, kx]), float(cc[ky, kx + 1]))
    return offset


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
    frames: npt.NDArray[np.generic],
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
    real_space_sum: bool = True,
) -> MotionResult:
    """Align the frames of a movie globally and sum them.

    Args:
        frames: ``(n_frames, rows, cols)`` gain-corrected counts, ``n_frames >= 2``, any real
            dtype (a read-only memory map is fine: frames are converted a few at a time).
        pixel_size_a: pixel size (Å, > 0), for the dose weights; ``None`` disables dose
            weighting (plain aligned sum).
        dose_per_frame_e_per_a2: exposure per frame (e/Å², > 0), for the dose weights.
        align_size: largest side of the Fourier crop the alignment runs on (the effective
            binning is ``max(rows, cols) / align_size``, at least 1).
        iterations: maximum alignment iterations on the half-size crop (stops earlier once
            converged); one more follows on the full crop.
        lowpass_sigma_px: Gaussian low-pass of the correlation (full-resolution pixels).
        smoothing: weight of the second-difference penalty of the trajectory smoother (0 =
            raw per-frame estimates); the first two frames are exempt so that the initial
            jump is kept.
        max_shift_px: largest frame-to-reference shift searched (full-resolution pixels).
        dose_weighting: weight frequencies by exposure (Grant & Grigorieff 2015).
        voltage_kv: only 300 kV critical-exposure constants are built in; other voltages
            scale them by 0.8 (200 kV) as in the original paper.
        fft_workers: scipy.fft threads (and threads of the weighted sum).
        real_space_sum: compute the real-space sum (``MotionResult.summed``) now; without
            it, the sum exists as ``MotionResult.spectrum`` and ``summed`` is computed on
            first use.
    Returns:
        Shifts relative to frame 0 and the full-resolution aligned sum.
    Raises:
        ValueError: if ``frames`` is not 3-D with at least 2 frames, or an argument is not
            positive.
        NonFiniteFrame: (a ``ValueError``) if a frame contains NaN or infinite values.
    """
    if frames.ndim != 3 or frames.shape[0] < 2:
        raise ValueError(f"frames must be (n >= 2, rows, cols), got {frames.shape}")
    if (pixel_size_a is not None and not pixel_size_a > 0) or not dose_per_frame_e_per_a2 > 0:
        raise ValueError("pixel_size_a and dose_per_frame_e_per_a2 must be positive")
    n, ny, nx = frames.shape
    binning = max(1, math.ceil(max(ny, nx) / align_size))
    size = (2 * (ny // (2 * binning)), 2 * (nx // (2 * binning)))
    scale = (ny / size[0], nx / size[1])
    radius = max(3, int(math.ceil(max_shift_px / min(scale))))
    sigma = max(0.75, lowpass_sigma_px / min(scale))
    dose = dose_per_frame_e_per_a2 if dose_weighting and pixel_size_a is not None else 0.0
    px = pixel_size_a if pixel_size_a is not None else 1.0
    with _WORKSPACE.borrow() as ws:
        spectra, small = _transform(frames, size, fft_workers, ws)
        # Coarse-to-fine: converge on a half-size crop (4x cheaper), then one pass at the full
        # crop (a second moved the trajectory RMS by 0.001 px on 4096² test movies).
        half = (2 * (size[0] // 4), 2 * (size[1] // 4))
        coarse = _buffer(ws, "coarse", (n, half[0], half[1] // 2 + 1), np.complex64)
        for i in range(n):
            crop_into(coarse[i], small[i])
        ratio = np.array([size[0] / half[0], size[1] / half[1]])
        first = _align(coarse, half, iterations, max(0.5, sigma / 2), max(3, radius // 2), ws)
        fine = _align(small, size, 1, sigma, 3, ws, start=first * ratio)
        shifts = smooth_trajectory(fine * np.array(scale), smoothing)
        shifts = shifts - shifts[0]  # frame 0 is the reference of shifts and sum alike
        spectrum = _weighted_sum(
            spectra, size[1] // 2 + 1, shifts, (ny, nx), px, dose, voltage_kv, fft_workers, ws
        )
    result = MotionResult(shifts, spectrum, (ny, nx), binning, fft_workers)
    if real_space_sum:
        _ = result.summed
    return result


def _dose_weights(
    shape: tuple[int, int], pixel_size_a: float, dose: float, voltage_kv: float, n: int
) -> tuple[F32, F32]:
    """``q`` and ``n (1 - q) / (1 - q^n)`` of ``_weighted_sum`` on the transposed half plane
    ``(cols // 2 + 1, rows)``, each value twice in a row (for the float view of complex
    data). Five transcendental functions per frequency: a session's movies share them."""
    fx = (sfft.rfftfreq(shape[1]) / pixel_size_a).astype(np.float32)
    fy = (sfft.fftfreq(shape[0]) / pixel_size_a).astype(np.float32)
    crit = critical_exposure(np.sqrt(fx[:, None] ** 2 + fy[None, :] ** 2))
    if voltage_kv < 250:
        crit *= np.float32(0.8)
    a = np.float32(dose / 2.0) / crit  # -ln q
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.float32(n) * np.expm1(-a) / np.expm1(-np.float32(n) * a)
    norm = np.where(a > 0, norm, np.float32(1.0))
    return (
        np.repeat(np.exp(-a), 2, axis=1).astype(np.float32),
        np.repeat(norm, 2, axis=1).astype(np.float32),
    )


def _weighted_sum(
    spectra: C64,
    finished: int,
    shifts: F64,
    shape: tuple[int, int],
    pixel_size_a: float,
    dose: float,
    voltage_kv: float,
    workers: int,
    ws: _Workspace | None = None,
) -> C64:
    """Spectrum of the shifted frames' sum, ``n * sum_i w_i F_i / sum_i w_i`` (dose 0 = plain).

    ``spectra`` are the transposed transforms of ``_transform``, whose rows from ``finished``
    on still need their second FFT: each block of them gets it, frame by frame, in a small
    buffer just before it is used. The result is an ordinary ``rfft2`` half plane.

    With ``w_i = q^(i + 1/2)`` (``q = exp(-dose / (2 Ne(g)))``, the exposure of frame ``i``
    being ``(i + 1/2) dose``), ``sum_i q^i X_i`` is evaluated by Horner's scheme over blocks of
    ``kx`` rows small enough for a core's cache, scaled by ``n (1 - q) / (1 - q^n)`` and written
    back transposed. The phase ramp of frame ``i`` on rows ``r0 + j`` of a block is ``c_i(r0)
    u_i(j) ry_i``: ``u_i ⊗ ry_i`` is one array per frame for every block, ``c_i(r0)`` a number,
    so a frame costs one multiplication by a stored array, one by a number, the real ``q`` and
    an addition per element (numpy's broadcasting loops would take twice as long). Blocks run in
    ``workers`` threads (numpy releases the GIL in these loops). The weights are kept in ``ws``
    for the next movie.
    """
    n, rows, cols = spectra.shape  # rows: kx = 0 .. nx/2; cols: ky in fftfreq order
    acc = np.empty((cols, rows), dtype=np.complex64)
    fx = sfft.rfftfreq(shape[1])
    block = max(1, min(rows, _BLOCK_ELEMENTS // cols))
    j = np.arange(block)
    ramps_y = np.exp(2j * np.pi * sfft.fftfreq(shape[0])[None, :] * shifts[:, :1])
    steps = np.exp(2j * np.pi * (j[None, :] / shape[1]) * shifts[:, 1:2])  # u_i(j)
    unit = (steps[:, :, None] * ramps_y[:, None, :]).astype(np.complex64)  # (n, block, cols)
    weights = None
    if dose > 0:
        key = (shape, pixel_size_a, dose, voltage_kv, n)
        weights = ws.weights(key, _dose_weights) if ws is not None else _dose_weights(*key)

    def run(spans: list[tuple[int, int]]) -> None:
        buffer = np.empty((block, cols), dtype=np.complex64)
        term = np.empty_like(buffer)
        for r0, r1 in spans:
            part, t = buffer[: r1 - r0], term[: r1 - r0]
            u = unit[:, : r1 - r0]
            start = np.exp(2j * np.pi * fx[r0] * shifts[:, 1]).astype(np.complex64)  # c_i(r0)
            part[...] = 0
            for i in range(n - 1, -1, -1):
                if weights is not None and i < n - 1:
                    np.multiply(part.view(np.float32), weights[0][r0:r1], out=part.view(np.float32))
                if r0 < finished:
                    np.multiply(spectra[i, r0:r1], u[i], out=t)
                else:
                    t[...] = spectra[i, r0:r1]
                    _fft_rows_in_place(t)
                    t *= u[i]
                t *= start[i]
                part += t
            if weights is not None:
                part.view(np.float32)[...] *= weights[1][r0:r1]
            acc[:, r0:r1] = part.T

    finished = max(0, min(finished, rows))
    spans = [
        (r0, min(r0 + block, end))
        for begin, end in ((0, finished), (finished, rows))
        for r0 in range(begin, end, block)
    ]
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, [spans[k::workers] for k in range(workers)]))
    else:
        run(spans)
    # Columns 0 and (even width) N/2 of a half plane pair with themselves under Hermitian
    # symmetry; phase ramps of sub-pixel shifts break that at the Nyquist frequencies. Keep
    # the consistent part, as the inverse transform would, so ``spectrum`` is the sum's.
    for c in (0, rows - 1) if shape[1] % 2 == 0 else (0,):
        column = acc[:, c].copy()
        acc[:, c] = 0.5 * (column + np.conj(column[(-np.arange(cols)) % cols]))
    return acc
