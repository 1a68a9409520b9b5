"""A lease holder in its own process, for SIGKILL tests: prints HELD, then waits forever.

Usage: python lease_child.py <namespace> <microscope_id>
"""

from __future__ import annotations

import asyncio
import os
import sys

from proto.lease.amqp import AmqpLeases
from proto.messages.lease import LeaseHolder
from proto.settings import AmqpSettings


async def main(namespace: str, microscope_id: str) -> None:
    leases = AmqpLeases(AmqpSettings(), namespace=namespace)
    holder = LeaseHolder(
        microscope_id=microscope_id, session_name="child", host="localhost", pid=os.getpid()
    )
    await leases.acquire(holder)
    sys.stdout.write("HELD\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
