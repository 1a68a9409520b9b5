"""Frame alignment against simulated trajectories (reduced size; accuracy targets asserted)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from acquisition.physics import simulate_movie
from processing.imaging import align_movie
from processing.imaging.motion import smooth_trajectory


def _rms(seed: int) -> tuple[float, float, float]:
    frames, truth = simulate_movie(seed, shape=(1024, 1024), n_frames=20, fft_workers=2)
    result = align_movie(frames, pixel_size_a=1.0, fft_workers=2)
    assert result.shifts_px.shape == (20, 2)
    assert tuple(result.shifts_px[0]) == (0.0, 0.0)
    diff = result.shifts_px - np.array(truth.shifts_px)
    diff -= diff.mean(axis=0)
    rms = float(np.sqrt((diff**2).sum(axis=1).mean()))
    return rms, float(result.summed.mean()), float(frames.sum(axis=0).mean())


def test_trajectory_rms_targets() -> None:
    results = [_rms(seed) for seed in (200, 201, 202)]
    rms = [r[0] for r in results]
    assert float(np.median(rms)) <= 0.25
    assert max(rms) <= 0.5
    for _, summed_mean, plain_mean in results:
        assert summed_mean == pytest.approx(plain_mean, rel=1e-3)


def test_aligned_sum_of_shifted_copies_restores_the_image() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, size=(128, 128))
    base = (10.0 + ndimage.gaussian_filter(noise, 2.0, mode="wrap")).astype(np.float32)
    frames = np.stack([np.roll(base, (k, -k), axis=(0, 1)) for k in range(4)])
    result = align_movie(frames, dose_weighting=False, smoothing=0.0)
    assert np.allclose(result.shifts_px, [[k, -k] for k in range(4)], atol=0.02)
    assert np.allclose(result.summed, 4 * base, atol=0.02)


def test_smoother_keeps_a_straight_line() -> None:
    line = np.column_stack([np.linspace(0, 5, 12), np.linspace(0, -2, 12)])
    assert np.allclose(smooth_trajectory(line, 10.0), line)


def test_align_movie_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        align_movie(np.zeros((1, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError):
        align_movie(np.zeros((8, 8), dtype=np.float32))
    with pytest.raises(ValueError):
        align_movie(np.zeros((2, 8, 8), dtype=np.float32), pixel_size_a=-1.0)
