"""Contrast transfer function (CTFFIND conventions) and simulated micrographs with ground truth.

Conventions: positive defocus = underfocus; ``defocus1 >= defocus2``; the astigmatism angle is
the direction of defocus1, counter-clockwise from +x (array axis 1) towards +y (axis 0).
``CTF = -sin(chi)``, ``chi = pi*lambda*g²*df(theta) - pi/2*Cs*lambda³*g⁴ + asin(ac)``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from acquisition.physics.noise import freq_grid, poisson_counts, power_law_field
from acquisition.physics.truth import CtfTruth, MicrographTruth

F32 = npt.NDArray[np.float32]

#: Inelastic mean free path of 300 kV electrons in vitreous ice (nm) used by all simulators.
MEAN_FREE_PATH_NM = 350.0


@dataclasses.dataclass(frozen=True)
class Tier:
    """Difficulty of a simulated micrograph.

    ``spectral_snr`` is the CTF-modulated signal power over shot-noise power per Fourier pixel
    where the envelope is 1; ``background`` is the RMS of the 1/f contrast relative to the mean.
    """

    name: str
    defocus_range_a: tuple[float, float]
    max_astig_a: float
    b_factor_range_a2: tuple[float, float]
    spectral_snr: float
    background: float
    ice_range_nm: tuple[float, float]


TIERS: dict[str, Tier] = {
    "easy": Tier("easy", (8000.0, 25000.0), 500.0, (40.0, 60.0), 2.0, 0.02, (20.0, 40.0)),
    "realistic": Tier(
        "realistic", (6000.0, 30000.0), 1000.0, (70.0, 110.0), 0.4, 0.04, (20.0, 80.0)
    ),
    "hard": Tier("hard", (5000.0, 40000.0), 1500.0, (120.0, 180.0), 0.12, 0.08, (60.0, 150.0)),
}


def electron_wavelength_a(voltage_kv: float) -> float:
    """Relativistic electron wavelength in ångström for an accelerating voltage in kV."""
    v = voltage_kv * 1e3
    return 12.2643 / math.sqrt(v * (1.0 + 0.978466e-6 * v))


def ctf_rfft(shape: tuple[int, int], pixel_size_a: float, ctf: CtfTruth) -> F32:
    """CTF (with B-factor envelope) sampled on the ``rfft2`` grid of an image of ``shape``.

    Args:
        shape: image shape (rows, columns).
        pixel_size_a: pixel size in Å (> 0).
        ctf: parameters; ``b_factor_a2`` multiplies by ``exp(-B g² / 4)``.
    Returns:
        float32 array of shape ``(shape[0], shape[1] // 2 + 1)``.
    """
    fy, fx = freq_grid(shape)
    gy = fy / np.float32(pixel_size_a)
    gx = fx / np.float32(pixel_size_a)
    g2 = gy * gy + gx * gx
    lam = electron_wavelength_a(ctf.voltage_kv)
    cs_a = ctf.cs_mm * 1e7
    half_sum = 0.5 * (ctf.defocus1_a + ctf.defocus2_a)
    half_diff = 0.5 * (ctf.defocus1_a - ctf.defocus2_a)
    phi = 2.0 * math.radians(ctf.astig_angle_deg)
    # g² df(theta) = S g² + D (cos2phi (gx² - gy²) + sin2phi 2 gx gy): no arctan needed.
    c2, s2 = np.float32(half_diff * math.cos(phi)), np.float32(half_diff * math.sin(phi))
    g2df = np.float32(half_sum) * g2 + c2 * (gx * gx - gy * gy) + (2 * s2) * gx * gy
    chi = np.float32(math.pi * lam) * g2df - np.float32(0.5 * math.pi * cs_a * lam**3) * g2 * g2
    chi += np.float32(math.asin(ctf.amplitude_contrast))
    out = -np.sin(chi)
    if ctf.b_factor_a2:
        out *= np.exp(np.float32(-ctf.b_factor_a2 / 4.0) * g2)
    return np.asarray(out, dtype=np.float32)


def draw_ctf(rng: np.random.Generator, tier: Tier) -> CtfTruth:
    """Draw CTF parameters (300 kV, Cs 2.7 mm, amplitude contrast 0.07) for a tier."""
    mean_df = float(rng.uniform(*tier.defocus_range_a))
    astig = float(rng.uniform(0.0, tier.max_astig_a))
    angle = float(rng.uniform(0.0, 180.0))
    b = float(rng.uniform(*tier.b_factor_range_a2))
    return CtfTruth(
        defocus1_a=mean_df + astig / 2,
        defocus2_a=mean_df - astig / 2,
        astig_angle_deg=angle,
        b_factor_a2=b,
    )


def clean_image(
    rng: np.random.Generator,
    shape: tuple[int, int],
    pixel_size_a: float,
    tier: Tier,
    ctf: CtfTruth,
    dose_px: float,
    *,
    workers: int = 1,
) -> npt.NDArray[np.complex64]:
    """``rfft2`` of the noise-free relative intensity ``1 + contrast`` of a specimen.

    The CTF-modulated part is white specimen noise scaled so that its power over the shot
    noise of ``dose_px`` counts/pixel equals ``tier.spectral_snr`` where the envelope is 1.
    """
    sigma_s = math.sqrt(tier.spectral_snr / (4.0 * max(dose_px, 1e-6)))
    specimen = rng.standard_normal(shape, dtype=np.float32)
    spec = sfft.rfft2(specimen, workers=workers)
    spec *= ctf_rfft(shape, pixel_size_a, ctf) * np.float32(2.0 * sigma_s)
    background = power_law_field(rng, shape, exponent=1.0, f_min=2.0 / max(shape), workers=workers)
    spec += sfft.rfft2(background, workers=workers) * np.float32(tier.background)
    spec[0, 0] += np.float32(shape[0] * shape[1])
    return np.asarray(spec, dtype=np.complex64)


def simulate_micrograph(
    seed: int,
    *,
    shape: tuple[int, int] = (4096, 4096),
    pixel_size_a: float = 1.0,
    tier: str = "realistic",
    dose_e_per_a2: float = 40.0,
    ctf: CtfTruth | None = None,
    fft_workers: int = 1,
) -> tuple[F32, MicrographTruth]:
    """Simulate one integrated micrograph (electron counts) with its ground truth.

    Args:
        seed: RNG seed; equal seeds and arguments give bit-identical output.
        shape: image shape (rows, columns).
        pixel_size_a: pixel size in Å.
        tier: ``easy``, ``realistic`` or ``hard`` (see ``TIERS``).
        dose_e_per_a2: total dose on vacuum; ice attenuates it by ``exp(-t / 350 nm)``.
        ctf: force CTF parameters instead of drawing them for the tier.
        fft_workers: scipy.fft threads (does not change the result).
    Returns:
        ``(counts, truth)``; counts is float32 of ``shape``.
    Raises:
        KeyError: for an unknown tier.
    """
    spec_tier = TIERS[tier]
    rng = np.random.default_rng(seed)
    params = ctf if ctf is not None else draw_ctf(rng, spec_tier)
    ice = float(rng.uniform(*spec_tier.ice_range_nm))
    dose_px = dose_e_per_a2 * pixel_size_a**2 * math.exp(-ice / MEAN_FREE_PATH_NM)
    spec = clean_image(rng, shape, pixel_size_a, spec_tier, params, dose_px, workers=fft_workers)
    intensity = sfft.irfft2(spec, s=shape, workers=fft_workers).astype(np.float32, copy=False)
    intensity *= np.float32(dose_px)
    counts = poisson_counts(rng, intensity)
    truth = MicrographTruth(
        seed=seed,
        tier=tier,
        shape=(int(shape[0]), int(shape[1])),
        pixel_size_a=pixel_size_a,
        dose_e_per_a2=dose_e_per_a2,
        ice_nm=ice,
        ctf=params,
        spectral_snr=spec_tier.spectral_snr,
    )
    return counts, truth
