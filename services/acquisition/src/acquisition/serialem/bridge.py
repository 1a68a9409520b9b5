"""``python -m acquisition.serialem.bridge``: SerialEM's ``serialem`` module in a process of
its own, called one command at a time over a pipe.

Why a process and not a thread: the module keeps Python's global interpreter lock while it
waits for SerialEM (``SerialEMModule.cpp`` calls its socket without
``Py_BEGIN_ALLOW_THREADS``), so a call made in the run's process would freeze that process for
as long as the command takes — an atlas montage takes many minutes — and with it the run's
heartbeats, its Stop handling and the heartbeats of its lease connection, which the broker
would then close. In its own process the module can block as long as SerialEM works; the run
waits without blocking, gives up after a timeout by killing this process (which closes the
socket, and SerialEM leaves external control), and a force-kill of the run's process group
ends it too. The module also binds a process to the first port and address it connects to, so
one bridge per microscope is also what lets one process drive several scopes.

Protocol: one JSON object a line. Requests on standard input: ``{"id", "op": "import",
"path"}`` then ``{"id", "op": "call", "name", "args"}``; answers on the protocol pipe:
``{"id", "ok": value}`` (a tuple comes as a list) or ``{"id", "error": kind, "text"}`` where
kind is ``SEMerror``, ``SEMmoduleError``, ``SEMexited`` or a Python exception's name. The
module's own ``printf`` output goes to standard error, never into the protocol.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from types import ModuleType
from typing import Any, TextIO

SEM_ERRORS = ("SEMerror", "SEMmoduleError", "SEMexited")


def _error_kind(module: ModuleType | None, exc: BaseException) -> str:
    if module is not None:
        for name in SEM_ERRORS:
            kind = getattr(module, name, None)
            if isinstance(kind, type) and isinstance(exc, kind):
                return name
    return type(exc).__name__


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    return repr(value)


def _import(path: str | None) -> ModuleType:
    if path:
        sys.path.insert(0, path)
    return importlib.import_module("serialem")


def serve(requests: TextIO, answers: TextIO) -> None:
    """Answer requests until standard input closes."""
    module: ModuleType | None = None
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        answer: dict[str, Any] = {"id": request.get("id")}
        try:
            if request["op"] == "import":
                module = _import(request.get("path"))
                answer["ok"] = getattr(module, "__file__", None) or "built in"
            elif module is None:
                raise RuntimeError("the serialem module is not imported yet")
            else:
                function = getattr(module, request["name"])
                answer["ok"] = _plain(function(*request.get("args", ())))
        except Exception as exc:  # every failure goes back to the driver, which decides
            answer["error"] = _error_kind(module, exc)
            answer["text"] = str(exc)
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main() -> None:
    # The protocol gets its own copy of standard output; file descriptor 1 then points at
    # standard error, so whatever the module prints from C cannot corrupt an answer.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin, answers)


if __name__ == "__main__":
    main()
