"""CTF estimation: exhaustive 1-D defocus search, then 2-D refinement of astigmatism.

Steps: power spectrum (the image's periodogram averaged onto a tile's frequency grid, see
``spectrum.binned_power``; ``estimate_ctf_from_power`` starts from one already made);
rotational average fitted at every candidate defocus by a linear model
``background(r) + envelope(r) * CTF²(r)`` (least squares, so the background needs no
separate estimate); 2-D refinement of (mean defocus, astigmatism) maximising the
correlation of the whitened spectrum with the model; an equiphase average re-estimates the
background and gives the fit resolution. Doubtful fits are flagged, never hidden.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft
from scipy import ndimage, optimize

from processing.imaging.ctf_model import (
    Optics,
    PlaneGrid,
    chi_1d,
    chi_2d,
    equiphase_radius,
    plane_grid,
    to_principal,
)
from processing.imaging.spectrum import binned_power

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

_WINDOW_CC = 0.5  # windowed EPA/model correlation that counts as "rings still match"
_REJECTED = 1e300  # RSS of a rejected model (finite: the scalar minimiser dislikes inf)


@dataclasses.dataclass(frozen=True)
class CtfFit:
    """Result of ``estimate_ctf`` (CTFFIND conventions; lengths in Å).

    Attributes:
        defocus1_a, defocus2_a: principal defoci, ``defocus1 >= defocus2``, + = underfocus.
        astig_angle_deg: direction of defocus1, counter-clockwise from +x, in [0, 180).
        fit_resolution_a: finest resolution to which the fitted rings match the spectrum.
        cc: correlation of whitened spectrum and model up to the fit resolution.
        low_confidence: True when the numbers should not be trusted (weak or ambiguous
            rings, poor fit resolution, or a defocus at the edge of the search range).
    """

    defocus1_a: float
    defocus2_a: float
    astig_angle_deg: float
    fit_resolution_a: float
    cc: float
    low_confidence: bool

    @property
    def mean_defocus_a(self) -> float:
        """Mean of the principal defoci (Å)."""
        return 0.5 * (self.defocus1_a + self.defocus2_a)

    @property
    def astigmatism_a(self) -> float:
        """``defocus1 - defocus2`` (Å)."""
        return self.defocus1_a - self.defocus2_a


@dataclasses.dataclass(frozen=True)
class _Radial:
    """A 1-D spectrum on integer radii with its least-squares weights."""

    radius: F64
    value: F64
    weight: F64


def _radial_average(power: F32, radius: F64, lo: int, hi: int) -> _Radial:
    idx = np.rint(radius).astype(np.intp)
    flat = power.ravel().astype(np.float64)
    count = np.bincount(idx, minlength=hi + 1)[: hi + 1]
    total = np.bincount(idx, weights=flat, minlength=hi + 1)[: hi + 1]
    r = np.arange(lo, hi + 1, dtype=np.float64)
    value = total[lo : hi + 1] / np.maximum(count[lo : hi + 1], 1)
    smooth = ndimage.uniform_filter1d(value, 9, mode="nearest")
    weight = np.sqrt(np.maximum(count[lo : hi + 1], 1)) / np.maximum(smooth, 1e-30)
    return _Radial(r, value, weight)


def _design(r: F64, ctf2: F64, lo: float, hi: float, degree: int) -> F64:
    """Columns: background polynomial + 1/r², then envelope polynomial times CTF²."""
    t = (2 * r - (lo + hi)) / (hi - lo)
    poly = np.polynomial.chebyshev.chebvander(t, degree)
    return np.column_stack([poly, (lo / r) ** 2, poly * ctf2[:, None]])


def _fit_linear(rad: _Radial, ctf2: F64, degree: int) -> tuple[float, F64]:
    """Weighted least squares of the linear model; ``inf`` RSS if the envelope is negative.

    A negative envelope would let anti-phase rings (``-sin² = cos² - 1``) fit as well as the
    true ones, so such solutions are rejected.
    """
    lo, hi = float(rad.radius[0]), float(rad.radius[-1])
    design = _design(rad.radius, ctf2, lo, hi, degree)
    a = design * rad.weight[:, None]
    coef, *_ = np.linalg.lstsq(a, rad.value * rad.weight, rcond=None)
    resid = a @ coef - rad.value * rad.weight
    env = design[:, degree + 2 :] @ coef[degree + 2 :]
    if ctf2.any() and float(np.mean(env * ctf2)) <= 0.0:
        return _REJECTED, np.asarray(coef, dtype=np.float64)
    return float(resid @ resid), np.asarray(coef, dtype=np.float64)


def _bg_env(rad: _Radial, coef: F64, degree: int, r: F64) -> tuple[F64, F64]:
    """Background and envelope of a fitted linear model, evaluated at radii ``r``."""
    lo, hi = float(rad.radius[0]), float(rad.radius[-1])
    t = np.clip((2 * r - (lo + hi)) / (hi - lo), -1.0, 1.0)
    poly = np.polynomial.chebyshev.chebvander(t, degree)
    n = degree + 1
    bg = poly @ coef[:n] + coef[n] * (lo / np.maximum(r, 1.0)) ** 2
    env = poly @ coef[n + 1 :]
    return np.maximum(bg, 1e-30), np.maximum(env, 0.0)


def _search_1d(
    rad: _Radial, g2: F64, optics: Optics, candidates: F64, degree: int, keep: int
) -> list[tuple[float, F64]]:
    """The ``keep`` best local minima of the 1-D fit over the defocus grid, refined.

    Returns ``(defocus, model coefficients)`` pairs, best first. Several are kept because
    with few rings in the search band a wrong defocus can fit the rotational average nearly
    as well; the 2-D stage, which sees more rings, decides.
    """
    rss = np.array(
        [_fit_linear(rad, np.sin(chi_1d(g2, df, optics)) ** 2, degree)[0] for df in candidates]
    )
    step = float(candidates[1] - candidates[0]) if len(candidates) > 1 else 100.0
    padded = np.concatenate([[np.inf], rss, [np.inf]])
    minima = np.flatnonzero((rss <= padded[:-2]) & (rss <= padded[2:]) & (rss < _REJECTED))
    minima = minima[np.argsort(rss[minima])][:keep]
    out = []
    for k in minima:
        res = optimize.minimize_scalar(
            lambda df: _fit_linear(rad, np.sin(chi_1d(g2, df, optics)) ** 2, degree)[0],
            bounds=(candidates[k] - step, candidates[k] + step),
            method="bounded",
            options={"xatol": 1.0},
        )
        best = float(res.x)
        out.append((best, _fit_linear(rad, np.sin(chi_1d(g2, best, optics)) ** 2, degree)[1]))
    return out


def _cc(data: F64, model: F64) -> float:
    d = data - data.mean()
    m = model - model.mean()
    den = math.sqrt(float(d @ d) * float(m @ m))
    return float(d @ m) / den if den > 0 else 0.0


def _refine_2d(
    data: F64,
    snr: F64,
    grid: PlaneGrid,
    optics: Optics,
    start: tuple[float, float, float],
    max_astig: float,
) -> tuple[tuple[float, float, float], float]:
    """Maximise CC of whitened data with ``snr * CTF²`` over (mean, ax, ay).

    The cost runs some 800 times: the data are centred once, and ``chi`` (as ``chi_2d``) is
    one matrix-vector product plus a constant.
    """
    centred = data - data.mean()
    norm = math.sqrt(float(centred @ centred))
    lam = optics.wavelength_a
    basis = np.column_stack([grid.g2, grid.dxx, grid.dxy]) * (math.pi * lam)
    offset = optics.phase_offset - 0.5 * math.pi * optics.cs_a * lam**3 * grid.g2 * grid.g2
    count = float(len(data))

    def cost(p: F64) -> float:
        if math.hypot(p[1], p[2]) > max_astig:
            return 1.0
        model = snr * np.sin(basis @ p + offset) ** 2
        spread = float(model @ model) - float(model.sum()) ** 2 / count
        den = norm * math.sqrt(max(spread, 0.0))
        return -float(centred @ model) / den if den > 0 else 0.0

    mean0 = start[0]
    best = np.array(start)
    best_cost = cost(best)
    for half in (150.0, 400.0, 800.0):
        for ang in np.arange(0.0, 180.0, 22.5):
            phi = math.radians(2 * ang)
            cand = np.array([mean0, half * math.cos(phi), half * math.sin(phi)])
            c = cost(cand)
            if c < best_cost:
                best, best_cost = cand, c
    simplex = best + np.array([[0, 0, 0], [60.0, 0, 0], [0, 60.0, 0], [0, 0, 60.0]])
    res = optimize.minimize(
        cost,
        best,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 1.0, "fatol": 1e-6, "maxiter": 600},
    )
    p = res.x
    return (float(p[0]), float(p[1]), float(p[2])), -float(res.fun)


def _equiphase(
    values: F64,
    grid: PlaneGrid,
    params: tuple[float, float, float],
    optics: Optics,
    box: int,
    px: float,
    hi: int,
) -> tuple[F64, F64]:
    """Average ``values`` in integer bins of equiphase radius; returns (sum, count) up to hi."""
    rr = np.rint(equiphase_radius(grid, *params, optics, box, px)).astype(np.intp)
    ok = rr <= hi
    total = np.bincount(rr[ok], weights=values[ok], minlength=hi + 1)
    count = np.bincount(rr[ok], minlength=hi + 1)
    return np.asarray(total, dtype=np.float64), np.asarray(count, dtype=np.float64)


def _fit_resolution(
    epa: F64, count: F64, mean_df: float, optics: Optics, box: int, px: float, lo: int, hi: int
) -> tuple[int, float]:
    """Highest radius up to which windowed CC of EPA and CTF² stays >= 0.5; and the CC there."""
    r = np.arange(hi + 1, dtype=np.float64)
    g2 = (r / (box * px)) ** 2
    model = np.sin(chi_1d(g2, mean_df, optics)) ** 2
    lam = optics.wavelength_a
    reach = lo
    for k in range(lo, hi + 1):
        period = (box * px) ** 2 / max(2 * lam * mean_df * k, 1e-6)
        half = int(min(30, max(4, round(period))))
        a, b = max(lo, k - half), min(hi, k + half)
        sel = slice(a, b + 1)
        if count[sel].min() == 0 or b - a < 4:
            continue
        if _cc(epa[sel], model[sel]) < _WINDOW_CC:
            break
        reach = k
    return reach, _cc(epa[lo : reach + 1], model[lo : reach + 1]) if reach > lo + 4 else 0.0


@dataclasses.dataclass(frozen=True)
class _Context:
    power: F64
    grid: PlaneGrid
    optics: Optics
    box: int
    px: float
    lo: int
    hi1: int

    def band(self, hi: int) -> npt.NDArray[np.bool_]:
        """Spectrum pixels between ``lo`` and ``hi``, minus the axes (tile-edge streaks)."""
        fy = np.broadcast_to(
            np.fft.fftfreq(self.box)[:, None] * self.box, (self.box, self.box // 2 + 1)
        )
        fx = np.broadcast_to(
            np.fft.rfftfreq(self.box)[None, :] * self.box, (self.box, self.box // 2 + 1)
        )
        r = self.grid.radius
        return (r >= self.lo) & (r <= hi) & (np.abs(fy.ravel()) > 1.5) & (np.abs(fx.ravel()) > 1.5)


@dataclasses.dataclass(frozen=True)
class _Candidate:
    params: tuple[float, float, float]
    spectrum: _Radial  # equiphase average the background model was fitted to
    coef: F64  # degree-5 background/envelope model
    hi: int
    reach: int
    cc: float

    def score(self, ctx: _Context, hi: int) -> float:
        """Goodness of fit on the common band ``[lo, hi]``: how much the rings reduce the
        mean squared residual of ``P = bg + env * CTF²`` (in units of the background, since
        the noise scales with it) compared with the background alone."""
        sel = ctx.band(hi)
        grid = ctx.grid.subset(sel)
        bg, env = _bg_env(self.spectrum, self.coef, 5, grid.radius)
        data = ctx.power[sel] / bg - 1.0
        model = env / bg * np.sin(chi_2d(grid, *self.params, ctx.optics)) ** 2
        return float(np.mean(data**2) - np.mean((data - model) ** 2))


def _refine_candidate(
    ctx: _Context, rad: _Radial, mean0: float, coef: F64, hi_max: int, max_astig: float
) -> _Candidate:
    """2-D refinement from one 1-D start, then fit resolution on the equiphase average."""
    opt, box, px, lo = ctx.optics, ctx.box, ctx.px, ctx.lo
    scale = box * px
    sel1 = ctx.band(ctx.hi1)
    grid1 = ctx.grid.subset(sel1)
    bg, env = _bg_env(rad, coef, 3, grid1.radius)
    data1 = (ctx.power[sel1] - bg) / bg
    params, _ = _refine_2d(data1, env / bg, grid1, opt, (mean0, 0.0, 0.0), max_astig / 2)
    # Rings closer than 2.5 Fourier pixels alias: cap the band for this defocus.
    alias = int(scale**2 / (5.0 * opt.wavelength_a * (params[0] + 0.5 * max_astig)))
    hi2 = max(ctx.hi1, min(hi_max, alias))
    sel2 = ctx.band(hi2)
    grid2 = ctx.grid.subset(sel2)
    values = ctx.power[sel2]
    total, count = _equiphase(values, grid2, params, opt, box, px, hi2)
    keep = count[lo : hi2 + 1] > 0
    r_epa = np.arange(lo, hi2 + 1, dtype=np.float64)[keep]
    v_epa = total[lo : hi2 + 1][keep] / count[lo : hi2 + 1][keep]
    smooth = ndimage.uniform_filter1d(v_epa, 9, mode="nearest")
    rad2 = _Radial(r_epa, v_epa, np.sqrt(count[lo : hi2 + 1][keep]) / np.maximum(smooth, 1e-30))
    ctf2 = np.sin(chi_1d((r_epa / scale) ** 2, params[0], opt)) ** 2
    _, coef2 = _fit_linear(rad2, ctf2, 5)
    bg2, env2 = _bg_env(rad2, coef2, 5, grid2.radius)
    whitened = (values - bg2) / bg2
    params, _ = _refine_2d(whitened, env2 / bg2, grid2, opt, params, max_astig / 2)
    total, count = _equiphase(whitened, grid2, params, opt, box, px, hi2)
    epa = total / np.maximum(count, 1)
    reach, cc = _fit_resolution(epa, count, params[0], opt, box, px, lo, hi2)
    return _Candidate(params, rad2, coef2, hi2, reach, cc)


def estimate_ctf(
    image: npt.NDArray[np.floating],
    *,
    pixel_size_a: float,
    optics: Optics | None = None,
    defocus_range_a: tuple[float, float] = (3000.0, 50000.0),
    defocus_step_a: float = 100.0,
    max_astig_a: float = 3000.0,
    res_low_a: float = 30.0,
    res_high_a: float = 3.5,
    res_search_a: float = 8.0,
    box: int = 512,
    fft_workers: int = 1,
) -> CtfFit:
    """Estimate defocus, astigmatism and fit resolution of a micrograph.

    Args:
        image: 2-D micrograph (counts; any linear intensity), at least ``box`` on each side.
        pixel_size_a: pixel size (Å, > 0).
        optics: voltage, Cs and amplitude contrast (default 300 kV, 2.7 mm, 0.07).
        defocus_range_a: searched mean defocus range (Å, underfocus positive).
        defocus_step_a: step of the exhaustive 1-D search (Å).
        max_astig_a: largest astigmatism ``defocus1 - defocus2`` considered (Å).
        res_low_a: low-resolution limit of the fit (Å).
        res_high_a: high-resolution limit of the fit (Å); also limited by ring aliasing.
        res_search_a: high-resolution limit of the 1-D search (Å).
        box: spectrum grid (pixels, even): the periodogram is averaged onto the frequencies
            of a ``box``-pixel tile.
        fft_workers: scipy.fft threads.
    Returns:
        The fit; ``low_confidence`` is set rather than raising on a poor micrograph.
    Raises:
        ValueError: if the image is not 2-D, smaller than ``box``, or ``pixel_size_a <= 0``.
    """
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    if min(image.shape) < box:
        raise ValueError(f"image {image.shape} is smaller than the {box}-pixel box")
    if not pixel_size_a > 0:
        raise ValueError("pixel_size_a must be positive")
    shape = (int(image.shape[0]), int(image.shape[1]))
    spectrum = sfft.rfft2(np.asarray(image, dtype=np.float32), workers=fft_workers)
    power = binned_power(np.asarray(spectrum, dtype=np.complex64), shape, box)
    return estimate_ctf_from_power(
        power,
        pixel_size_a=pixel_size_a,
        optics=optics,
        defocus_range_a=defocus_range_a,
        defocus_step_a=defocus_step_a,
        max_astig_a=max_astig_a,
        res_low_a=res_low_a,
        res_high_a=res_high_a,
        res_search_a=res_search_a,
    )


def estimate_ctf_from_power(
    power: npt.NDArray[np.float32],
    *,
    pixel_size_a: float,
    optics: Optics | None = None,
    defocus_range_a: tuple[float, float] = (3000.0, 50000.0),
    defocus_step_a: float = 100.0,
    max_astig_a: float = 3000.0,
    res_low_a: float = 30.0,
    res_high_a: float = 3.5,
    res_search_a: float = 8.0,
) -> CtfFit:
    """``estimate_ctf`` on a power spectrum ``(box, box // 2 + 1)`` in ``rfft2`` layout (as
    ``spectrum.binned_power`` or ``spectrum.power_spectrum`` make); arguments as there.

    Raises:
        ValueError: if ``power`` is not such a half plane or ``pixel_size_a <= 0``.
    """
    box = int(power.shape[0])
    if power.ndim != 2 or box % 2 or power.shape[1] != box // 2 + 1 or box < 16:
        raise ValueError(f"power must be (box, box // 2 + 1) with box even, got {power.shape}")
    if not pixel_size_a > 0:
        raise ValueError("pixel_size_a must be positive")
    opt = optics or Optics()
    grid_all = plane_grid(box, pixel_size_a)
    scale = box * pixel_size_a
    lo = max(2, int(math.ceil(scale / res_low_a)))
    nyq = box // 2 - 1
    hi1 = min(nyq, int(scale / max(res_search_a, 2 * pixel_size_a)))
    rad = _radial_average(power, grid_all.radius, lo, hi1)
    g2_1d = (rad.radius / scale) ** 2
    candidates = np.arange(defocus_range_a[0], defocus_range_a[1] + defocus_step_a, defocus_step_a)
    starts = _search_1d(rad, g2_1d, opt, candidates, 3, keep=4)
    if not starts:
        return CtfFit(0.0, 0.0, 0.0, res_low_a, 0.0, True)
    ctx = _Context(power.ravel().astype(np.float64), grid_all, opt, box, pixel_size_a, lo, hi1)
    hi2 = max(hi1, min(nyq, int(scale / max(res_high_a, 2 * pixel_size_a))))
    cands = []
    for m, c in starts:
        try:
            cands.append(_refine_candidate(ctx, rad, m, c, hi2, max_astig_a))
        except (IndexError, ValueError, np.linalg.LinAlgError):
            continue  # a start whose rings leave too few points to refine: drop it
    if not cands:
        return CtfFit(0.0, 0.0, 0.0, res_low_a, 0.0, True)
    # The start whose rings match the spectrum furthest out wins (a wrong defocus can mimic
    # the low-resolution rings, not the high-resolution ones); ties go to the better fit.
    common = min(c.hi for c in cands)
    ranked = sorted(cands, key=lambda c: (-c.reach, -c.score(ctx, common)))
    best = ranked[0]
    params, reach, cc = best.params, best.reach, best.cc
    rival = [c.reach for c in ranked[1:] if abs(c.params[0] - params[0]) > 0.02 * params[0] + 200]
    ambiguous = bool(rival) and max(rival) > 0.8 * reach
    df1, df2, angle = to_principal(*params)
    fit_res = scale / max(reach, 1)
    edge = not (
        defocus_range_a[0] + defocus_step_a < params[0] < defocus_range_a[1] - defocus_step_a
    )
    low = bool(edge or ambiguous or fit_res > 10.0 or cc < 0.2)
    return CtfFit(df1, df2, angle, fit_res, cc, low)
