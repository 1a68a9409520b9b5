"""The acquisition service's command handler: starts runs, feeds them, kills them, and
reports the microscopes it drives."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol
from uuid import UUID

from acquisition.driver import Microscope
from proto import messages as m
from proto.bus.base import Bus
from proto.states import ExitReason, RunState

log = logging.getLogger(__name__)


class Launcher(Protocol):
    def live(self) -> set[UUID]: ...

    async def start(self, start: m.StartRun) -> int: ...

    async def forward(self, command: m.Message) -> bool: ...

    async def kill(self, run_id: UUID) -> bool: ...


class Supervisor:
    """Handles ``acquisition.commands``: one supervisor drives every microscope it lists."""

    def __init__(self, bus: Bus, scopes: dict[str, Microscope]) -> None:
        self.bus, self.scopes = bus, scopes
        self.launcher: Launcher | None = None
        self.reported: list[Callable[[m.MicroscopeReported], None]] = []
        self._starts: dict[UUID, m.StartRun] = {}
        self._free: dict[str, deque[tuple[float, int]]] = {k: deque(maxlen=120) for k in scopes}

    def microscope_of(self, run_id: UUID | None) -> str | None:
        """The microscope of a run this supervisor started (None for anyone else's)."""
        start = self._starts.get(run_id) if run_id is not None else None
        return start.microscope_id if start else None

    async def on_command(self, command: m.Message) -> None:
        assert self.launcher is not None, "set a launcher before consuming commands"
        if isinstance(command, m.StartRun):
            await self._start(command)
        elif isinstance(command, m.KillRun):
            await self._kill(command)
        elif command.run_id is not None and not await self.launcher.forward(command):
            log.warning(
                "%s for run %s ignored: no live run of that id here",
                command.routing_key,
                command.run_id,
                extra={"run_id": str(command.run_id), "panel": "acquisition"},
            )

    async def _start(self, start: m.StartRun) -> None:
        assert self.launcher is not None
        if start.run_id in self._starts:
            return  # a redelivered start: the run exists already
        self._starts[start.run_id] = start
        if start.microscope_id not in self.scopes:
            await self.announce_end(
                start, ExitReason.FAILED, f"no microscope {start.microscope_id} here"
            )
            return
        pid = await self.launcher.start(start)
        # Announce the process now: the page shows host and PID while the run's process is
        # still importing (a child process takes a second or two before it speaks).
        await self.bus.publish(
            m.RunStateChanged(
                run_id=start.run_id,
                session_id=start.session_id,
                microscope_id=start.microscope_id,
                state=RunState.STARTING,
                host=socket.gethostname(),
                pid=pid,
            )
        )

    async def _kill(self, kill: m.KillRun) -> None:
        assert self.launcher is not None
        start = self._starts.get(kill.run_id)
        found = await self.launcher.kill(kill.run_id)
        extra = {"run_id": str(kill.run_id), "panel": "acquisition"}
        if start is None:
            log.warning("kill for unknown run %s: nothing to kill here", kill.run_id, extra=extra)
            return
        what = "killed its process group" if found else "no process was left"
        log.warning(
            "run %s force-killed by %s: %s", kill.run_id, kill.requested_by, what, extra=extra
        )
        await self.bus.publish(
            m.RunStateChanged(
                run_id=kill.run_id,
                session_id=start.session_id,
                microscope_id=start.microscope_id,
                state=RunState.ENDED,
                exit_reason=ExitReason.KILLED,
                detail=f"force-killed by {kill.requested_by}",
                requested_by=kill.requested_by,
            )
        )

    async def announce_end(
        self, start: m.StartRun, reason: ExitReason, detail: str, *, repeat: bool = False
    ) -> None:
        """End a run whose task or process vanished without saying how it ended, or (with
        ``repeat``) say again how a finished run ended, in case its own word was lost."""
        log.log(
            logging.DEBUG if repeat else logging.ERROR,
            "run %s: %s",
            start.run_id,
            detail,
            extra={"run_id": str(start.run_id), "panel": "acquisition"},
        )
        await self.bus.publish(
            m.RunStateChanged(
                run_id=start.run_id,
                session_id=start.session_id,
                microscope_id=start.microscope_id,
                state=RunState.ENDED,
                exit_reason=reason,
                detail=detail,
            )
        )

    async def report(self) -> None:
        """Announce every microscope with its volumes and the current write rate."""
        now = time.monotonic()
        for scope in self.scopes.values():
            volumes = tuple(scope.volumes())
            history = self._free[scope.id]
            free = sum(v.free_bytes for v in volumes)
            history.append((now, free))
            rate = 0.0
            if len(history) >= 2 and now - history[0][0] > 0:
                rate = max(0.0, (history[0][1] - free) / (now - history[0][0]) * 3600)
            report = m.MicroscopeReported(
                microscope_id=scope.id,
                name=scope.name,
                driver=scope.driver,
                volumes=volumes,
                bytes_per_hour=rate,
            )
            for observer in self.reported:
                observer(report)
            await self.bus.publish(report)

    async def report_forever(self, interval_s: float) -> None:
        while True:
            try:
                await self.report()
            except Exception:
                log.exception("could not report the microscopes; trying again")
            await asyncio.sleep(interval_s)  # periodic report
