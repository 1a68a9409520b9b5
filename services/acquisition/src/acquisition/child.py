"""``python -m acquisition.child``: one run in its own process (and process group).

Reads the ``StartRun`` and later commands as ``<routing key> <json>`` lines on stdin, holds
the lease on its own broker connection, prints ``ENDED <reason> <detail>`` when the run ends.
Standard input closing means the supervisor is gone: the run stops softly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys

from acquisition.runloop import RunLoop
from acquisition.service import build_scopes, child_settings, run_settings
from proto import messages as m
from proto.bus.amqp import AmqpBus
from proto.bus.loghandler import BusLogHandler
from proto.lease.amqp import AmqpLeases
from proto.settings import AmqpSettings

LINE_LIMIT = 64 * 2**20
"""Longest command line read (asyncio's default is 64 KiB): a ``run.start`` carries the
atlases and squares of a session's grids from earlier runs, about 150 kB per grid."""


def parse(line: bytes) -> m.Message | None:
    key, _, body = line.decode().strip().partition(" ")
    model = m.model_for(key)
    return model.model_validate_json(body) if model else None


async def main() -> None:
    settings = child_settings(dict(os.environ))
    logging.basicConfig(level=settings.log_level, stream=sys.stderr)
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    start = parse(await reader.readline())
    if not isinstance(start, m.StartRun):
        raise SystemExit("acquisition.child: the first line must be a run.start")
    amqp = AmqpSettings()
    async with AmqpBus(amqp, service="acquisition-run") as bus:
        handler = BusLogHandler(bus, service="acquisition", panel="acquisition")
        logging.getLogger("acquisition").addHandler(handler)
        scope = build_scopes(settings)[start.microscope_id]
        loop = RunLoop(
            start,
            bus=bus,
            leases=AmqpLeases(amqp),
            scope=scope,
            settings=run_settings(settings),
            host=socket.gethostname(),
            pid=os.getpid(),
        )

        async def feed() -> None:
            while line := await reader.readline():
                command = parse(line)
                if command is not None:
                    loop.commands.put_nowait(command)
            loop.commands.put_nowait(m.StopRun(run_id=start.run_id, requested_by="supervisor gone"))

        feeder = asyncio.create_task(feed())
        reason, detail = await loop.execute()
        feeder.cancel()
        await handler.flush_async()
        sys.stdout.write(f"ENDED {reason.value} {detail}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
