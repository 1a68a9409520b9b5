"""Binned periodograms: normalisation, bin centres, agreement with tile averaging."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition.physics import simulate_micrograph
from processing.imaging.spectrum import binned_power, power_spectrum, radius_grid


@pytest.mark.parametrize("shape", [(512, 512), (480, 400), (300, 512)])
def test_white_noise_of_variance_v_gives_v(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(0).normal(3.0, 2.0, size=shape).astype(np.float32)
    power = binned_power(np.fft.rfft2(image).astype(np.complex64), shape, 64)
    assert power.shape == (64, 33)
    ring = power.ravel()[(radius_grid(64).ravel() > 3)]
    assert float(np.mean(ring)) == pytest.approx(4.0, rel=0.02)


def test_integer_factor_bins_are_centred_triangles() -> None:
    """At factor 4 a bin averages 7 fine frequencies per axis with weights 1, 2, 3, 4, 3, 2, 1."""
    shape, box = (64, 64), 16
    rng = np.random.default_rng(1)
    spectrum = (rng.normal(size=(64, 33)) + 1j * rng.normal(size=(64, 33))).astype(np.complex64)
    power = binned_power(spectrum, shape, box)
    fine = np.abs(spectrum.astype(np.complex128)) ** 2 / (64 * 64)
    w = np.array([1, 2, 3, 4, 3, 2, 1]) / 16
    rows = [(4 * 2 + k) for k in range(-3, 4)]  # coarse row 2
    cols = [(4 * 3 + k) for k in range(-3, 4)]  # coarse column 3
    expected = w @ fine[np.ix_(rows, cols)] @ w
    assert float(power[2, 3]) == pytest.approx(expected, rel=1e-5)


def test_binned_power_agrees_with_tile_averaging_on_thon_rings() -> None:
    """Same rings as the tile average: the rotational averages match (both have noise)."""
    image, _ = simulate_micrograph(9, shape=(1024, 1024), tier="easy")
    tiles, _ = power_spectrum(image, box=256, stride=128)
    binned = binned_power(np.fft.rfft2(image).astype(np.complex64), image.shape, 256)
    radius = np.rint(radius_grid(256)).astype(int).ravel()
    keep = (radius >= 12) & (radius < 100)

    def profile(power: np.ndarray) -> np.ndarray:
        logs = np.log(power.ravel()[keep].astype(np.float64))
        return np.bincount(radius[keep], logs)[12:] / np.bincount(radius[keep])[12:]

    a, b = profile(tiles), profile(binned)
    assert float(np.corrcoef(np.diff(a), np.diff(b))[0, 1]) > 0.9  # the ring pattern
    assert float(np.abs(a - b).mean()) < 0.1  # the level (log power)


def test_binned_power_rejects_mismatches() -> None:
    spectrum = np.zeros((64, 33), dtype=np.complex64)
    with pytest.raises(ValueError):
        binned_power(spectrum, (64, 66), 16)
    with pytest.raises(ValueError):
        binned_power(spectrum, (64, 64), 15)
    with pytest.raises(ValueError):
        binned_power(spectrum, (64, 64), 128)
