"""The microscopes a facility runs, configured in one validated file.

``ACQUISITION_MICROSCOPES_FILE`` names a TOML file with one ``[[microscopes]]`` table per
scope (see ``deploy/microscopes.example.toml``): its id and name, the driver that drives it,
its optics and detector, the autoloader, the imaging presets, the stage limits and, for a
SerialEM-driven scope, where SerialEM listens and how its data folder maps onto ours.
``ACQUISITION_MICROSCOPES`` (a JSON list of the same tables) stays as a shortcut for tests and
demos; its older flat form of simulator settings (``{"id", "name", "seed", "speed", …}``) is
still read.
"""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from acquisition.simulator.settings import SimulatorSettings
from proto.messages.optics import Detector, Optics

DriverName = Literal["simulated", "serialem"]


class ConfigError(Exception):
    """The microscope configuration is missing, unreadable or invalid (says where).

    Not a ``ValueError``: raised while the settings are validated, it must reach the
    operator as it is, not folded into a pydantic error."""


class SerialEMConnection(BaseModel):
    """Where SerialEM's external-control socket listens (SerialEM's default port is 48888),
    how long its commands may take, and how the run uses it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(48888, ge=1, le=65535)
    timeout_s: float = Field(60.0, gt=0)
    """How long one ordinary SerialEM call (a stage move, an image, a report) may take
    before the run gives up on it and on the connection."""
    long_timeout_s: float = Field(3600.0, gt=0)
    """How long the long operations may take: the atlas montage and loading a grid."""
    frames_timeout_s: float = Field(120.0, gt=0)
    """How long an exposure's frames may take to appear on the share after SerialEM reports
    the file (cameras write them, then the share shows them)."""
    atlas_montage: tuple[int, int] = (6, 6)
    """Pieces in X and Y of the atlas montage (``OpenNewMontage``)."""
    close_valves_at_end: bool = True
    """Close the column valves when a run lets go of the scope (``SetColumnOrGunValve 0``)."""
    module_path: str | None = None
    """A folder holding SerialEM's ``serialem`` module for this Python, when it is not
    installed where Python finds it (SerialEM's ``PythonModules``, or where it was built)."""


class PathMapping(BaseModel):
    """SerialEM's data folder as SerialEM (Windows) names it, and as the services see it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    windows_path: str = Field(min_length=1)
    """e.g. ``X:\\gridpilot`` — the folder SerialEM saves into."""
    scope_path: Path
    """The same folder on the services' side (a mounted share)."""
    warning_free_fraction: float = Field(0.15, ge=0, le=1)
    """The share is reported low (a warning) below this fraction free."""
    critical_free_fraction: float = Field(0.05, ge=0, le=1)
    """Below this fraction free the run pauses before its next exposure (the disk guard)."""

    @model_validator(mode="after")
    def _warning_before_critical(self) -> PathMapping:
        if self.critical_free_fraction > self.warning_free_fraction:
            raise ValueError("critical_free_fraction must not exceed warning_free_fraction")
        return self

    def to_local(self, windows: str) -> Path:
        """A path SerialEM reported, on our side. Raises ``ValueError`` outside the folder."""
        root, path = PureWindowsPath(self.windows_path), PureWindowsPath(windows)
        try:
            rel = path.relative_to(root)
        except ValueError:
            raise ValueError(f"{windows} is not under {self.windows_path}") from None
        return self.scope_path.joinpath(*rel.parts)

    def to_scope(self, local: PurePath) -> str:
        """A path on our side, as SerialEM names it. Raises ``ValueError`` outside the folder."""
        try:
            rel = PurePath(local).relative_to(self.scope_path)
        except ValueError:
            raise ValueError(f"{local} is not under {self.scope_path}") from None
        return str(PureWindowsPath(self.windows_path).joinpath(*rel.parts))


LOW_DOSE_AREAS = ("View", "Focus", "Trial", "Record", "Search")
"""SerialEM's low-dose areas; ``GoToLowDoseArea`` takes their first letter (V F T R S)."""


class ImagingPresets(BaseModel):
    """What SerialEM uses for each kind of image: an imaging state for the atlas (taken
    outside low dose), low-dose areas for the rest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    atlas: str = Field("Atlas", min_length=1)
    """An imaging state (``GoToImagingState``): its name, a unique start of it, or its number."""
    square: str = "Search"
    hole: str = "View"
    """Not used yet: a run goes from the square image straight to the hole's exposure."""
    exposure: str = "Record"
    exposure_dose_e_per_a2: float = Field(50.0, gt=0, le=1000)
    """The total dose of one exposure (e/Å²) as calibrated on the scope, recorded with every
    movie of a SerialEM-driven scope (the simulated scope knows its own)."""

    @field_validator("square", "hole", "exposure")
    @classmethod
    def _low_dose_area(cls, value: str) -> str:
        for area in LOW_DOSE_AREAS:
            if value.lower() in (area.lower(), area[0].lower()):
                return area
        raise ValueError(f"must be a low-dose area: one of {', '.join(LOW_DOSE_AREAS)}")


class MicroscopeConfig(BaseModel):
    """One microscope of the facility."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str = Field(min_length=1, max_length=120)
    driver: DriverName = "simulated"
    optics: Optics = Field(default_factory=Optics)
    detector: Detector = Field(default_factory=Detector)
    autoloader_slots: int = Field(12, ge=1, le=16)
    stage_radius_um: float = Field(975.0, gt=0)
    """Targets farther than this from the stage centre are never moved to."""
    imaging: ImagingPresets = Field(default_factory=ImagingPresets)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    """Used by the ``simulated`` driver only."""
    serialem: SerialEMConnection | None = None
    paths: PathMapping | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat_simulator_form(cls, data: Any) -> Any:
        """Read the older flat form: simulator settings beside id and name."""
        if not isinstance(data, dict):
            return data
        knobs = set(SimulatorSettings.model_fields) & set(data)
        if not knobs and "pixel_size_a" not in data:
            return data
        data = dict(data)
        simulator = dict(data.get("simulator") or {})
        simulator.update({k: data.pop(k) for k in knobs})
        data["simulator"] = simulator
        if "pixel_size_a" in data:
            detector = dict(data.get("detector") or {})
            detector["pixel_size_a"] = data.pop("pixel_size_a")
            data["detector"] = detector
        return data

    @model_validator(mode="after")
    def _serialem_needs_its_connection(self) -> MicroscopeConfig:
        if self.driver == "serialem" and (self.serialem is None or self.paths is None):
            raise ValueError("driver 'serialem' needs [serialem] (host, port) and [paths]")
        return self


class MicroscopesFile(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid")

    microscopes: list[MicroscopeConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> MicroscopesFile:
        ids = [m.id for m in self.microscopes]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"microscope ids must be unique; repeated: {', '.join(twice)}")
        return self


def load_microscopes(path: Path) -> list[MicroscopeConfig]:
    """The microscopes of a TOML configuration file.

    Raises:
        ConfigError: the file is missing or unreadable, not TOML, or not valid (the message
            names the file and each wrong field).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"microscope configuration {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"microscope configuration {path} is not valid TOML: {exc}") from exc
    try:
        return MicroscopesFile.model_validate(data).microscopes
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"microscope configuration {path}: {problems}") from exc


def default_microscopes() -> list[MicroscopeConfig]:
    """The demo's two simulated scopes: a 300 kV Krios and a 200 kV Glacios."""
    return [
        MicroscopeConfig(
            id="krios-1",
            name="Krios G4 (simulated)",
            optics=Optics(voltage_kv=300, cs_mm=2.7, amplitude_contrast=0.07),
            detector=Detector(name="Falcon 4i (simulated)", pixel_size_a=1.0),
            simulator=SimulatorSettings(seed=11),
        ),
        MicroscopeConfig(
            id="glacios-1",
            name="Glacios (simulated)",
            optics=Optics(voltage_kv=200, cs_mm=2.7, amplitude_contrast=0.07),
            detector=Detector(name="Falcon 4i (simulated)", pixel_size_a=1.0),
            simulator=SimulatorSettings(seed=23),
        ),
    ]
