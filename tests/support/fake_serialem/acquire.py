"""The fake SerialEM's commands that load grids, take images and write files.

Mixed into :class:`support.fake_serialem.scope.FakeScope`; the entries of SerialEM's
script-command reference are named in each docstring.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any

import mrcfile
import numpy as np

from acquisition.physics.mrc import write_simulated_mrc
from acquisition.simulator.files import truncate
from support.fake_serialem.world import Image, Placement

if TYPE_CHECKING:
    from support.fake_serialem.scope import FakeScope

REAL_SECONDS = {"load": 90.0, "atlas": 600.0, "move": 4.0, "image": 2.0, "expose": 6.0}
AREA_SETS = {"View": "V", "Focus": "F", "Trial": "T", "Record": "R", "Search": "S"}
PARAMETER_SETS = {"V": 0, "F": 1, "T": 2, "R": 3, "S": 5}


class CommandError(Exception):
    """SerialEM aborted the command with this message."""


class DropConnection(Exception):
    """The fake SerialEM goes away mid-command (the connection drops, nothing listens)."""


def held(gate: Path) -> None:
    """The simulator's gate (``Faults.hold_file``), inside ``Record``: wait while ``gate``
    exists; ``<gate>.held`` exists while waiting."""
    if not gate.exists():
        return
    mark = gate.with_name(gate.name + ".held")
    mark.touch()
    try:
        while gate.exists():
            time.sleep(0.01)  # polled: the test's process owns the gate
    finally:
        mark.unlink(missing_ok=True)


class AcquisitionCommands:
    def take(self: FakeScope, what: str) -> None:
        time.sleep(REAL_SECONDS[what] / self.settings.speed)  # the scope's own time

    def push(self: FakeScope, image: Image) -> None:
        """A new image goes to buffer A; the one there rolls to B."""
        if "A" in self.buffers:
            self.buffers["B"] = self.buffers["A"]
        self.buffers["A"] = image

    def buffer(self: FakeScope, letter: str | None) -> Image:
        image = self.buffers.get((letter or "A").upper()[:1])
        if image is None:
            raise CommandError(
                "Image buffer does not have enough coordinate information for line:\n\n"
            )
        return image

    # --- autoloader ---------------------------------------------------------------------

    def cmd_ReportSlotStatus(self: FakeScope, slot: int) -> Any:  # noqa: N802
        """ReportSlotStatus #: -1 error, 0 empty, 1 occupied, then the name (Thermo/FEI);
        the name since SerialEM 4.1 (SmartScope's loadGrid works around both)."""
        if not 1 <= slot <= max(self.names, default=0):
            return -1.0
        status = 1.0 if slot in self.occupied else 0.0
        if self.version < 40100:
            return status
        return (status, self.names.get(slot, float(slot)))

    def cmd_ReportLoadedSlot(self: FakeScope) -> float:  # noqa: N802
        """ReportLoadedSlot: the slot of the cartridge on the stage, 0 if none (added in
        SerialEM 4.3)."""
        if self.version < 40300:
            raise CommandError("ReportLoadedSlot is not a command in this version of SerialEM")
        return float(self.on_stage or 0)

    def cmd_LoadCartridge(self: FakeScope, slot: int) -> None:  # noqa: N802
        """LoadCartridge #: loads the cartridge of slot # (a long operation)."""
        if slot not in self.occupied:
            raise CommandError(f"There is no cartridge in slot {slot} to load")
        self.take("load")
        if self.on_stage is not None:
            self.occupied.add(self.on_stage)
        self.occupied.discard(slot)
        self.on_stage = slot
        self.stage[:] = [0.0, 0.0, 0.0]
        self.buffers.clear()

    # --- images -------------------------------------------------------------------------

    def _area_image(self: FakeScope, name: str) -> None:
        letter = AREA_SETS[name]
        grid = self.grid()
        if name == "Record":
            self._record(letter)
            return
        self.take("image")
        image = grid.square_image((self.stage[0], self.stage[1]))
        image.parameter_set = PARAMETER_SETS[letter]
        self.push(image)

    def cmd_View(self: FakeScope) -> None:  # noqa: N802
        """V or View: acquires an image with View parameters."""
        self._area_image("View")

    def cmd_Focus(self: FakeScope) -> None:  # noqa: N802
        """F or Focus: acquires an image with Focus parameters."""
        self._area_image("Focus")

    def cmd_Trial(self: FakeScope) -> None:  # noqa: N802
        """T or Trial: acquires an image with Trial parameters."""
        self._area_image("Trial")

    def cmd_Search(self: FakeScope) -> None:  # noqa: N802
        """Search: acquires an image with Search parameters."""
        self._area_image("Search")

    def cmd_Record(self: FakeScope) -> None:  # noqa: N802
        """R or Record: acquires an image with Record parameters (saving frames if set)."""
        self._area_image("Record")

    def _record(self: FakeScope, letter: str) -> None:
        faults = self.settings.faults
        after = faults.disconnect_after_exposures
        if after is not None and self.exposures >= after:
            raise DropConnection()
        grid = self.grid()
        self.exposures += 1
        frames, dose = grid.movie((self.stage[0], self.stage[1]), self.exposures, self.pixel_size_a)
        self.take("expose")
        if faults.hold_file is not None:
            held(faults.hold_file)
        summed = frames.sum(axis=0).astype(np.float32)
        ny, nx = summed.shape
        where = Placement((self.stage[0], self.stage[1]), self.pixel_size_a / 1e4, nx, ny)
        self.push(Image(summed, where, self.pixel_size_a / 10, 3))
        if not self.save_frames.get(letter) or self.frame_folder is None:
            return
        name = f"{self.frame_base}_{self.exposures:03d}{self.frame_suffix}"
        windows = str(PureWindowsPath(self.frame_folder, name))
        self.last_frames, self.frames_saved = windows, frames.shape[0]
        if self.frames_vanish:
            return  # the camera writes them where the share does not show them
        local = self.disk.local(windows)

        def write() -> None:
            write_simulated_mrc(
                local, frames, pixel_size_a=self.pixel_size_a, dose_e_per_a2=dose, overwrite=True
            )
            if faults.truncate_every and self.exposures % faults.truncate_every == 0:
                truncate(local)

        if faults.slow_file_s:  # frames reach the share a while after the exposure
            threading.Timer(faults.slow_file_s, write).start()
        else:
            write()

    # --- montage and files --------------------------------------------------------------

    def cmd_OpenNewMontage(self: FakeScope, nx: int, ny: int, file: str) -> None:  # noqa: N802
        """OpenNewMontage #X #Y file: opens a montage file of #X by #Y pieces."""
        local = self._new_file(file)
        self.montage = (nx, ny, local)

    def cmd_Montage(self: FakeScope) -> None:  # noqa: N802
        """M or Montage: acquires the open montage; the overview lands in buffer B and the
        centre image in A (SerialEM help, About Montaging)."""
        if self.montage is None:
            raise CommandError("There is no montage file open for line:\n\nMontage")
        nx, ny, local = self.montage
        image, _ = self.grid().atlas()
        self.take("atlas")
        rows = np.array_split(image.data[::-1], ny)  # MRC rows run bottom-up
        pieces = [tile for row in rows for tile in np.array_split(row, nx, axis=1)]
        size = min(min(t.shape) for t in pieces)
        with mrcfile.new(local, overwrite=True) as mrc:
            mrc.set_data(np.stack([t[:size, :size] for t in pieces]).astype(np.float32))
        centre = image.data[image.data.shape[0] // 4 : 3 * image.data.shape[0] // 4]
        self.buffers["B"] = image
        self.buffers["A"] = Image(centre.copy(), image.placement, image.pixel_nm, 6)

    def cmd_CloseFile(self: FakeScope, must: str | None = None) -> None:  # noqa: N802
        """CloseFile [#]: closes the current file; with # an error if none is open."""
        if self.montage is None and must:
            raise CommandError("There is no open file to close")
        self.montage = None

    def cmd_BufImageToStageMatrix(self: FakeScope, buf: str, raw: int) -> tuple[float, ...]:  # noqa: N802
        """BufImageToStageMatrix buf #I: the 6-element image-to-stage transformation."""
        return self.buffer(buf).placement.matrix()

    def cmd_ImageProperties(self: FakeScope, buf: str | None = None) -> tuple[float, ...]:  # noqa: N802
        """ImageProperties [buf]: size X, Y, binning, exposure, pixel size (nm), set."""
        image = self.buffer(buf)
        ny, nx = image.data.shape
        return (
            float(nx),
            float(ny),
            image.binning,
            image.exposure_s,
            image.pixel_nm,
            float(image.parameter_set),
        )

    def cmd_SaveToOtherFile(self: FakeScope, buf: str, kind: str, comp: str, file: str) -> None:  # noqa: N802
        """SaveToOtherFile buf typ cmp file: saves the buffer as one image and closes it.
        MRC files are written bottom row first (KImageStore::convertForWriting flips Y)."""
        if kind.upper() not in ("MRC", "-1", "CUR"):
            raise CommandError(f"The stand-in writes MRC files only, not {kind}")
        image = self.buffer(buf)
        local = self._new_file(file, overwrite=True)
        write_simulated_mrc(
            local,
            image.data[::-1],
            pixel_size_a=image.pixel_nm * 10,
            fei_header=False,
            overwrite=True,
        )

    def _new_file(self: FakeScope, file: str, overwrite: bool = False) -> Path:
        local = self.disk.local(file)
        if not local.parent.is_dir():
            raise CommandError(f"Cannot open {file}: the folder does not exist")
        if local.exists() and not overwrite:
            raise CommandError(f"File {file} already exists")
        return local

    def cmd_MakeDirectory(self: FakeScope, folder: str) -> None:  # noqa: N802
        """MakeDirectory dir: creates it (and its parents) if it does not exist."""
        self.disk.local(folder).mkdir(parents=True, exist_ok=True)

    def cmd_OpenTextFile(self: FakeScope, id_: str, mode: str, keep: int, file: str) -> None:  # noqa: N802
        """OpenTextFile ID mode #K file: W opens for writing (an error if it exists)."""
        if mode.upper() not in ("W", "O"):
            raise CommandError("The stand-in opens text files for writing only")
        if id_.upper() in self.text_files:
            raise CommandError(f"A text file with ID {id_} is already open")
        local = self._new_file(file, overwrite=mode.upper() == "O")
        local.write_text("")
        self.text_files[id_.upper()] = local

    def cmd_WriteLineToFile(self: FakeScope, id_: str, line: str = "") -> None:  # noqa: N802
        """WriteLineToFile ID [line]: writes the line to the file with that ID."""
        local = self.text_files.get(id_.upper())
        if local is None:
            raise CommandError(f"There is no text file open with ID {id_}")
        with local.open("a") as fh:
            fh.write(line + "\n")

    def cmd_CloseTextFile(self: FakeScope, id_: str) -> None:  # noqa: N802
        """CloseTextFile ID: closes the file with that ID."""
        if self.text_files.pop(id_.upper(), None) is None:
            raise CommandError(f"There is no text file open with ID {id_}")
