"""A stand-in for SerialEM's ``serialem`` Python module — for tests only.

Importable as ``serialem`` when this folder is on ``sys.path`` (a microscope's
``serialem.module_path`` in tests). It talks to the fake SerialEM of
``support.fake_serialem`` over a TCP socket and behaves, towards its caller, as the real module
does; each rule cites where the real one is defined:

* Functions: exactly the SerialEM commands Gridpilot's driver uses, with the argument keys of
  ``MacroMasterList.h`` (mastcu/PythonModule; upper case required, lower case optional;
  S string, I integer, D number) and Python's own ``PyArg_ParseTuple`` type checks, so a wrong
  type is a ``TypeError`` (``SerialEMModule.cpp``: ``RunCommand``); plus ``ConnectToSEM``.
* Returns: ``None`` when a command reports nothing, a single value when it reports one, a
  tuple otherwise; numbers always as floats, text as str (SerialEM help, *About Scripts*,
  "Scripting with Python"; ``RunCommand``).
* Errors: ``SEMerror`` with SerialEM's message when a command fails ("No message from command
  error" without one); ``SEMmoduleError`` for socket failures and when SerialEM will not run
  an external script ("SerialEM is busy and not ready to run a script",
  ``CheckInitialization``); ``SEMexited`` for a user STOP ("User STOP") or ``Exit(0)``
  ("Normal exit") (``RunCommand``; ``PySEMSocket.cpp``: codes -9 and -10).
* Connection: port 48888 on 127.0.0.1 unless ``PY_SERIALEM_PORT`` / ``PY_SERIALEM_IP`` or
  ``ConnectToSEM(port, ip)`` say otherwise, and only the first call in a process picks them
  (``PySEMSocket::InitializeSocket``, its ``firstTime``); the socket opens on the first call;
  a failed send, or a connection closed within 200 ms of sending, is retried once on a new
  socket (``ExchangeMessages``); the answer is awaited without a timeout.
* It keeps the global interpreter lock while it waits for SerialEM, as the real module does
  (``SerialEMModule.cpp`` has no ``Py_BEGIN_ALLOW_THREADS``): the answer is read with libc's
  ``recv`` through ``ctypes.PyDLL``, which does not release the lock.

The wire format between this module and the fake SerialEM (JSON lines) is the stand-in's own;
SerialEM's packs binary arguments.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import json
import os
import socket
import time
from typing import Any

SCRIPT_NORMAL_EXIT = -123456
SCRIPT_USER_STOP = -234561
SCRIPT_EXIT_NO_EXC = -654321
EXTERNAL_PY_PORT = 48888

# name -> argument keys, as in MacroMasterList.h (line numbers of mastcu/PythonModule there)
COMMANDS = {
    "Exit": "ds",  # MAC_SAME_FUNC_ARG(Exit, 0, 4, ScriptEnd, EXIT, ds)
    "View": "",
    "Focus": "",
    "Trial": "",
    "Record": "",
    "Search": "",
    "Montage": "",
    "SaveToOtherFile": "SSSS",
    "OpenNewMontage": "IIS",
    "OpenTextFile": "SSIS",
    "WriteLineToFile": "Ss",
    "CloseTextFile": "S",
    "CloseFile": "s",
    "ReportLastFrameFile": "",
    "MakeDirectory": "S",
    "MoveStageTo": "DDd",
    "ReportStageXYZ": "",
    "ReportMag": "",
    "ImageProperties": "s",
    "Echo": "s",
    "IsVersionAtLeast": "Ss",
    "ReportSlotStatus": "I",
    "LoadCartridge": "I",
    "SetDoseFracParams": "SIiiii",
    "SetFolderForFrames": "S",
    "ReportNumFramesSaved": "",
    "CameraProperties": "ii",
    "SetColumnOrGunValve": "I",
    "GoToLowDoseArea": "S",
    "SetLowDoseMode": "I",
    "ReportLowDose": "",
    "SetFrameBaseName": "IIIS",
    "ReportCameraName": "I",
    "GoToImagingState": "S",
    "BufImageToStageMatrix": "SI",
    "ReportLoadedSlot": "",
}


class SEMerror(Exception):
    """A SerialEM command failed; the text is SerialEM's."""


class SEMmoduleError(Exception):
    """The module itself failed: the socket, or SerialEM would not take a script."""


class SEMexited(Exception):
    """External control ended: a user STOP, or ``Exit(0)``."""


for _kind in (SEMerror, SEMmoduleError, SEMexited):
    _kind.__module__ = "serialem"

_libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: calls keep the GIL
_recv = _libc.recv
_recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_recv.restype = ctypes.c_ssize_t


class _Link:
    """PySEMSocket's behaviour, on a JSON-lines socket."""

    def __init__(self) -> None:
        self.first_time = True
        self.port = 0
        self.ip: str | None = None
        self.sock: socket.socket | None = None
        self.initialized = False  # sInitializedScript
        self.pending = b""

    def initialize(self, port: int = 0, ip: str | None = None) -> None:
        if self.ip and self.sock is not None:
            return
        if self.first_time:
            if not port:
                port = int(os.environ.get("PY_SERIALEM_PORT", EXTERNAL_PY_PORT))
            if port <= 0:
                raise SEMmoduleError("The port number must be positive")
            self.port = port
            self.ip = ip or os.environ.get("PY_SERIALEM_IP") or "127.0.0.1"
            self.first_time = False
        self.open()

    def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.connect((self.ip or "127.0.0.1", self.port))
        except OSError as exc:
            sock.close()
            raise SEMmoduleError(
                f"PySEMSocket: Error connecting to Server socket at IP {self.ip} on port "
                f"{self.port} ({exc.errno})"
            ) from None
        self.sock, self.pending = sock, b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        data = (json.dumps(message) + "\n").encode()
        if self.sock is None:
            self.open()
        for trial in range(2):
            assert self.sock is not None
            try:
                self.sock.sendall(data)
            except OSError as exc:
                self.close()
                if trial:
                    raise SEMmoduleError(
                        f"PySEMSocket: send error {exc.errno} on trial {trial}"
                    ) from None
                self.open()
                continue
            start = time.monotonic()
            line, err = self._read_line()
            if line is not None:
                return dict(json.loads(line))
            self.close()
            if trial or time.monotonic() - start >= 0.2:
                raise SEMmoduleError(f"PySEMSocket: recv error {err} on trial {trial}")
            self.open()
        raise SEMmoduleError("PySEMSocket: Failed to open socket")

    def _read_line(self) -> tuple[bytes | None, int]:
        assert self.sock is not None
        buf = ctypes.create_string_buffer(65536)
        while b"\n" not in self.pending:
            n = _recv(self.sock.fileno(), buf, len(buf), 0)
            if n <= 0:
                code = ctypes.get_errno() if n < 0 else 0
                if code == _errno.EINTR:
                    continue
                return None, code or _errno.ECONNRESET
            self.pending += buf.raw[:n]
        line, _, self.pending = self.pending.partition(b"\n")
        return line, 0


_link = _Link()


def _check_args(name: str, keys: str, args: tuple[Any, ...]) -> None:
    required = sum(1 for k in keys if k.isupper())
    if len(args) > len(keys) or len(args) < required:
        if not keys:
            raise TypeError(f"{name}() takes no arguments ({len(args)} given)")
        bound = "exactly" if required == len(keys) else ("at least" if args else "at most")
        bound = "at most" if len(args) > len(keys) and required != len(keys) else bound
        count = len(keys) if bound in ("exactly", "at most") else required
        plural = "" if count == 1 else "s"
        raise TypeError(f"{name}() takes {bound} {count} argument{plural} ({len(args)} given)")
    for i, (key, value) in enumerate(zip(keys, args, strict=False), start=1):
        kind = key.lower()
        if kind == "s" and not isinstance(value, str):
            raise TypeError(f"{name}() argument {i} must be str, not {type(value).__name__}")
        if kind == "i" and (isinstance(value, float) or not hasattr(value, "__index__")):
            raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
        if kind == "d" and (isinstance(value, str) or not hasattr(value, "__float__")):
            raise TypeError(f"must be real number, not {type(value).__name__}")


def _check_initialization() -> None:
    _link.initialize()
    if _link.initialized:
        return
    answer = _link.exchange({"op": "ok_to_run"})
    code = int(answer.get("code", 0))
    if code:
        _raise_code(code, "check on running external script")
    if not answer.get("ok"):
        raise SEMmoduleError("SerialEM is busy and not ready to run a script")
    _link.initialized = True


def _raise_code(code: int, what: str) -> None:
    _link.close()
    if code == -10:
        raise SEMexited("User STOP")
    if code == -9:
        raise SEMmoduleError(
            "PySEMSocket: Server returned -9, which means SerialEM was disconnected and is now busy"
        )
    raise SEMmoduleError(f"Error {code} returned in socket exchange with SerialEM for {what}")


def _run(name: str, keys: str, args: tuple[Any, ...]) -> Any:
    _check_initialization()
    _check_args(name, keys, args)
    values: list[Any] = []
    for key, value in zip(keys, args, strict=False):
        kind = key.lower()
        values.append(str(value) if kind == "s" else int(value) if kind == "i" else float(value))
    answer = _link.exchange({"op": "command", "name": name, "args": values})
    code = int(answer.get("code", 0))
    if code:
        _raise_code(code, "regular command")
    reported = answer.get("values") or []
    error = int(answer.get("error", 0))
    if error:
        if error == SCRIPT_NORMAL_EXIT:
            _link.initialized = False
            raise SEMexited("Normal exit")
        if error == SCRIPT_USER_STOP:
            _link.initialized = False
            raise SEMexited("User STOP")
        if error == SCRIPT_EXIT_NO_EXC:
            _link.initialized = False
            return None
        text = reported[0] if reported and isinstance(reported[0], str) else None
        raise SEMerror(text or "No message from command error")
    if not reported:
        return None
    converted = tuple(v if isinstance(v, str) else float(v) for v in reported)
    return converted[0] if len(converted) == 1 else converted


def _command(name: str, keys: str) -> Any:
    def command(*args: Any) -> Any:
        return _run(name, keys, args)

    command.__name__ = command.__qualname__ = name
    return command


for _name, _keys in COMMANDS.items():
    globals()[_name] = _command(_name, _keys)


def ConnectToSEM(*args: Any) -> None:  # noqa: N802 - the real module's name
    """``ConnectToSEM([port], [ip])``: open the socket (``PyArg_ParseTuple "|is"``)."""
    if len(args) > 2:
        raise TypeError(f"ConnectToSEM() takes at most 2 arguments ({len(args)} given)")
    _check_args("ConnectToSEM", "is", args)
    _link.initialize(*args)
