"""A tiny HTTP server for workers: ``/healthz``, ``/readyz`` and ``/metrics``.

Workers (acquisition, processing) have no web framework; this serves the three probes with
the standard library. ``ready`` and ``metrics`` are callables so the worker decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Protocol

Reply = tuple[int, str, bytes]


class AmqpBusLike(Protocol):
    @property
    def connected(self) -> bool: ...


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        ready: Callable[[], bool],
        metrics: Callable[[], tuple[str, bytes]],
    ) -> None:
        self.host, self.port = host, port
        self._ready, self._metrics = ready, metrics
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> HealthServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        for sock in self._server.sockets:
            self.port = int(sock.getsockname()[1])
            break
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def answer(self, path: str) -> Reply:
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            ok = self._ready()
            return (200 if ok else 503), "text/plain", b"ready\n" if ok else b"bus not connected\n"
        if path == "/metrics":
            kind, body = self._metrics()
            return 200, kind, body
        return 404, "text/plain", b"not found\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (
                b"\r\n",
                b"\n",
                b"",
            ):
                pass
            parts = request.decode("latin-1").split()
            status, kind, body = self.answer(parts[1].split("?")[0] if len(parts) > 1 else "/")
            head = (
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'ERR'}\r\n"
                f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


def worker_probes(host: str, port: int, bus: AmqpBusLike, registry: object) -> HealthServer:
    """The probes of a worker: ready while its bus is connected, metrics from ``registry``."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return HealthServer(
        host,
        port,
        ready=lambda: bus.connected,
        metrics=lambda: (CONTENT_TYPE_LATEST, generate_latest(registry)),  # type: ignore[arg-type]
    )


def stop_signal() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (the container's stop, or Ctrl-C)."""
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    return stop


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
