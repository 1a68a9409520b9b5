"""Ground truth the simulators return beside each image, serialisable to JSON.

All records are frozen dataclasses; ``to_json()`` gives a JSON string and
``Cls.from_json(text)`` rebuilds an equal record. Coordinates are pixels ``(y, x)`` with
``y`` along array axis 0; lengths in ångström (``_a``), nanometres (``_nm``) or pixels (``_px``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Self, TypeVar

T = TypeVar("T")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


class _JsonRecord:
    """Mixin: JSON round trip for frozen dataclasses whose nested records are listed."""

    _nested: dict[str, type[Any]] = {}

    def to_json(self) -> str:
        """Serialise to a JSON string (tuples become lists)."""
        return json.dumps(_plain(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from the dict form produced by ``json.loads(to_json())``."""
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            nested = cls._nested.get(key)
            if nested is None:
                kwargs[key] = _tuplify(value)
            elif isinstance(value, list):
                kwargs[key] = tuple(nested.from_dict(v) for v in value)
            else:
                kwargs[key] = nested.from_dict(value)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Rebuild from a JSON string produced by ``to_json``.

        Raises:
            ValueError: if the text is not JSON or lacks fields.
        """
        try:
            return cls.from_dict(json.loads(text))
        except (TypeError, KeyError) as exc:
            raise ValueError(f"not a {cls.__name__} record: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class CtfTruth(_JsonRecord):
    """CTF parameters in CTFFIND conventions.

    Positive defocus is underfocus; ``defocus1_a >= defocus2_a``; the astigmatism angle is
    the direction of ``defocus1`` measured counter-clockwise from +x (axis 1) towards +y
    (axis 0), in [0, 180). ``b_factor_a2`` is the envelope ``exp(-B g² / 4)`` on amplitude.
    """

    defocus1_a: float
    defocus2_a: float
    astig_angle_deg: float
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    b_factor_a2: float = 0.0

    @property
    def mean_defocus_a(self) -> float:
        """Mean of the two principal defoci (Å)."""
        return 0.5 * (self.defocus1_a + self.defocus2_a)


@dataclasses.dataclass(frozen=True)
class MicrographTruth(_JsonRecord):
    """What was put into a simulated micrograph or movie."""

    seed: int
    tier: str
    shape: tuple[int, int]
    pixel_size_a: float
    dose_e_per_a2: float
    ice_nm: float
    ctf: CtfTruth
    spectral_snr: float
    _nested = {"ctf": CtfTruth}


@dataclasses.dataclass(frozen=True)
class MovieTruth(_JsonRecord):
    """Ground truth of a simulated movie.

    ``shifts_px[i]`` is the ``(dy, dx)`` displacement of the specimen in frame ``i`` relative
    to frame 0 (``shifts_px[0] == (0, 0)``): frame ``i`` shows ``specimen(y - dy, x - dx)``.
    ``local_motion_px`` is the peak amplitude of the extra smooth local motion (0 = none).
    """

    micrograph: MicrographTruth
    n_frames: int
    dose_per_frame_e_per_a2: float
    shifts_px: tuple[tuple[float, float], ...]
    local_motion_px: float
    _nested = {"micrograph": MicrographTruth}


@dataclasses.dataclass(frozen=True)
class SquareTruth(_JsonRecord):
    """One grid square of a simulated atlas.

    ``cls`` is one of ``good, thick, empty, broken, cracked, contaminated``; ``size_px`` is the
    side of the square opening; ``fully_visible`` is False when the rim or the image edge hides
    any part of the opening.
    """

    id: int
    centre: tuple[float, float]
    size_px: float
    cls: str
    ice_nm: float
    fully_visible: bool


@dataclasses.dataclass(frozen=True)
class AtlasTruth(_JsonRecord):
    """Ground truth of a simulated atlas (whole-grid montage)."""

    seed: int
    shape: tuple[int, int]
    mesh: int
    pixel_size_nm: float
    pitch_px: float
    angle_deg: float
    i0: float
    rim_centre: tuple[float, float]
    rim_radius_px: float
    squares: tuple[SquareTruth, ...]
    _nested = {"squares": SquareTruth}


@dataclasses.dataclass(frozen=True)
class HoleTruth(_JsonRecord):
    """One hole of a simulated square image.

    ``cls`` is one of ``empty, good, thick, contaminated``; only ``good`` holes are usable.
    Simulated ice never falls between 90 and 120 nm so that good and thick are unambiguous.
    """

    id: int
    centre: tuple[float, float]
    radius_px: float
    cls: str
    ice_nm: float


@dataclasses.dataclass(frozen=True)
class SquareImageTruth(_JsonRecord):
    """Ground truth of a simulated square image (one grid square with a holey film).

    Only holes whose whole disc lies inside the square opening and the image are listed.
    """

    seed: int
    shape: tuple[int, int]
    pattern: str
    pixel_size_nm: float
    i0: float
    pitch_px: float
    hole_angle_deg: float
    opening_centre: tuple[float, float]
    opening_size_px: float
    opening_angle_deg: float
    holes: tuple[HoleTruth, ...]
    _nested = {"holes": HoleTruth}
