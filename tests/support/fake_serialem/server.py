"""A fake SerialEM PC: its external-control socket, backed by a simulated microscope.

It plays SerialEM's side of ``PythonServer.cpp`` (mastcu/SerialEM): one client at a time holds
external control — the first command takes it (``OKtoRunExternalScript`` answers *false* while
SerialEM is busy or another client holds it), ``Exit`` or the client's socket closing gives it
back, a user STOP ends it (the running command, or else the next one, fails with code -10);
commands run one at a time. Faults a test can set: nothing listening (SerialEM not running, or
``EnableExternalPython`` 0), busy (external control refused), a command failing with
SerialEM's message, a command that never answers, SerialEM vanishing mid-command (the
connection drops and nothing listens any more), frames that never reach the share, and the
simulator's own faults (slow or truncated frames, stage errors, a drop after N exposures).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from pathlib import Path
from typing import Any

from acquisition.simulator.settings import SimulatorSettings
from support.fake_serialem.acquire import CommandError, DropConnection
from support.fake_serialem.scope import Disk, FakeScope

SCRIPT_NORMAL_EXIT = -123456
SCRIPT_USER_STOP = -234561
SCRIPT_EXIT_NO_EXC = -654321
SHARE_WINDOWS = "X:\\gridpilot"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeSerialEM:
    """Start with ``with FakeSerialEM(root, settings) as sem:``; ``sem.port`` is where it
    listens and ``sem.scope`` its microscope."""

    def __init__(
        self,
        root: Path,
        settings: SimulatorSettings,
        *,
        version: int = 40201,
        listen: bool = True,
        share_windows: str = SHARE_WINDOWS,
    ) -> None:
        self.share = root / "share"
        self.share.mkdir(parents=True, exist_ok=True)
        disk = Disk(share_windows, self.share, root / "scope-pc")
        self.scope = FakeScope(settings, disk, version=version)
        self.listen = listen
        self.port = free_port()
        self.busy = False
        """SerialEM is busy: it will not hand over external control."""
        self.error_on: dict[str, str] = {}
        """Command name → the message SerialEM fails it with."""
        self.hang_on: set[str] = set()
        """Commands that never answer (until :meth:`stop`)."""
        self.stop_on: set[str] = set()
        """Commands during which the operator presses SerialEM's STOP."""
        self.drop_on: set[str] = set()
        """Commands during which SerialEM vanishes."""
        self.hung = threading.Event()
        self.dropped = threading.Event()
        self.failures: list[str] = []
        """Errors of the fake itself (a test asserts there are none)."""
        self.connections = 0
        self._lock = threading.Lock()
        self._external: socket.socket | None = None
        self._pending_stop = False
        self._release = threading.Event()
        self._listener: socket.socket | None = None
        self._clients: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    # --- life ---------------------------------------------------------------------------

    def __enter__(self) -> FakeSerialEM:
        if self.listen:
            self._listener = socket.create_server(("127.0.0.1", self.port))
            self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._release.set()
        self._close_listener()
        for client in list(self._clients):
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def press_stop(self) -> None:
        """The operator presses SerialEM's STOP between commands."""
        with self._lock:
            if self._external is not None:
                self._external = None
                self._pending_stop = True

    @property
    def external_control(self) -> bool:
        return self._external is not None

    # --- connections --------------------------------------------------------------------

    def _accept(self) -> None:
        while (listener := self._listener) is not None:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.connections += 1
            self._clients.add(client)
            self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        try:
            with client.makefile("rb") as lines:
                for line in lines:
                    answer = self._answer(client, json.loads(line))
                    if answer is None:
                        return
                    client.sendall((json.dumps(answer) + "\n").encode())
        except OSError:
            pass
        finally:
            with self._lock:
                if self._external is client:  # the client's Python ended: control returns
                    self._external = None
            self._clients.discard(client)
            client.close()

    def _answer(self, client: socket.socket, request: dict[str, Any]) -> dict[str, Any] | None:
        if request.get("op") == "ok_to_run":
            with self._lock:
                ok = self._external is None and not self.busy
                if ok:
                    self._external = client
            return {"code": 0, "ok": ok}
        with self._lock:
            if self._external is not client:
                if self._pending_stop:
                    self._pending_stop = False
                    return {"code": -10}
                if self.busy or self._external is not None:
                    return {"code": -9}
                self._external = client
            return self._command(client, str(request["name"]), list(request.get("args", [])))

    def _command(self, client: socket.socket, name: str, args: list[Any]) -> dict[str, Any] | None:
        if name == "Exit":
            self._external = None
            self.scope.calls.append(name)
            code = SCRIPT_NORMAL_EXIT if args and float(args[0]) == 0 else SCRIPT_EXIT_NO_EXC
            return {"code": 0, "error": code, "values": []}
        if name in self.hang_on:
            self.hung.set()
            self._release.wait()
            return None
        if name in self.drop_on:
            self.scope.calls.append(name)
            return self._drop(client)
        if name in self.stop_on:
            self.scope.calls.append(name)
            self._external = None
            return {"code": 0, "error": SCRIPT_USER_STOP, "values": []}
        if name in self.error_on:
            self.scope.calls.append(name)
            return {"code": 0, "error": 1, "values": [self.error_on[name]]}
        try:
            values = self.scope.run(name, args)
        except CommandError as exc:
            return {"code": 0, "error": 1, "values": [str(exc)]}
        except DropConnection:
            return self._drop(client)
        except Exception as exc:  # a bug in the fake: reported, and failed like SerialEM would
            self.failures.append(f"{name}{tuple(args)}: {exc!r}")
            return {"code": 0, "error": 1, "values": [f"stand-in failure: {exc!r}"]}
        return {"code": 0, "error": 0, "values": values}

    def _drop(self, client: socket.socket) -> None:
        """SerialEM vanishes: this connection drops and nothing listens any more."""
        self._close_listener()
        self._external = None
        self.dropped.set()
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        return None
