"""Starting, feeding and killing runs: as tasks (embedded) or child processes (deployments).

Both forms share the run loop and differ only in how a run is started and killed. A child
runs in its own process group; killing it is ``SIGKILL`` to the group, which drops its
broker connections and so its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable
from typing import Protocol
from uuid import UUID

from acquisition.driver import Microscope
from acquisition.runloop import RunLoop, RunSettings
from proto import messages as m
from proto.bus.base import Bus
from proto.lease.base import LeaseManager
from proto.states import ExitReason

log = logging.getLogger(__name__)


class Ended(Protocol):
    """Called with how a run ended when its task or process is gone (a process may have
    announced it already, then ``repeat``; a task that crashed has not)."""

    def __call__(
        self, start: m.StartRun, reason: ExitReason, detail: str, *, repeat: bool = False
    ) -> Awaitable[None]: ...


class TaskLauncher:
    """Runs as asyncio tasks of this process (the embedded mode)."""

    def __init__(
        self,
        bus: Bus,
        leases: LeaseManager,
        scopes: dict[str, Microscope],
        settings: RunSettings,
        host: str,
        on_end: Ended,
    ) -> None:
        self.bus, self.leases, self.scopes, self.settings = bus, leases, scopes, settings
        self.host, self.on_end = host, on_end
        self.runs: dict[UUID, tuple[RunLoop, asyncio.Task[tuple[ExitReason, str]]]] = {}

    def live(self) -> set[UUID]:
        return set(self.runs)

    async def start(self, start: m.StartRun) -> int:
        """Start the run as a task; returns the pid that runs it (this process)."""
        loop = RunLoop(
            start,
            bus=self.bus,
            leases=self.leases,
            scope=self.scopes[start.microscope_id],
            settings=self.settings,
            host=self.host,
            pid=os.getpid(),
        )
        task = asyncio.create_task(loop.execute(), name=f"run {start.run_id}")
        self.runs[start.run_id] = (loop, task)
        task.add_done_callback(lambda t: asyncio.ensure_future(self._done(start, t)))
        return os.getpid()

    async def _done(self, start: m.StartRun, task: asyncio.Task[tuple[ExitReason, str]]) -> None:
        self.runs.pop(start.run_id, None)
        if not task.cancelled() and task.exception() is not None:
            await self.on_end(start, ExitReason.FAILED, f"run crashed: {task.exception()!r}")

    async def forward(self, command: m.Message) -> bool:
        entry = self.runs.get(command.run_id) if command.run_id else None
        if entry is None:
            return False
        entry[0].commands.put_nowait(command)
        return True

    async def kill(self, run_id: UUID) -> bool:
        entry = self.runs.pop(run_id, None)
        if entry is None:
            return False
        entry[1].cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await entry[1]
        return True


class _Child:
    def __init__(self, start: m.StartRun, proc: asyncio.subprocess.Process) -> None:
        self.start, self.proc = start, proc
        self.ended: tuple[ExitReason, str] | None = None
        self.killed = False


class ProcessLauncher:
    """Each run in a child process and process group: ``python -m acquisition.child``."""

    def __init__(self, on_end: Ended, env: dict[str, str] | None = None) -> None:
        self.on_end = on_end
        self.env = env or {}
        """Added to the children's environment (the run settings, the bus namespace)."""
        self.children: dict[UUID, _Child] = {}

    def live(self) -> set[UUID]:
        return set(self.children)

    async def start(self, start: m.StartRun) -> int:
        """Start the run's process (its own process group); returns its pid."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "acquisition.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, **self.env},
        )
        child = self.children[start.run_id] = _Child(start, proc)
        await self._send(child, start)
        asyncio.create_task(self._watch(child), name=f"watch run {start.run_id}")
        log.info("run %s started as process %d", start.run_id, proc.pid)
        return proc.pid

    async def _send(self, child: _Child, message: m.Message) -> None:
        assert child.proc.stdin is not None
        line = f"{message.routing_key} {message.model_dump_json()}\n"
        child.proc.stdin.write(line.encode())
        await child.proc.stdin.drain()

    async def _watch(self, child: _Child) -> None:
        assert child.proc.stdout is not None
        async for raw in child.proc.stdout:
            if raw.startswith(b"ENDED "):
                reason, _, detail = raw.decode().strip().removeprefix("ENDED ").partition(" ")
                child.ended = (ExitReason(reason), detail)
        code = await child.proc.wait()
        self.children.pop(child.start.run_id, None)
        if child.killed:
            return
        if child.ended is not None:
            # Say it again from here: the child's own announcement may not have got through
            # (a broker restart); ended is final, so a repeat changes nothing.
            await self.on_end(child.start, *child.ended, repeat=True)
        else:
            pid = child.proc.pid
            await self.on_end(
                child.start, ExitReason.FAILED, f"run process {pid} exited with code {code}"
            )

    async def forward(self, command: m.Message) -> bool:
        child = self.children.get(command.run_id) if command.run_id else None
        if child is None:
            return False
        try:
            await self._send(child, command)
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def kill(self, run_id: UUID) -> bool:
        child = self.children.get(run_id)
        if child is None:
            return False
        child.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.proc.pid, signal.SIGKILL)
        await child.proc.wait()
        return True

    async def close(self) -> None:
        for run_id in list(self.children):
            await self.kill(run_id)
