"""Calling SerialEM's ``serialem`` module, off the event loop, one command at a time, each
with a timeout.

The module runs in a bridge process (:mod:`acquisition.serialem.bridge`, which says why).
What the module raises becomes a :class:`~acquisition.driver.DriverError`:

* ``SEMerror`` — SerialEM could not do the command (its text is kept): the command failed,
  the connection is fine.
* ``SEMmoduleError`` — the socket to SerialEM failed, or SerialEM would not take external
  control; ``SEMexited`` — external control ended (SerialEM's STOP button): fatal, the run
  cannot go on.
* no answer within the timeout: the bridge is killed (SerialEM sees the socket close and
  leaves external control) and the error is fatal.

After a fatal error the client is *broken*: every later call fails at once with the same
reason; a new :meth:`SerialEMClient.start` begins afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from typing import Any

from acquisition.driver import DriverError

log = logging.getLogger(__name__)

BRIDGE_START_S = 30.0
"""How long the bridge may take to start and import the module."""


class SerialEMClient:
    """One bridge process and the commands sent through it."""

    def __init__(self, where: str, *, timeout_s: float, module_path: str | None = None) -> None:
        self.where = where
        """``host:port`` of SerialEM, for messages."""
        self.timeout_s = timeout_s
        self.module_path = module_path
        self.module_file: str | None = None
        self.broken: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._next_id = 0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and self.broken is None

    async def start(self) -> str:
        """Start the bridge and import ``serialem`` there; returns where the module is.

        Raises:
            DriverError: (fatal) the module is not installed, or the bridge did not start.
        """
        await self.close()
        self.broken = None
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "acquisition.serialem.bridge",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=dict(os.environ),
        )
        try:
            found = await self._exchange({"op": "import", "path": self.module_path}, BRIDGE_START_S)
        except _Failed as failed:
            self._give_up(failed.text)
            await self.close()
            if failed.kind in ("ModuleNotFoundError", "ImportError"):
                where = f" or in {self.module_path}" if self.module_path else ""
                raise DriverError(
                    f"SerialEM's Python module 'serialem' cannot be imported by {sys.executable}"
                    f"{where} ({failed.text}); install it as docs/microscopes.md says",
                    fatal=True,
                ) from None
            raise DriverError(
                f"could not load SerialEM's module: {failed.text}", fatal=True
            ) from None
        self.module_file = str(found)
        return self.module_file

    async def call(self, name: str, *args: str | int | float, timeout: float | None = None) -> Any:
        """``serialem.<name>(*args)`` as the module returns it (``None``, a float, a string or a
        tuple of them).

        Raises:
            DriverError: SerialEM failed the command (not fatal), or the connection is gone,
                external control ended, or no answer came within the timeout (fatal).
        """
        if self.broken is not None:
            raise DriverError(self.broken, fatal=True)
        if self._proc is None:
            raise DriverError(f"not connected to SerialEM at {self.where}", fatal=True)
        limit = self.timeout_s if timeout is None else timeout
        try:
            return await self._exchange({"op": "call", "name": name, "args": list(args)}, limit)
        except _Failed as failed:
            raise self._driver_error(name, failed) from None

    def _driver_error(self, name: str, failed: _Failed) -> DriverError:
        if failed.kind == "SEMerror":
            return DriverError(f"SerialEM could not do {name}: {failed.text}")
        if failed.kind == "SEMexited":
            why = "its operator pressed STOP" if "STOP" in failed.text else failed.text
            reason = f"SerialEM at {self.where} ended external control during {name} ({why})"
        elif failed.kind == "SEMmoduleError":
            reason = f"lost SerialEM at {self.where} during {name}: {failed.text}"
        elif failed.kind == "AttributeError":
            reason = (
                f"the serialem module has no command {name}: it is older than this driver "
                "needs; install the module of the SerialEM version in use"
            )
        else:
            reason = f"SerialEM's module failed {name}: {failed.kind}: {failed.text}"
        self._give_up(reason)
        return DriverError(reason, fatal=True)

    async def _exchange(self, request: dict[str, Any], timeout: float) -> Any:
        """Send one request and wait for its answer; serialised (SerialEM takes one command
        at a time). Cancelling the caller (a force-kill) kills the bridge mid-command."""
        async with self._lock:
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            self._next_id += 1
            request = {**request, "id": self._next_id}
            what = request.get("name") or request["op"]
            try:
                proc.stdin.write((json.dumps(request) + "\n").encode())
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), timeout)
            except TimeoutError:
                reason = (
                    f"SerialEM at {self.where} did not answer {what} within {timeout:.0f} s; "
                    "gave up on the connection"
                )
                self._give_up(reason)
                raise DriverError(reason, fatal=True) from None
            except asyncio.CancelledError:
                self._give_up(f"the run was killed during {what}")
                raise
            except (ConnectionError, OSError) as exc:
                reason = f"the SerialEM bridge process is gone ({exc})"
                self._give_up(reason)
                raise DriverError(reason, fatal=True) from None
            if not line:
                code = await proc.wait()
                reason = f"the SerialEM bridge process exited (code {code}) during {what}"
                self._give_up(reason)
                raise DriverError(reason, fatal=True)
            answer = json.loads(line)
            if "error" in answer:
                raise _Failed(str(answer["error"]), str(answer.get("text", "")))
            return _tuples(answer.get("ok"))

    def _give_up(self, reason: str) -> None:
        """Mark broken and kill the bridge: its socket closes, SerialEM leaves external
        control, and a command still running there cannot hold the run."""
        self.broken = reason
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def close(self) -> None:
        """End the bridge (idempotent, never raises): standard input closes, the bridge exits
        and its socket to SerialEM closes."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        # Drop the transport now, on the loop that made it (not in a later finaliser).
        transport = getattr(proc, "_transport", None)
        if transport is not None:
            transport.close()


class _Failed(Exception):
    def __init__(self, kind: str, text: str) -> None:
        super().__init__(f"{kind}: {text}")
        self.kind, self.text = kind, text


def _tuples(value: Any) -> Any:
    """The bridge sends a tuple as a JSON list; the module never returns lists."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value
