"""Logs are events: a logging handler that publishes records to ``screening.logs``.

``emit`` never blocks and never raises in the caller: records go into a bounded queue that one
task publishes; when the queue is full the record is dropped and counted. Context comes from
``extra``: ``run_id``, ``session_id``, ``microscope_id`` and ``panel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

from proto.bus.base import Bus
from proto.messages.log import LogRecorded

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


class BusLogHandler(logging.Handler):
    """Publishes log records of one service as ``LogRecorded`` events."""

    def __init__(
        self,
        bus: Bus,
        *,
        service: str,
        panel: str,
        run_id: UUID | None = None,
        session_id: UUID | None = None,
        microscope_id: str | None = None,
        capacity: int = 10_000,
        level: int = logging.INFO,
    ) -> None:
        super().__init__(level)
        self.bus, self.service, self.panel = bus, service, panel
        self.run_id, self.session_id, self.microscope_id = run_id, session_id, microscope_id
        self.dropped = 0
        self._queue: asyncio.Queue[LogRecorded] = asyncio.Queue(maxsize=capacity)
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._pump(), name=f"logs {service}")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.to_message(record)
            if _running_loop() is self._loop:
                self._offer(message)
            else:
                self._loop.call_soon_threadsafe(self._offer, message)
        except Exception:
            self.handleError(record)

    def to_message(self, record: logging.LogRecord) -> LogRecorded:
        run_id = getattr(record, "run_id", None) or self.run_id
        session_id = getattr(record, "session_id", None) or self.session_id
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text = f"{text}: {record.exc_info[1]!r}"
        return LogRecorded(
            run_id=UUID(str(run_id)) if run_id else None,
            service=self.service,
            panel=getattr(record, "panel", None) or self.panel,
            level=_LEVELS.get(record.levelno, "info"),
            logger=record.name,
            text=text,
            session_id=str(session_id) if session_id else None,
            microscope_id=getattr(record, "microscope_id", None) or self.microscope_id,
        )

    def _offer(self, message: LogRecorded) -> None:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _pump(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self.bus.publish(message)
            except Exception:
                self.dropped += 1
            finally:
                self._queue.task_done()

    async def flush_async(self, timeout: float = 5.0) -> None:
        """Wait until every queued record is published (or ``timeout`` passes)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._queue.join()

    def close(self) -> None:
        self._task.cancel()
        super().close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
