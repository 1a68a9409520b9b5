"""Image physics: determinism, conventions, statistics and ground-truth consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft as sfft

from acquisition.physics import (
    MEAN_FREE_PATH_NM,
    AtlasTruth,
    CtfTruth,
    MovieTruth,
    SquareImageTruth,
    simulate_atlas,
    simulate_micrograph,
    simulate_movie,
    simulate_square,
)
from acquisition.physics.ctf import ctf_rfft, electron_wavelength_a
from acquisition.physics.noise import poisson_counts


def test_micrograph_is_bit_identical_for_a_seed() -> None:
    a, ta = simulate_micrograph(11, shape=(256, 256))
    b, tb = simulate_micrograph(11, shape=(256, 256), fft_workers=2)
    c, _ = simulate_micrograph(12, shape=(256, 256))
    assert a.dtype == np.float32
    assert np.array_equal(a, b)
    assert ta == tb
    assert not np.array_equal(a, c)


def test_micrograph_mean_counts_follow_dose_and_ice() -> None:
    image, truth = simulate_micrograph(3, shape=(512, 512), dose_e_per_a2=40.0, pixel_size_a=1.0)
    expected = 40.0 * math.exp(-truth.ice_nm / MEAN_FREE_PATH_NM)
    assert float(image.mean()) == pytest.approx(expected, rel=0.01)
    assert float(image.min()) >= 0.0
    assert np.array_equal(image, np.rint(image))


@pytest.mark.parametrize("lam", [0.3, 1.0, 4.0, 50.0])
def test_poisson_counts_have_poisson_moments(lam: float) -> None:
    counts = poisson_counts(np.random.default_rng(0), np.full(400_000, lam, dtype=np.float32))
    assert float(counts.mean()) == pytest.approx(lam, rel=0.01)
    assert float(counts.var()) == pytest.approx(lam, rel=0.02)
    if lam < 5:
        assert float((counts == 0).mean()) == pytest.approx(math.exp(-lam), rel=0.02)


class _TopDraws:
    """A generator whose uniform draws are all the largest float32 below 1."""

    def random(self, shape: tuple[int, ...], dtype: type[np.floating]) -> np.ndarray:
        return np.full(shape, np.nextafter(np.float32(1), np.float32(0)), dtype=dtype)


def test_poisson_counts_stop_where_the_rounded_cdf_ends() -> None:
    """A draw just below 1 can sit above the float32-rounded CDF's limit; its count is the
    far end of the law, not the iteration cap (simulated movies had pixels of 1001 counts)."""
    lam = np.linspace(0.05, 19.9, 2000, dtype=np.float32)
    counts = poisson_counts(_TopDraws(), lam)  # type: ignore[arg-type]
    assert float(counts.max()) <= 60
    assert np.all(counts >= lam)


def test_wavelength_at_300_kv() -> None:
    assert electron_wavelength_a(300.0) == pytest.approx(0.019687, rel=1e-4)


def test_ctf_astigmatism_follows_ctffind_conventions() -> None:
    """Along the astigmatism angle the first zero sits where defocus1 puts it."""
    box, px = 512, 1.0
    ctf = CtfTruth(defocus1_a=20000.0, defocus2_a=15000.0, astig_angle_deg=30.0)
    grid = ctf_rfft((box, box), px, ctf)
    lam = electron_wavelength_a(300.0)
    for angle, df in ((30.0, ctf.defocus1_a), (120.0, ctf.defocus2_a)):
        # first zero of -sin(chi): pi*lam*df*g² - ... + asin(0.07) = pi (Cs negligible here)
        g0 = math.sqrt((math.pi - math.asin(0.07)) / (math.pi * lam * df))
        theta = math.radians(angle)
        fy, fx = g0 * math.sin(theta) * box * px, g0 * math.cos(theta) * box * px
        if fx < 0:
            fy, fx = -fy, -fx
        iy, ix = int(round(fy)) % box, int(round(fx))
        assert abs(grid[iy, ix]) < 0.25
        # and the perpendicular direction is not at a zero there
        other = 120.0 if angle == 30.0 else 30.0
        t2 = math.radians(other)
        oy, ox = g0 * math.sin(t2) * box * px, g0 * math.cos(t2) * box * px
        if ox < 0:
            oy, ox = -oy, -ox
        assert abs(grid[int(round(oy)) % box, int(round(ox))]) > 0.5


def test_truth_records_round_trip_through_json() -> None:
    _, micro = simulate_micrograph(1, shape=(128, 128))
    _, movie = simulate_movie(1, shape=(128, 128), n_frames=3)
    _, atlas = simulate_atlas(1, shape=(512, 512), mesh=200)
    _, square = simulate_square(1, shape=(512, 512), pattern="R2/2")
    assert type(micro).from_json(micro.to_json()) == micro
    assert MovieTruth.from_json(movie.to_json()) == movie
    assert AtlasTruth.from_json(atlas.to_json()) == atlas
    assert SquareImageTruth.from_json(square.to_json()) == square
    with pytest.raises(ValueError):
        MovieTruth.from_json('{"n_frames": 3}')


def test_movie_frames_are_shifted_copies_of_the_specimen() -> None:
    frames, truth = simulate_movie(5, shape=(256, 256), n_frames=6, tier="easy")
    assert frames.shape == (6, 256, 256)
    assert truth.shifts_px[0] == (0.0, 0.0)
    assert truth.micrograph.dose_e_per_a2 == pytest.approx(6.0)
    again, _ = simulate_movie(5, shape=(256, 256), n_frames=6, tier="easy")
    assert np.array_equal(frames, again)
    # The displacement of the last frame is visible in the cross-correlation with frame 0.
    a = sfft.rfft2(frames[0] - frames[0].mean())
    b = sfft.rfft2(frames[-1] - frames[-1].mean())
    cc = sfft.irfft2(b * np.conj(a), s=(256, 256))
    peak = np.unravel_index(int(np.argmax(cc)), cc.shape)
    dy, dx = ((p + 128) % 256 - 128 for p in peak)
    ty, tx = truth.shifts_px[-1]
    assert abs(dy - ty) <= 1.0 and abs(dx - tx) <= 1.0


def test_local_motion_path_runs_and_is_deterministic() -> None:
    a, truth = simulate_movie(2, shape=(128, 128), n_frames=3, local_motion_px=2.0)
    b, _ = simulate_movie(2, shape=(128, 128), n_frames=3, local_motion_px=2.0)
    assert truth.local_motion_px == 2.0
    assert np.array_equal(a, b)


def test_atlas_truth_matches_the_image() -> None:
    image, truth = simulate_atlas(4, shape=(1024, 1024), mesh=200)
    again, _ = simulate_atlas(4, shape=(1024, 1024), mesh=200)
    assert np.array_equal(image, again)
    visible = [s for s in truth.squares if s.fully_visible]
    assert len(visible) > 20
    assert {s.cls for s in truth.squares} <= {
        "good", "thick", "empty", "broken", "cracked", "contaminated"
    }  # fmt: skip
    for sq in visible:
        y, x = (int(round(v)) for v in sq.centre)
        if sq.cls in ("good", "empty"):
            t = float(image[y - 2 : y + 3, x - 2 : x + 3].mean()) / truth.i0
            assert t == pytest.approx(math.exp(-sq.ice_nm / MEAN_FREE_PATH_NM), abs=0.05)
    # outside the rim is dark
    assert float(image[:20, :20].mean()) < 0.05 * truth.i0


def test_square_image_holes_are_inside_the_opening_with_a_class_gap() -> None:
    image, truth = simulate_square(6, shape=(1024, 1024), pattern="R2/1")
    assert len(truth.holes) > 50
    half = truth.opening_size_px / 2
    a = math.radians(truth.opening_angle_deg)
    for hole in truth.holes:
        dy = hole.centre[0] - truth.opening_centre[0]
        dx = hole.centre[1] - truth.opening_centre[1]
        u, v = dx * math.cos(a) + dy * math.sin(a), dy * math.cos(a) - dx * math.sin(a)
        assert max(abs(u), abs(v)) <= half - hole.radius_px
        assert not 90.0 < hole.ice_nm < 120.0
        if hole.cls == "good":
            assert 15.0 <= hole.ice_nm <= 90.0
    assert image.dtype == np.float32
