"""RabbitMQ restarted during a run (amqp only): the run ends ``lost`` safely, the services
reconnect, no acknowledged exposure is lost, and a new Start works."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from uuid import uuid4

import pytest

from proto import messages as m
from proto.bus.amqp import AmqpBus
from proto.lease.amqp import AmqpLeases
from support.broker import require_rabbitmq
from support.system import running_system


async def restart_broker() -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        pytest.fail("rabbitmqctl is needed to restart the local broker; run `make test`")
    for action in ("stop_app", "start_app", "await_startup"):
        proc = await asyncio.create_subprocess_exec(
            ctl, action, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        assert proc.returncode == 0, f"rabbitmqctl {action}: {err.decode()}"


@pytest.mark.rabbitmq
@pytest.mark.timeout(300)
async def test_broker_restart_during_a_run(tmp_path: Path) -> None:
    settings = require_rabbitmq().model_copy(
        update={"namespace": f"t{uuid4().hex[:10]}", "publish_retry_s": 60}
    )
    bus = AmqpBus(settings, service="test", delete_on_exit=True)
    url = f"sqlite+aiosqlite:///{tmp_path / 'gp.db'}"
    async with running_system(
        bus, AmqpLeases(settings), tmp_path, url, mode="process", slow_file_s=0.3
    ) as system:
        session = await system.session("restart", grids=3)
        run_id = await system.start(session["id"])
        await system.wait_for(m.ExposureAcquired, lambda e: e.run_id == run_id)
        await restart_broker()
        ended = await system.ended(run_id, timeout=120)
        assert ended.exit_reason == "lost"
        acquired = {
            e.exposure_id
            for e in system.projected
            if isinstance(e, m.ExposureAcquired) and e.run_id == run_id
        }
        for exposure_id in acquired:  # every acknowledged movie still gets processed
            await system.wait_for(
                m.ExposureProcessed, lambda e, x=exposure_id: e.exposure_id == x, timeout=120
            )
        again = await system.start(session["id"])
        await system.wait_for(m.LeaseGranted, lambda e: e.holder.run_id == again, timeout=60)
        await system.clients["operator"].post(f"/api/sessions/{session['id']}/stop")
        assert (await system.ended(again)).exit_reason == "stopped"
