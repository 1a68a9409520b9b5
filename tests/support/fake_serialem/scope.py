"""The fake SerialEM's commands: what each does to the fake scope, and what it reports.

Each command follows SerialEM's script-command reference (``hlp/html/script_commands.htm`` of
mastcu/SerialEM; its entry is named in the method's docstring) and, where the help is silent,
SerialEM's source (``MacroCommands.cpp``). A command raises :class:`CommandError` where
SerialEM aborts the script with a message; that becomes ``SEMerror`` in the module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from acquisition.simulator.settings import SimulatorSettings
from support.fake_serialem.acquire import AcquisitionCommands, CommandError
from support.fake_serialem.world import Grid, Image

AREAS = "VFTRS"
LD_MAGS = {0: 4800.0, 1: 64000.0, 2: 64000.0, 3: 105000.0, 4: 580.0}
STAGE_LIMIT_UM = 1000.0


@dataclass
class Disk:
    """The Windows side's files: drive letter ``share_drive`` is the shared folder."""

    share_windows: str
    share_local: Path
    other_drives: Path

    def local(self, windows: str) -> Path:
        path = PureWindowsPath(windows)
        if not path.drive:
            raise CommandError(f"{windows} is not an absolute path")
        root = PureWindowsPath(self.share_windows)
        try:
            return self.share_local.joinpath(*path.relative_to(root).parts)
        except ValueError:
            drive = path.drive.rstrip(":").strip("\\") or "unc"
            return self.other_drives.joinpath(drive, *path.parts[1:])


@dataclass
class FakeScope(AcquisitionCommands):
    settings: SimulatorSettings
    disk: Disk
    version: int = 40201
    camera: str = "Falcon 4i (stand-in)"
    frame_suffix: str = ".mrc"
    pixel_size_a: float = 1.0
    names: dict[int, str] = field(default_factory=dict)
    """Cassette slot → the name of the grid in it (what the autoloader panel shows)."""
    occupied: set[int] = field(default_factory=set)
    """Slots holding a cartridge now (the one on the stage has left its slot)."""
    imaging_states: tuple[str, ...] = ("Atlas", "Grid montage", "Search 580x")
    stage: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    low_dose: bool = True
    area: int = 3
    mag: tuple[float, int] = (105000.0, 0)
    valves_open: bool = False
    on_stage: int | None = None
    buffers: dict[str, Image] = field(default_factory=dict)
    montage: tuple[int, int, Path] | None = None
    text_files: dict[str, Path] = field(default_factory=dict)
    frame_folder: str | None = None
    frame_base: str = "frames"
    save_frames: dict[str, bool] = field(default_factory=dict)
    frames_vanish: bool = False
    """Fault: the camera writes the frames where the share does not show them."""
    last_frames: str | None = None
    frames_saved: int = 0
    moves: int = 0
    exposures: int = 0
    log: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.names:
            self.names = {slot: f"grid{slot:02d}" for slot in range(1, 13)}
        if not self.occupied:
            self.occupied = set(self.names)

    # --- plumbing -----------------------------------------------------------------------

    def run(self, name: str, args: list[Any]) -> list[Any]:
        """Do ``name``; returns the reported values."""
        self.calls.append(name)
        method = getattr(self, f"cmd_{name}", None)
        if method is None:
            raise CommandError(f"{name} is not a command this SerialEM knows")
        result = method(*args)
        if result is None:
            return []
        return list(result) if isinstance(result, tuple) else [result]

    def grid(self) -> Grid:
        if self.on_stage is None:
            raise CommandError("No cartridge is loaded on the stage")
        return Grid(self.on_stage, self.names[self.on_stage], self.settings)

    # --- version, log, properties -------------------------------------------------------

    def cmd_IsVersionAtLeast(self, version: str, date: str | None = None) -> float:  # noqa: N802
        """IsVersionAtLeast #V [#D]: 1 if the version is at least #V, else 0."""
        return 1.0 if int(float(version)) <= self.version else 0.0

    def cmd_Echo(self, text: str = "") -> None:  # noqa: N802
        """Echo [text]: prints to the log."""
        self.log.append(text)

    # --- stage and optics ---------------------------------------------------------------

    def cmd_ReportStageXYZ(self) -> tuple[float, ...]:  # noqa: N802
        """ReportStageXYZ: the stage position (µm)."""
        return tuple(self.stage)

    def cmd_MoveStageTo(self, x: float, y: float, z: float | None = None) -> None:  # noqa: N802
        """MoveStageTo #X #Y [#Z]: move in microns; Z unchanged when omitted."""
        if math.hypot(x, y) > STAGE_LIMIT_UM:
            raise CommandError(f"Stage move to {x:.1f}, {y:.1f} is outside the stage limits")
        self.moves += 1
        every = self.settings.faults.stage_error_every
        self.take("move")
        if every and self.moves % every == 0:
            raise CommandError("Stage movement timed out (injected fault)")
        self.stage[:2] = [x, y]
        if z is not None:
            self.stage[2] = z

    def cmd_ReportMag(self) -> tuple[float, float, float]:  # noqa: N802
        """ReportMag: mag, 1 if low mag mode, 1 EFTEM / 2 STEM / 0."""
        return (self.mag[0], float(self.mag[1]), 0.0)

    def cmd_SetLowDoseMode(self, on: int) -> float:  # noqa: N802
        """SetLowDoseMode #: on or off; reports the previous state."""
        before, self.low_dose = self.low_dose, bool(on)
        if self.low_dose:
            self.mag = (LD_MAGS[self.area], 0)
        return 1.0 if before else 0.0

    def cmd_ReportLowDose(self) -> tuple[float, float]:  # noqa: N802
        """ReportLowDose: whether low dose is on, and the area (0 for V, …)."""
        return (1.0 if self.low_dose else 0.0, float(self.area if self.low_dose else -1))

    def cmd_GoToLowDoseArea(self, area: str) -> None:  # noqa: N802
        """GoToLowDoseArea area: one of V, F, T, R, S; only in low dose mode
        (MacroProcessor.cpp, CheckAndConvertLDAreaLetter)."""
        if not self.low_dose:
            raise CommandError(
                "You must be in low dose mode to use this command:\n\nGoToLowDoseArea " + area
            )
        index = AREAS.find(area[:1])
        if not area or index < 0:
            raise CommandError(
                "Command must be followed by one of V, F, T, R, or S in line:\n\n"
                "GoToLowDoseArea " + area
            )
        self.area, self.mag = index, (LD_MAGS[index], 0)

    def cmd_GoToImagingState(self, name: str) -> float:  # noqa: N802
        """GoToImagingState name: 0, or 1 no match, 2 several match, 3 number out of range
        (the command reports the failure; it does not abort)."""
        matches = [s for s in self.imaging_states if s.lower().startswith(name.lower())]
        exact = [s for s in self.imaging_states if s.lower() == name.lower()]
        if name.isdigit():
            index = int(name)
            if not 1 <= index <= len(self.imaging_states):
                return 3.0
            matches = [self.imaging_states[index - 1]]
        if exact:
            matches = exact
        if not matches:
            return 1.0
        if len(matches) > 1:
            return 2.0
        self.low_dose = False
        self.mag = (62.0, 1)
        return 0.0

    def cmd_SetColumnOrGunValve(self, open_: int) -> None:  # noqa: N802
        """SetColumnOrGunValve #: 0 closes, 1 opens."""
        self.valves_open = bool(open_)

    # --- camera -------------------------------------------------------------------------

    def cmd_ReportCameraName(self, number: int) -> str:  # noqa: N802
        """ReportCameraName #: the active camera's name (current one if # is not positive)."""
        return self.camera if number <= 1 else "NOCAM"

    def cmd_CameraProperties(self, camera: int = 0, mag: int = 0) -> tuple[float, ...]:  # noqa: N802
        """CameraProperties [#C] [#M]: size X, Y, RotationAndFlip, detector pixel (µm),
        pixel on the specimen, camera number."""
        return (4096.0, 4096.0, 0.0, 14.0, self.pixel_size_a / 10, 1.0)

    def cmd_SetDoseFracParams(self, set_: str, dose_frac: int, save: int = -1, *rest: int) -> None:  # noqa: N802
        """SetDoseFracParams set #D [#S] [#A] [#M] [#C]: #S non-zero saves frames."""
        if save != -1:
            self.save_frames[set_.upper()[:1]] = bool(save)

    def cmd_SetFolderForFrames(self, folder: str) -> None:  # noqa: N802
        """SetFolderForFrames dir: an absolute path (drive letter or network path)."""
        if not (PureWindowsPath(folder).drive or folder.startswith("\\\\")):
            raise CommandError(f"The folder for frames must be an absolute path: {folder}")
        self.frame_folder = folder

    def cmd_SetFrameBaseName(self, keep: int, in_file: int, in_dir: int, name: str) -> None:  # noqa: N802
        """SetFrameBaseName #K #F #D name."""
        self.frame_base = name

    def cmd_ReportLastFrameFile(self) -> str | tuple[str, str, str]:  # noqa: N802
        """ReportLastFrameFile: the path, folder and name of the last frame file (three
        values since SerialEM 4.0; the path alone before, SmartScope's highmag())."""
        if self.last_frames is None:
            raise CommandError("No frames have been saved from this camera")
        path = PureWindowsPath(self.last_frames)
        if self.version < 40000:
            return self.last_frames
        return (self.last_frames, str(path.parent), path.name)

    def cmd_ReportNumFramesSaved(self) -> float:  # noqa: N802
        """ReportNumFramesSaved: frames saved in the last acquisition that saved frames."""
        return float(self.frames_saved)
