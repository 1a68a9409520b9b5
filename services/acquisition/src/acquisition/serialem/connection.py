"""Opening a connection to SerialEM, its version, and the answers whose shape changed between
SerialEM versions.

Connecting is two steps in SerialEM's module: ``ConnectToSEM(port, ip)`` opens the socket
(refused when nothing listens: SerialEM not running, or its property
``EnableExternalPython`` is 0 so it opens no socket), and the first command asks SerialEM
whether it may take external control (``OKtoRunExternalScript``; refused while SerialEM is busy,
e.g. running a script of its own).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from acquisition.config import SerialEMConnection
from acquisition.driver import DriverError
from acquisition.serialem.client import SerialEMClient

OLDEST, NEWEST = 30000, 99999
"""The range of SerialEM's integer versions (``10000·generation + 100·major + minor``)."""


REFUSED_RETRY_S = 1.0


class SerialEMUnreachable(DriverError):
    """Nothing accepted a connection where SerialEM should listen."""


class ExternalControlRefused(DriverError):
    """SerialEM answered but would not hand over control."""


async def open_serialem(
    conn: SerialEMConnection, *, refused_grace_s: float = 0.0
) -> tuple[SerialEMClient, int]:
    """A client connected to SerialEM, and SerialEM's version.

    ``refused_grace_s``: keep asking this long while SerialEM refuses external control (it
    notices a killed run's connection closing a moment after the next run may ask).

    Raises:
        DriverError: (fatal) the module is missing; :class:`SerialEMUnreachable`;
            :class:`ExternalControlRefused`.
    """
    deadline = time.monotonic() + refused_grace_s
    while True:
        try:
            return await _open(conn)
        except ExternalControlRefused:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(REFUSED_RETRY_S)  # SerialEM has no notice for "free again"


async def _open(conn: SerialEMConnection) -> tuple[SerialEMClient, int]:
    where = f"{conn.host}:{conn.port}"
    client = SerialEMClient(where, timeout_s=conn.timeout_s, module_path=conn.module_path)
    await client.start()
    try:
        await client.call("ConnectToSEM", conn.port, conn.host)
    except DriverError as exc:
        await client.close()
        raise SerialEMUnreachable(
            f"nothing answers at {where} ({_module_text(exc)}): is SerialEM running there "
            "with the property EnableExternalPython 1 (and SocketServerPort if the port is "
            "not 48888), and does the firewall let this host in?",
            fatal=True,
        ) from None
    try:
        version = await probe_version(client)
    except DriverError as exc:
        await client.close()
        text = _module_text(exc)
        if "busy" in text or "-9" in text or "STOP" in text:
            raise ExternalControlRefused(
                f"SerialEM at {where} refused external control ({text}): finish or stop what "
                "SerialEM is doing (a script, an acquisition, another program's control), "
                "then try again",
                fatal=True,
            ) from None
        raise
    return client, version


def _module_text(exc: DriverError) -> str:
    text = str(exc)
    marker = ": "
    return text.split(marker, 1)[1] if text.startswith("lost SerialEM") and marker in text else text


async def probe_version(client: SerialEMClient) -> int:
    """SerialEM's integer version, found with ``IsVersionAtLeast`` (SerialEM has no command
    that reports it; about 16 quick calls)."""
    lo, hi = OLDEST, NEWEST
    if not _true(await client.call("IsVersionAtLeast", str(lo))):
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _true(await client.call("IsVersionAtLeast", str(mid))):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _true(value: Any) -> bool:
    first = value[0] if isinstance(value, tuple) else value
    return bool(first) and float(first) != 0.0


def version_text(version: int) -> str:
    """``40201`` → ``4.2.1``; 0 → ``older than 3.0``."""
    if version <= 0:
        return "older than 3.0"
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}"


def first(value: Any) -> Any:
    """The first reported value, whether the module returned one value or a tuple."""
    return value[0] if isinstance(value, tuple) else value


def slot_status(value: Any) -> tuple[int, str | None]:
    """``ReportSlotStatus`` on a Thermo Fisher autoloader: ``(-1 error | 0 empty | 1 occupied,
    the cartridge's name or None)``. Before SerialEM 4.1 the command reported the status
    alone (a float); since then it also reports the name, or the slot number when the name
    cannot be read, so the module returns a tuple."""
    if isinstance(value, tuple):
        status = int(float(value[0]))
        name = value[1] if len(value) > 1 and isinstance(value[1], str) else None
        return status, name
    return int(float(value)), None


def last_frame_file(value: Any) -> str:
    """``ReportLastFrameFile``: the full path; a tuple (path, folder, name) since SerialEM
    4.0, a string before."""
    path = first(value)
    if not isinstance(path, str) or not path:
        raise DriverError(f"SerialEM reported no frame file ({value!r}): is frame saving on?")
    return path
