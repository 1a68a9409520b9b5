"""Server-sent events written on a plain streaming response.

FastAPI's ``EventSourceResponse`` takes every event through two memory streams and a
keep-alive timer of its own; with many pages open that was a good part of a log line's cost
in the ui. A stream here yields ready-made bytes — every event waiting when it wakes up, in
one write — and its own keep-alive comment when idle (``ui.hub.relay``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event

from ui.metrics import SSE_EVENTS

PING_S = 15.0
"""A comment this often on an idle stream keeps proxies and the browser from closing it."""
PING = b": ping\n\n"


def event(name: str, html: str, id: str | None = None) -> bytes:
    """One event (``html`` may span lines: each becomes a ``data:`` line)."""
    SSE_EVENTS.labels(kind=name.split("-")[0]).inc()
    return format_sse_event(event=name, data_str=html, id=id)


def opening(retry_ms: int) -> bytes:
    """The first bytes of a stream: how soon the browser reconnects a dropped one."""
    return format_sse_event(comment="connected", retry=retry_ms)


def response(chunks: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type="text/event-stream",
        # no caching, and no buffering by nginx in front
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
