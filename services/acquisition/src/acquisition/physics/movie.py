"""Simulated dose-fractionated movies: drift trajectories, optional local motion, counts.

The specimen image is built once (see ``ctf.clean_image``) and each frame shows it shifted
by the trajectory, then Poisson-counted at the per-frame dose.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft
from scipy import ndimage

from acquisition.physics.ctf import MEAN_FREE_PATH_NM, TIERS, clean_image, draw_ctf
from acquisition.physics.noise import fourier_shift_real, poisson_counts
from acquisition.physics.truth import CtfTruth, MicrographTruth, MovieTruth

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def drift_trajectory(
    rng: np.random.Generator,
    n_frames: int,
    *,
    jump_px: tuple[float, float] = (1.0, 4.0),
    drift_px_per_frame: tuple[float, float] = (0.05, 0.3),
    jitter_px: float = 0.05,
) -> F64:
    """Global specimen positions ``(n_frames, 2)`` as ``(dy, dx)`` relative to frame 0.

    An initial jump (decaying over ~1.5 frames, magnitude drawn from ``jump_px``), then a
    steady drift in another random direction, plus white jitter of RMS ``jitter_px``.
    """
    t = np.arange(n_frames, dtype=np.float64)
    a_jump, a_drift = rng.uniform(0.0, 2.0 * math.pi, size=2)
    jump = rng.uniform(*jump_px) * (1.0 - np.exp(-t / 1.5))
    drift = rng.uniform(*drift_px_per_frame) * t
    jitter = rng.normal(0.0, jitter_px, size=(n_frames, 2))
    pos = np.empty((n_frames, 2))
    pos[:, 0] = jump * math.sin(a_jump) + drift * math.sin(a_drift)
    pos[:, 1] = jump * math.cos(a_jump) + drift * math.cos(a_drift)
    pos += jitter
    pos -= pos[0]
    return pos


def _local_frame(image: F32, shift: F64, amplitude: float, frac: float, coeffs: F64) -> F32:
    """Warp ``image`` by the global shift plus a smooth quadratic field scaled by ``frac``."""
    ny, nx = image.shape
    yy = np.linspace(-1.0, 1.0, ny, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, nx, dtype=np.float32)[None, :]
    a, b, c, d = (np.float32(v * amplitude * frac) for v in coeffs)
    uy = a * (xx * xx - yy * yy) + b * xx * yy
    ux = c * (xx * xx - yy * yy) + d * xx * yy
    rows = np.arange(ny, dtype=np.float32)[:, None] - np.float32(shift[0]) - uy
    cols = np.arange(nx, dtype=np.float32)[None, :] - np.float32(shift[1]) - ux
    coords = np.stack(np.broadcast_arrays(rows, cols))
    warped = ndimage.map_coordinates(image, coords, order=1, mode="grid-wrap")
    return np.asarray(warped, dtype=np.float32)


def simulate_movie(
    seed: int,
    *,
    shape: tuple[int, int] = (4096, 4096),
    n_frames: int = 40,
    pixel_size_a: float = 1.0,
    tier: str = "realistic",
    dose_per_frame_e_per_a2: float = 1.0,
    local_motion_px: float = 0.0,
    ctf: CtfTruth | None = None,
    fft_workers: int = 1,
) -> tuple[F32, MovieTruth]:
    """Simulate a movie ``(n_frames, rows, cols)`` of electron counts with its ground truth.

    Args:
        seed: RNG seed; equal seeds and arguments give bit-identical output.
        shape: frame shape (rows, columns).
        n_frames: number of frames (>= 2).
        pixel_size_a: pixel size in Å.
        tier: ``easy``, ``realistic`` or ``hard``.
        dose_per_frame_e_per_a2: dose per frame on vacuum (ice attenuates it).
        local_motion_px: peak amplitude of an extra smooth (quadratic) local motion that
            grows linearly over the movie; 0 disables it (and the slow warping path).
        ctf: force CTF parameters instead of drawing them for the tier.
        fft_workers: scipy.fft threads (does not change the result).
    Returns:
        ``(frames, truth)`` with float32 frames.
    Raises:
        KeyError: for an unknown tier.
        ValueError: if ``n_frames < 2``.
    """
    if n_frames < 2:
        raise ValueError("a movie needs at least two frames")
    spec_tier = TIERS[tier]
    rng = np.random.default_rng(seed)
    params = ctf if ctf is not None else draw_ctf(rng, spec_tier)
    ice = float(rng.uniform(*spec_tier.ice_range_nm))
    frame_px = dose_per_frame_e_per_a2 * pixel_size_a**2 * math.exp(-ice / MEAN_FREE_PATH_NM)
    total_px = frame_px * n_frames
    spec = clean_image(rng, shape, pixel_size_a, spec_tier, params, total_px, workers=fft_workers)
    spec *= np.float32(frame_px)
    shifts = drift_trajectory(rng, n_frames)
    coeffs = rng.uniform(-1.0, 1.0, size=4)
    still = None
    if local_motion_px > 0:
        still = sfft.irfft2(spec, s=shape, workers=fft_workers).astype(np.float32)
    frames = np.empty((n_frames, *shape), dtype=np.float32)
    for i in range(n_frames):
        if still is None:
            lam = fourier_shift_real(spec, shape, (shifts[i, 0], shifts[i, 1]), workers=fft_workers)
        else:
            lam = _local_frame(still, shifts[i], local_motion_px, i / (n_frames - 1), coeffs)
        frames[i] = poisson_counts(rng, lam)
    micrograph = MicrographTruth(
        seed=seed,
        tier=tier,
        shape=(int(shape[0]), int(shape[1])),
        pixel_size_a=pixel_size_a,
        dose_e_per_a2=dose_per_frame_e_per_a2 * n_frames,
        ice_nm=ice,
        ctf=params,
        spectral_snr=spec_tier.spectral_snr,
    )
    truth = MovieTruth(
        micrograph=micrograph,
        n_frames=n_frames,
        dose_per_frame_e_per_a2=dose_per_frame_e_per_a2,
        shifts_px=tuple((float(y), float(x)) for y, x in shifts),
        local_motion_px=local_motion_px,
    )
    return frames, truth
