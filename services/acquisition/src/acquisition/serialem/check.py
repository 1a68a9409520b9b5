"""``gridpilot scope check``: what a facility runs on day one against its real SerialEM.

Connects as a run would, reports what SerialEM says about the scope (version, stage,
magnification, camera, autoloader), checks the path mapping by having SerialEM write a small
file into its data folder and finding it on this side, and — only when asked — moves the stage a
little and back. It loads nothing, acquires nothing, and leaves the column valves alone.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PureWindowsPath
from typing import Any, Literal

from acquisition.config import MicroscopeConfig
from acquisition.driver import DriverError
from acquisition.serialem import files
from acquisition.serialem.client import SerialEMClient
from acquisition.serialem.connection import (
    ExternalControlRefused,
    SerialEMUnreachable,
    first,
    open_serialem,
    slot_status,
    version_text,
)
from acquisition.serialem.loader import REPORTS_LOADED_SLOT

MOVE_UM = 20.0
"""How far ``--move`` moves the stage (in X, then back)."""
MOVE_TOLERANCE_UM = 2.0
PROBE_ID = "GPCHECK"
PROBE_WAIT_S = 15.0
"""At most this long (and at most ``frames_timeout_s``) for the probe file to show here."""

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Step:
    name: str
    status: Status
    detail: str


class _Failed(Exception):
    pass


class Check:
    """One check of one microscope; each step is handed to ``report`` as it is done."""

    def __init__(
        self, config: MicroscopeConfig, *, move: bool, report: Callable[[Step], None]
    ) -> None:
        if config.serialem is None or config.paths is None:
            raise ValueError(f"microscope {config.id} is not driven through SerialEM")
        self.config, self.move, self.report = config, move, report
        self.conn, self.paths = config.serialem, config.paths
        self.steps: list[Step] = []
        self.client: SerialEMClient | None = None
        self.version = 0

    def step(self, name: str, status: Status, detail: str) -> None:
        self.steps.append(Step(name, status, detail))
        self.report(self.steps[-1])
        if status == "fail":
            raise _Failed(detail)

    async def sem(self, name: str, *args: str | int | float) -> Any:
        assert self.client is not None
        return await self.client.call(name, *args)

    async def run(self) -> bool:
        """All steps; True when none failed. A step that fails ends only itself, unless the
        connection is gone: then the rest are skipped."""
        try:
            await self._connect()
        except _Failed:
            return False
        try:
            for name, step in (
                ("stage", self._stage),
                ("magnification", self._optics),
                ("camera", self._camera),
                ("autoloader", self._autoloader),
                ("path mapping", self._path_mapping),
                ("stage move", self._stage_move),
            ):
                if self.client is None or not self.client.alive:
                    self.steps.append(Step(name, "skip", "not connected"))
                    self.report(self.steps[-1])
                    continue
                try:
                    await step()
                except _Failed:
                    pass  # the step said why
                except DriverError as exc:
                    self.steps.append(Step(name, "fail", str(exc)))
                    self.report(self.steps[-1])
        finally:
            await self._let_go()
        return not any(s.status == "fail" for s in self.steps)

    async def _connect(self) -> None:
        where = f"{self.conn.host}:{self.conn.port}"
        try:
            self.client, self.version = await open_serialem(self.conn)
        except (SerialEMUnreachable, ExternalControlRefused) as exc:
            self.step("connection", "fail", str(exc))
        except DriverError as exc:
            self.step("module", "fail", str(exc))
        assert self.client is not None
        self.step("module", "ok", f"serialem from {self.client.module_file}")
        self.step(
            "connection",
            "ok",
            f"SerialEM {version_text(self.version)} at {where} took external control",
        )

    async def _stage(self) -> None:
        x, y, z = (float(v) for v in await self.sem("ReportStageXYZ"))
        limit = self.config.stage_radius_um
        distance = (x * x + y * y) ** 0.5
        status: Status = "ok" if distance <= limit else "warn"
        self.step(
            "stage",
            status,
            f"X {x:.1f} µm, Y {y:.1f} µm, Z {z:.1f} µm ({distance:.0f} µm from the centre; "
            f"Gridpilot moves within {limit:.0f} µm)",
        )

    async def _optics(self) -> None:
        mag, low_mag, _ = (float(v) for v in await self.sem("ReportMag"))
        on, area = (float(v) for v in await self.sem("ReportLowDose"))
        areas = ("View", "Focus", "Trial", "Record", "Search")
        where = f"low dose on, in {areas[int(area)]}" if on and 0 <= area < 5 else "low dose off"
        mode = " (low mag)" if low_mag else ""
        self.step("magnification", "ok", f"{mag:.0f}×{mode}, {where}")

    async def _camera(self) -> None:
        name = first(await self.sem("ReportCameraName", 0))
        props = await self.sem("CameraProperties")
        size = f", {props[0]:.0f} × {props[1]:.0f} px" if isinstance(props, tuple) else ""
        configured = self.config.detector.name
        self.step(
            "camera",
            "ok",
            f"{name}{size} (configured: {configured}, {self.config.detector.frame_format} "
            f"frames, {self.config.detector.pixel_size_a} Å/px)",
        )

    async def _autoloader(self) -> None:
        words, errors = [], 0
        for slot in range(1, self.config.autoloader_slots + 1):
            status, name = slot_status(await self.sem("ReportSlotStatus", slot))
            errors += status < 0
            shown = {1: f"'{name}'" if name else "occupied", 0: "empty"}.get(status, "unreadable")
            words.append(f"{slot} {shown}")
        loaded = ""
        if self.version >= REPORTS_LOADED_SLOT:
            on_stage = int(float(first(await self.sem("ReportLoadedSlot")) or 0))
            loaded = f"; on the stage: slot {on_stage}" if on_stage else "; none on the stage"
        self.step(
            "autoloader",
            "warn" if errors else "ok",
            f"{self.config.autoloader_slots} slots: {', '.join(words)}{loaded}",
        )

    async def _path_mapping(self) -> None:
        local_root = self.paths.scope_path
        if not local_root.is_dir():
            self.step(
                "path mapping",
                "fail",
                f"scope_path {local_root} is not a folder here: is the share mounted?",
            )
        name = f"gridpilot-check-{uuid.uuid4().hex[:8]}.txt"
        token = uuid.uuid4().hex
        windows = str(PureWindowsPath(self.paths.windows_path, name))
        try:
            await self.sem("OpenTextFile", PROBE_ID, "W", 0, windows)
            await self.sem("WriteLineToFile", PROBE_ID, token)
            await self.sem("CloseTextFile", PROBE_ID)
        except DriverError as exc:
            if exc.fatal:
                raise
            self.step(
                "path mapping",
                "fail",
                f"SerialEM cannot write {windows} ({exc}): is windows_path the folder SerialEM "
                "saves into?",
            )
        local = self.paths.to_local(windows)
        wait = min(PROBE_WAIT_S, self.conn.frames_timeout_s)
        if not await files.appeared(local, wait):
            self.step(
                "path mapping",
                "fail",
                f"SerialEM wrote {windows}, but {local} did not appear here within "
                f"{wait:.0f} s: windows_path and scope_path are not the same folder, or "
                "the share is not mounted",
            )
        if local.read_text().strip() != token:
            self.step(
                "path mapping", "fail", f"{local} is there but does not hold what SerialEM wrote"
            )
        try:
            local.unlink()
        except OSError as exc:
            self.step(
                "path mapping",
                "fail",
                f"{windows} reached {local}, but this side cannot delete it ({exc.strerror}): "
                "the services write previews and thumbnails into the share",
            )
        self.step("path mapping", "ok", f"{windows} → {local}: written there, found here, removed")

    async def _stage_move(self) -> None:
        if not self.move:
            self.step(
                "stage move",
                "skip",
                f"dry run: nothing moved (--move moves the stage {MOVE_UM:.0f} µm and back)",
            )
            return
        x, y, _ = (float(v) for v in await self.sem("ReportStageXYZ"))
        target = x + MOVE_UM if x + MOVE_UM <= self.config.stage_radius_um else x - MOVE_UM
        await self.sem("MoveStageTo", target, y)
        reached = float((await self.sem("ReportStageXYZ"))[0])
        await self.sem("MoveStageTo", x, y)
        back = float((await self.sem("ReportStageXYZ"))[0])
        if abs(reached - target) > MOVE_TOLERANCE_UM or abs(back - x) > MOVE_TOLERANCE_UM:
            self.step(
                "stage move",
                "fail",
                f"asked X {target:.1f} then {x:.1f} µm, the stage "
                f"reported {reached:.1f} then {back:.1f} µm",
            )
        self.step("stage move", "ok", f"X {x:.1f} → {target:.1f} → {back:.1f} µm")

    async def _let_go(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        if client.alive:
            with contextlib.suppress(DriverError):
                await client.call("Exit", 1)
        await client.close()
