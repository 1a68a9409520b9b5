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


def _shifted_noise_movie(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of a smooth random specimen drifting by known sub-pixel shifts."""
    rng = np.random.default_rng(seed)
    specimen = ndimage.gaussian_filter(rng.normal(size=(size, size)), 3.0, mode="wrap")
    specimen = 1.0 + 0.5 * specimen / specimen.std()
    shifts = np.cumsum(rng.uniform(-0.4, 0.6, size=(n, 2)), axis=0)
    shifts -= shifts[0]
    spec = np.fft.rfft2(specimen)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    frames = []
    for s in shifts:
        moved = np.fft.irfft2(spec * np.exp(-2j * np.pi * (fy * s[0] + fx * s[1])), (size, size))
        frames.append(rng.poisson(20 * np.clip(moved, 0, None)))
    return np.stack(frames), shifts


def direct_at(spectrum_map: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``spectrum_map`` (a real periodic map) band-limited-interpolated at ``centre + o``."""
    spec = np.fft.rfft2(spectrum_map)
    fy = np.fft.fftfreq(spectrum_map.shape[0])[:, None]
    fx = np.fft.rfftfreq(spectrum_map.shape[1])[None, :]
    out = np.empty((5, 5))
    for a in range(5):
        for b in range(5):
            y, x = centre[0] + a - 2, centre[1] + b - 2
            moved = spec * np.exp(2j * np.pi * (fy * y + fx * x))
            out[a, b] = np.fft.irfft2(moved, s=spectrum_map.shape)[0, 0]
    return out


def test_window_correlation_matches_the_inverse_fft() -> None:
    """The windowed leave-one-out correlation (cross term minus the precomputed self term)
    is the inverse FFT of ``conj(T - A_i) W_i`` at the same points."""
    from processing.imaging import motion

    rng = np.random.default_rng(3)
    size = (32, 32)
    spectra = np.fft.rfft2(rng.normal(size=(3, *size))).astype(np.complex64)
    shifts = np.array([[0.3, -1.2], [2.0, 0.5], [-1.0, 1.7]])
    grid = motion._Grid.of(size)
    lowpass = np.exp(-2 * (np.pi * 1.0) ** 2 * (grid.fy[:, None] ** 2 + grid.fx[None, :] ** 2))
    ramps = [
        np.exp(2j * np.pi * (grid.fy[:, None] * s[0] + grid.fx[None, :] * s[1])) for s in shifts
    ]
    aligned = [f * r for f, r in zip(spectra, ramps, strict=True)]
    total = sum(aligned)
    i = 1
    direct = np.fft.irfft2(np.conj(total - aligned[i]) * spectra[i] * lowpass, s=size) * 32 * 32
    power = (np.abs(spectra[i]) ** 2 * lowpass).astype(np.float32)
    reach = 4
    auto = motion._windows(power[:, None, :], *grid.offsets(reach))[0]
    # the window centred on the integer position next to s_i, evaluated at integer offsets
    centre = np.round(shifts[i])
    ey, ex = grid.window(centre, 2)
    product = (np.conj(total) * lowpass * spectra[i]).astype(np.complex64)
    cross = (ey @ product @ ex).real
    self_ey, self_ex = grid.window(centre - shifts[i], 2)
    self_term = (self_ey.real @ power) @ self_ex.real - (self_ey.imag @ power) @ self_ex.imag
    windowed = cross - self_term
    rows = (np.arange(-2, 3) + int(centre[0])) % 32
    cols = (np.arange(-2, 3) + int(centre[1])) % 32
    expected = direct[np.ix_(rows, cols)]
    assert np.allclose(windowed, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    # all frames at once, from the aligned products: the same numbers at s_i + o
    stacked = np.stack([np.conj(total) * lowpass * a for a in aligned], axis=1)
    batched = motion._windows(stacked.astype(np.complex64), *grid.offsets(2))[i]
    self_at = motion._windows(power[:, None, :], *grid.offsets(2))[0]
    near = direct_at(direct, shifts[i])
    assert np.allclose(batched - self_at, near, rtol=1e-3, atol=1e-3 * np.abs(near).max())
    assert auto.shape == (2 * reach + 1, 2 * reach + 1)


def test_weighted_sum_matches_the_direct_formula() -> None:
    """Horner's scheme over cache blocks equals ``n sum_i w_i R_i F_i / sum_i w_i``."""
    from processing.imaging import motion

    rng = np.random.default_rng(5)
    n, shape = 7, (48, 40)
    frames = rng.normal(size=(n, *shape)).astype(np.float32)
    spectra = np.fft.rfft2(frames).astype(np.complex64)
    shifts = rng.uniform(-3, 3, size=(n, 2))
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    g = np.sqrt(fy**2 + fx**2) / 1.3
    crit = motion.critical_exposure(g.astype(np.float32)).astype(np.float64)
    expected = np.zeros(spectra.shape[1:], dtype=np.complex128)
    weights = np.zeros(spectra.shape[1:])
    for i in range(n):
        w = np.exp(-(i + 0.5) * 2.0 / (2 * crit))
        expected += w * spectra[i] * np.exp(2j * np.pi * (fy * shifts[i, 0] + fx * shifts[i, 1]))
        weights += w
    expected *= n / weights
    expected_image = np.fft.irfft2(expected, s=shape)  # what both mean as a real image
    transposed = np.ascontiguousarray(spectra.transpose(0, 2, 1))  # as _transform keeps them
    rows = transposed.shape[1]
    # and as it leaves them: from row ``finished`` on, only the image rows' real FFTs
    halfway = np.fft.rfft(frames, axis=-1).astype(np.complex64).transpose(0, 2, 1)
    for finished in (rows, 5, 0):
        given = transposed.copy()
        given[:, finished:] = halfway[:, finished:]
        for workers in (1, 2):
            got = motion._weighted_sum(
                given.copy(), finished, shifts, shape, 1.3, 2.0, 300.0, workers
            )
            assert got.shape == spectra.shape[1:]
            assert np.allclose(np.fft.irfft2(got, s=shape), expected_image, atol=1e-4)
            assert np.allclose(np.fft.rfft2(np.fft.irfft2(got, s=shape)), got, atol=1e-3)
    plain = motion._weighted_sum(transposed, rows, np.zeros((n, 2)), shape, 1.3, 0.0, 300.0, 1)
    assert np.allclose(plain, spectra.sum(axis=0), atol=1e-3)


def test_transforms_are_transposed_half_planes_with_usual_crops() -> None:
    from processing.imaging import motion

    frames = np.random.default_rng(6).normal(size=(3, 40, 36)).astype(np.float32)
    full = np.fft.rfft2(frames).transpose(0, 2, 1)
    rows_only = np.fft.rfft(frames, axis=-1).transpose(0, 2, 1)
    for given in (frames, (frames * 8).astype(np.int16), frames[:, :, ::-1]):
        scale = 8 if given.dtype == np.int16 else 1
        expected = np.fft.rfft2(np.asarray(given, dtype=np.float64)).transpose(0, 2, 1)
        for workers in (1, 2):
            spectra, small = motion._transform(given, (20, 18), workers, None)
            # the low kx the crop needs are finished; the rest wait for _weighted_sum
            assert np.allclose(spectra[:, :10], expected[:, :10], atol=1e-3 * scale)
            if given is frames:
                assert np.allclose(spectra[:, :10], full[:, :10], atol=1e-3)
                assert np.allclose(spectra[:, 10:], rows_only[:, 10:], atol=1e-3)
            crop = np.concatenate([expected[:, :10, :10], expected[:, :10, -10:]], axis=2)
            assert np.allclose(small, crop.transpose(0, 2, 1), atol=1e-3 * scale)


def test_integer_and_float_frames_give_the_same_alignment() -> None:
    frames, truth = _shifted_noise_movie(6, 128, seed=11)
    as_float = align_movie(frames.astype(np.float32), pixel_size_a=1.0)
    as_int16 = align_movie(frames.astype(np.int16), pixel_size_a=1.0)
    assert np.allclose(as_float.shifts_px, as_int16.shifts_px, atol=1e-6)
    assert np.allclose(as_float.summed, as_int16.summed, atol=1e-3)
    diff = as_float.shifts_px - truth
    assert float(np.abs(diff - diff.mean(axis=0)).max()) < 0.2


def test_spectrum_is_the_transform_of_the_sum_and_summed_is_lazy() -> None:
    frames, _ = _shifted_noise_movie(4, 64, seed=12)
    eager = align_movie(frames, pixel_size_a=1.0)
    lazy = align_movie(frames, pixel_size_a=1.0, real_space_sum=False)
    assert "summed" not in vars(lazy)
    assert np.allclose(lazy.summed, eager.summed, atol=1e-4)
    scale = float(np.abs(eager.spectrum).max())
    assert np.allclose(np.fft.rfft2(eager.summed), eager.spectrum, atol=1e-6 * scale)
    assert eager.shape == (64, 64)


def test_non_finite_frames_are_reported_with_their_index() -> None:
    from processing.imaging.motion import NonFiniteFrame

    frames = np.ones((5, 32, 32), dtype=np.float32)
    frames[3, 10, 10] = np.nan
    with pytest.raises(NonFiniteFrame, match="frame 3"):
        align_movie(frames)
    frames[3, 10, 10] = 1.0
    frames[4, 0, 0] = -np.inf
    with pytest.raises(NonFiniteFrame, match="frame 4"):
        align_movie(frames, fft_workers=2)
