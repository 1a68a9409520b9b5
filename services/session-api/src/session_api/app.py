"""The session-api application: its lifespan owns the database, the bus and the leases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import select

from proto import messages as m
from proto.asgi import BodyLimit
from proto.bus.base import Bus
from proto.errors import BusUnavailable
from proto.lease.base import LeaseManager
from proto.runtime import freeze_startup_heap
from proto.settings import AmqpSettings
from proto.states import ExitReason, RunState
from proto.topology import SESSION_API_EVENTS, SESSION_API_LOGS
from session_api import refusals
from session_api.db.engine import make_engine, migrate, sessionmaker
from session_api.db.models import Microscope, Run
from session_api.db.types import utcnow
from session_api.metrics import ApiMetrics
from session_api.notify.service import Notifier
from session_api.projection import Projector
from session_api.reconcile import reconcile_once
from session_api.retention import Policy, retain_once
from session_api.routes import (
    auth,
    control,
    logs,
    microscopes,
    notifications,
    ops,
    runs,
    sessions,
    setup,
    skip,
)
from session_api.settings import ApiSettings
from session_api.views import exposures_per_hour

log = logging.getLogger(__name__)

QUEUE_STATS_TIMEOUT_S = 3.0


def create_app(
    settings: ApiSettings,
    bus: Bus | None = None,
    leases: LeaseManager | None = None,
    registry: CollectorRegistry | None = None,
    *,
    freeze_heap: bool = False,
) -> FastAPI:
    """The app; without ``bus``/``leases`` it connects to RabbitMQ from ``AMQP_*``.
    ``freeze_heap``: the process serves this app for good (``python -m session_api``, the
    demo): freeze the start-up heap once it is up (``proto.runtime``)."""
    metrics = ApiMetrics(registry or CollectorRegistry())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        await migrate(engine)
        app.state.sessionmaker = sessionmaker(engine)
        projector = Projector(app.state.sessionmaker)
        app.state.projector = projector
        notifier = Notifier(app.state.sessionmaker, settings, metrics)
        app.state.notifier = notifier
        projector.listeners.append(notifier.listen)
        app.state.leases = leases or _amqp_leases()
        async with contextlib.AsyncExitStack() as stack:
            await notifier.start()
            stack.push_async_callback(notifier.stop)  # after the bus and the projector stop
            entered = bus
            if entered is None:  # deployments: our own connection; a given bus is entered
                from proto.bus.amqp import AmqpBus

                amqp = AmqpBus(AmqpSettings(), service="session-api", observer=metrics.bus)
                entered = await stack.enter_async_context(amqp)
            subs = [
                await entered.subscribe(SESSION_API_EVENTS, m.Message, projector.event),
                await entered.subscribe(SESSION_API_LOGS, m.LogRecorded, projector.log_line),
            ]
            app.state.bus = entered
            projector.listeners.append(_announcer(entered))
            stopping = asyncio.Event()
            tasks = [
                asyncio.create_task(_reconcile(app, settings, entered, stopping)),
                asyncio.create_task(_retain(app, settings, metrics, stopping)),
            ]
            if freeze_heap:
                freeze_startup_heap()
            try:
                yield
            finally:
                app.state.bus = None
                stopping.set()
                await asyncio.gather(*tasks)
                for sub in subs:
                    await sub.close()
                await projector.drain()
        await engine.dispose()

    app = FastAPI(
        title="Gridpilot session-api",
        version="0.1.0",
        lifespan=lifespan,
        description="Run control for cryo-EM grid screening. Roles: viewer < operator < staff.",
    )
    app.state.settings = settings
    app.state.bus = None
    app.state.metrics = metrics
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    refusals.install(app)
    for router in (
        auth.router,
        microscopes.router,
        sessions.router,
        setup.router,
        logs.router,
        control.router,
        skip.router,
        runs.router,
        ops.router,
        notifications.router,
    ):
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, str]:
        if app.state.bus is None:
            response.status_code = 503
            return {"status": "bus not connected"}
        return {"status": "ready"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        if getattr(app.state, "sessionmaker", None) is not None:
            await _refresh_gauges(app, metrics)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _announcer(bus: Bus) -> Callable[[m.Message], Awaitable[None]]:
    """Tell the pages that an event is committed, so they re-read state that includes it."""

    async def announce(event: m.Message) -> None:
        # SessionChanged is session-api's own word, published once it committed the change:
        # pages take it as it comes (announcing it again would only send them a copy to drop)
        skip = m.StateProjected | m.LogRecorded | m.WorkerHeartbeat | m.SessionChanged
        if isinstance(event, skip):
            return
        try:
            await bus.publish(m.StateProjected.of(event))
        except BusUnavailable:
            log.warning("could not announce a projected %s", event.routing_key)

    return announce


def _amqp_leases() -> LeaseManager:
    from proto.lease.amqp import AmqpLeases

    return AmqpLeases(AmqpSettings())


async def _reconcile(
    app: FastAPI, settings: ApiSettings, bus: Bus, stopping: asyncio.Event
) -> None:
    """Every few seconds until ``stopping``: end ``lost`` the runs that died silently.

    Each round also sends session-api's own heartbeat through its event queue: once that
    heartbeat is projected, every event published before it is too, which tells the
    reconciler how far the projection has caught up (see :func:`reconcile_once`)."""
    suspects: dict[uuid.UUID, datetime] = {}
    projector: Projector = app.state.projector
    host, started = socket.gethostname(), utcnow()
    instance = f"{host}:{os.getpid()}/session-api"
    while not stopping.is_set():
        try:
            await bus.publish(
                m.WorkerHeartbeat(
                    service="session-api",
                    instance=instance,
                    host=host,
                    pid=os.getpid(),
                    started_at=started,
                    interval_s=settings.reconcile_interval_s,
                    handled=projector.handled,
                )
            )
            ended = await reconcile_once(
                app.state.sessionmaker,
                app.state.leases,
                heartbeat_timeout_s=settings.heartbeat_timeout_s,
                start_timeout_s=settings.start_timeout_s,
                suspects=suspects,
                caught_up=projector.beats.get(instance),
            )
            for run in ended:
                await bus.publish(
                    m.RunStateChanged(
                        run_id=run.id,
                        session_id=run.session_id,
                        microscope_id=run.microscope_id,
                        state=RunState.ENDED,
                        exit_reason=ExitReason.LOST,
                        detail=run.detail,
                    )
                )
        except Exception:
            log.exception("reconciling runs failed; trying again next round")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), settings.reconcile_interval_s)


async def _retain(
    app: FastAPI, settings: ApiSettings, metrics: ApiMetrics, stopping: asyncio.Event
) -> None:
    """Every ``retention_interval_s`` (the first round one interval after start): archive and
    delete what the retention settings no longer keep (``session_api.retention``)."""
    policy = Policy.of(settings)
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), settings.retention_interval_s)
        if stopping.is_set():
            return
        try:
            done = await retain_once(
                app.state.sessionmaker, policy, yield_to=app.state.projector.drain
            )
        except Exception:
            log.exception("retention round failed; trying again next round")
            continue
        for kind, rows in (done or {}).items():
            metrics.retired.labels(kind).inc(rows)
        if done is not None:
            metrics.retention_round.set_to_current_time()


async def _refresh_gauges(app: FastAPI, metrics: ApiMetrics) -> None:
    bus: Bus | None = app.state.bus
    if bus is not None:
        try:
            async with asyncio.timeout(QUEUE_STATS_TIMEOUT_S):
                metrics.queues(await bus.queue_stats())
        except (BusUnavailable, TimeoutError) as exc:
            log.warning("queue metrics not refreshed: %r", exc)
    async with app.state.sessionmaker() as db:
        for mic in (await db.scalars(select(Microscope))).all():
            run = await db.scalar(
                select(Run)
                .where(Run.microscope_id == mic.id)
                .order_by(Run.started_at.desc())
                .limit(1)
            )
            current = run.state if run else "idle"
            for state in [*(s.value for s in RunState), "idle"]:
                metrics.run_state.labels(mic.id, state).set(1 if state == current else 0)
            metrics.exposures_per_hour.labels(mic.id).set(await exposures_per_hour(db, mic.id))
            metrics.lease_held.labels(mic.id).set(1 if mic.lease_holder else 0)
            if run and run.state != RunState.ENDED and run.heartbeat_at:
                metrics.heartbeat_age.labels(mic.id).set(
                    (utcnow() - run.heartbeat_at).total_seconds()
                )
            else:
                metrics.heartbeat_age.labels(mic.id).set(0)
            if run and run.last_exposure_at:
                metrics.last_exposure.labels(mic.id).set(run.last_exposure_at.timestamp())
