"""Ice thickness proxy and PNG renderings."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from acquisition.physics import simulate_micrograph
from processing.imaging import (
    ice_thickness_nm,
    ice_thickness_proxy,
    power_spectrum_png,
    thumbnail_png,
)


def test_ice_proxy_recovers_simulated_thickness() -> None:
    image, truth = simulate_micrograph(8, shape=(512, 512), dose_e_per_a2=40.0, pixel_size_a=1.2)
    ice = ice_thickness_proxy(image, pixel_size_a=1.2, dose_e_per_a2=40.0)
    assert ice == pytest.approx(truth.ice_nm, abs=3.0)


def test_ice_thickness_edges() -> None:
    assert ice_thickness_nm(100.0, 100.0) == 0.0
    assert ice_thickness_nm(120.0, 100.0) == 0.0
    assert ice_thickness_nm(0.0, 100.0) == math.inf
    assert ice_thickness_nm(math.exp(-1) * 100.0, 100.0, mfp_nm=350.0) == pytest.approx(350.0)
    with pytest.raises(ValueError):
        ice_thickness_nm(1.0, 0.0)
    with pytest.raises(ValueError):
        ice_thickness_proxy(np.ones((2, 2, 2)), pixel_size_a=1.0, dose_e_per_a2=1.0)
    with pytest.raises(ValueError):
        ice_thickness_proxy(np.ones((2, 2)), pixel_size_a=0.0, dose_e_per_a2=1.0)


def test_thumbnail_is_a_small_8bit_png() -> None:
    image = np.random.default_rng(0).normal(size=(1000, 700)).astype(np.float32)
    png = thumbnail_png(image, max_side=256)
    decoded = Image.open(io.BytesIO(png))
    assert decoded.format == "PNG" and decoded.mode == "L"
    assert max(decoded.size) <= 256
    flat = thumbnail_png(np.zeros((64, 64), dtype=np.float32))
    assert Image.open(io.BytesIO(flat)).size == (64, 64)
    with pytest.raises(ValueError):
        thumbnail_png(np.zeros((2, 2, 2), dtype=np.float32))


def test_power_spectrum_png_shows_thon_rings() -> None:
    image, _ = simulate_micrograph(9, shape=(1024, 1024), tier="easy")
    png = power_spectrum_png(image, box=256)
    spectrum = np.asarray(Image.open(io.BytesIO(png)), dtype=np.float64)
    assert spectrum.shape == (256, 256)
    # Rings: the radial profile oscillates, so it is far from its own smoothed version.
    yy, xx = np.indices(spectrum.shape) - 128
    radius = np.hypot(yy, xx).astype(int)
    profile = np.bincount(radius.ravel(), spectrum.ravel()) / np.bincount(radius.ravel())
    band = profile[20:100]
    assert float(np.std(np.diff(band))) > 2.0
    with pytest.raises(ValueError):
        power_spectrum_png(np.zeros((8, 8), dtype=np.float32))
