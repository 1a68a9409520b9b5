"""CTF estimation against simulated ground truth (reduced N; accuracy targets asserted)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from acquisition.physics import CtfTruth, simulate_micrograph
from processing.imaging import estimate_ctf
from processing.imaging.ctf_model import (
    Optics,
    equiphase_radius,
    from_principal,
    plane_grid,
    to_principal,
)


def _errors(tier: str, seeds: range) -> list[tuple[float, float, bool]]:
    out = []
    for seed in seeds:
        image, truth = simulate_micrograph(seed, shape=(4096, 4096), tier=tier, fft_workers=2)
        fit = estimate_ctf(image, pixel_size_a=truth.pixel_size_a, fft_workers=2)
        assert fit.defocus1_a >= fit.defocus2_a
        assert 0.0 <= fit.astig_angle_deg < 180.0
        err = abs(fit.mean_defocus_a - truth.ctf.mean_defocus_a)
        astig = abs(fit.astigmatism_a - (truth.ctf.defocus1_a - truth.ctf.defocus2_a))
        out.append((err, astig, fit.low_confidence))
    return out


def test_realistic_tier_meets_the_defocus_targets() -> None:
    errs = _errors("realistic", range(100, 104))
    defocus = np.array([e[0] for e in errs])
    assert float(np.median(defocus)) <= 50.0
    assert float(defocus.max()) <= 200.0
    assert float(np.median([e[1] for e in errs])) <= 50.0
    assert not any(e[2] for e in errs)


def test_hard_tier_median_and_flagged_failures() -> None:
    errs = _errors("hard", range(100, 105))
    assert float(np.median([e[0] for e in errs])) <= 300.0
    for err, _, low in errs:
        if err > 1000.0:
            assert low, f"unflagged failure: {err:.0f} Å"


def test_pure_noise_is_flagged_low_confidence() -> None:
    noise = np.random.default_rng(1).poisson(30.0, size=(1024, 1024)).astype(np.float32)
    fit = estimate_ctf(noise, pixel_size_a=1.0)
    assert fit.low_confidence


def test_estimate_ctf_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        estimate_ctf(np.zeros((256, 256), dtype=np.float32), pixel_size_a=1.0)
    with pytest.raises(ValueError):
        estimate_ctf(np.zeros((1024, 1024), dtype=np.float32), pixel_size_a=0.0)


def test_principal_parameters_round_trip() -> None:
    mean, ax, ay = from_principal(21000.0, 20000.0, 170.0)
    df1, df2, angle = to_principal(mean, ax, ay)
    assert (df1, df2) == pytest.approx((21000.0, 20000.0))
    assert angle == pytest.approx(170.0)


def test_equiphase_radius_is_identity_without_astigmatism() -> None:
    grid = plane_grid(64, 1.0)
    r = equiphase_radius(grid, 15000.0, 0.0, 0.0, Optics(), 64, 1.0)
    assert np.allclose(r, grid.radius, atol=1e-6)


def test_simulated_and_fitted_models_agree_on_the_first_zero() -> None:
    """The simulator's CTF and the fitter's model share one convention."""
    from acquisition.physics.ctf import ctf_rfft
    from processing.imaging.ctf_model import chi_2d

    truth = CtfTruth(defocus1_a=18000.0, defocus2_a=16000.0, astig_angle_deg=60.0)
    sim = ctf_rfft((128, 128), 1.0, truth).ravel()
    grid = plane_grid(128, 1.0)
    model = -np.sin(chi_2d(grid, *from_principal(18000.0, 16000.0, 60.0), Optics()))
    assert np.allclose(sim, model, atol=2e-3)
    assert math.isclose(Optics().wavelength_a, 0.019687, rel_tol=1e-4)
