"""Wiring the acquisition service: scopes, run settings, the supervisor on a bus."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from acquisition.config import ConfigError, MicroscopeConfig
from acquisition.driver import Microscope
from acquisition.launchers import ProcessLauncher, TaskLauncher
from acquisition.runloop import RunSettings
from acquisition.settings import AcquisitionSettings
from acquisition.simulator import SimulatedMicroscope
from acquisition.supervisor import Supervisor
from proto import messages as m
from proto.bus.base import Bus
from proto.lease.base import LeaseManager
from proto.topology import ACQUISITION_COMMANDS

RUN_SETTINGS_ENV = "GRIDPILOT_RUN_SETTINGS"
"""How the supervisor hands its settings to a run's child process (JSON)."""


def child_settings(environ: dict[str, str]) -> AcquisitionSettings:
    """The settings a run's child process uses: its supervisor's, else the environment's."""
    raw = environ.get(RUN_SETTINGS_ENV)
    return AcquisitionSettings.model_validate_json(raw) if raw else AcquisitionSettings()


def build_scope(config: MicroscopeConfig, data_root: Path) -> Microscope:
    """The driver of one configured microscope."""
    if config.driver == "simulated":
        return SimulatedMicroscope(config, data_root)
    if config.driver == "serialem":
        from acquisition.serialem.scope import SerialEMMicroscope

        return SerialEMMicroscope(config, data_root)
    raise ConfigError(f"microscope {config.id}: the {config.driver} driver is not available")


def build_scopes(settings: AcquisitionSettings) -> dict[str, Microscope]:
    return {c.id: build_scope(c, settings.data_root) for c in settings.microscopes}


def run_settings(settings: AcquisitionSettings) -> RunSettings:
    return RunSettings(
        data_root=settings.data_root,
        finder_timeout_s=settings.finder_timeout_s,
        heartbeat_s=settings.heartbeat_s,
        squares_per_grid=settings.squares_per_grid,
        holes_per_square=settings.holes_per_square,
    )


def attach(
    bus: Bus,
    settings: AcquisitionSettings,
    leases: LeaseManager | None = None,
    scopes: dict[str, Microscope] | None = None,
) -> Supervisor:
    """Register the supervisor on ``bus`` (before it is entered). ``leases`` is needed for
    the task mode; the process mode's children take their own leases on RabbitMQ."""
    scopes = scopes if scopes is not None else build_scopes(settings)
    supervisor = Supervisor(bus, scopes)
    if settings.run_mode == "task":
        if leases is None:
            raise ValueError("task mode needs a lease manager")
        supervisor.launcher = TaskLauncher(
            bus,
            leases,
            scopes,
            run_settings(settings),
            socket.gethostname(),
            supervisor.announce_end,
        )
    else:
        env = {RUN_SETTINGS_ENV: settings.model_dump_json()}
        namespace = getattr(bus, "namespace", "")
        if namespace:
            env["AMQP_NAMESPACE"] = namespace
        supervisor.launcher = ProcessLauncher(supervisor.announce_end, env)
    bus.on(ACQUISITION_COMMANDS, m.Message, supervisor.on_command)
    return supervisor


@asynccontextmanager
async def reporting(supervisor: Supervisor, interval_s: float) -> AsyncIterator[None]:
    """Report the microscopes now and then every ``interval_s`` while inside."""
    await supervisor.report()
    task = asyncio.create_task(supervisor.report_forever(interval_s))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if isinstance(supervisor.launcher, ProcessLauncher):
            await supervisor.launcher.close()
