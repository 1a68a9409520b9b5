"""What the pages show, composed from session-api's views: contexts, pop-ups, classifiers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from proto.api import LeaseHolderView, MicroscopeView, QueueView, RunView, SessionView, VolumeView
from proto.messages.base import Message
from proto.messages.disk import MicroscopeReported
from proto.messages.image import (
    ExposureAcquired,
    ExposureProcessed,
    GridFinished,
    GridLoaded,
    ImageFailed,
    QueueUpdated,
)
from proto.messages.lease import LeaseDenied, LeaseGranted, LeaseLost, LeaseReleased
from proto.messages.log import LogRecorded
from proto.messages.run import (
    DecisionRequested,
    DecisionTaken,
    PauseBetweenGridsChanged,
    RunHeartbeatSent,
    RunStateChanged,
)
from proto.messages.session import SessionChanged
from proto.states import ExitReason, RunState
from ui.auth import User
from ui.client import ApiClient, ApiError

SESSION_PARTS = ("process", "controls", "popups", "disk", "queue")


@dataclass(frozen=True)
class Popup:
    """One non-blocking notice at the top of the session page."""

    key: str
    level: str  # info | warning | critical
    title: str
    text: str
    links: tuple[tuple[str, str], ...] = ()
    alert: str = ""
    """Set on the notices a browser alert is for (a scope lock): the same key alerts once."""
    run: RunView | None = None
    """The ended run this notice is about (shown with it; gone once someone took note)."""


@dataclass(frozen=True)
class SessionContext:
    """Everything the session page's partials need."""

    session: SessionView
    user: User
    microscope: MicroscopeView | None = None
    queue: QueueView | None = None

    @property
    def run(self) -> RunView | None:
        return self.session.run

    @property
    def live(self) -> bool:
        return self.run is not None and self.run.state.live

    @property
    def pause_enabled(self) -> bool:
        run = self.run
        return (
            run.pause_between_grids
            if run is not None and run.state.live
            else (self.session.pause_between_grids)
        )

    @property
    def volumes(self) -> list[VolumeView]:
        return self.microscope.volumes if self.microscope is not None else []

    @property
    def holder(self) -> LeaseHolderView | None:
        if self.session.lock_holder is not None:
            return self.session.lock_holder
        return self.microscope.lease_holder if self.microscope is not None else None

    @property
    def popups(self) -> list[Popup]:
        return popups(self)


async def _none() -> None:
    return None


async def load_session(
    api: ApiClient,
    session_id: UUID,
    user: User,
    parts: frozenset[str] = frozenset({"*"}),
    *,
    strict: bool = False,
) -> SessionContext:
    """The session, with its microscope and queue when ``parts`` need them.

    A page load treats those two as optional extras (a failed read leaves them ``None``, but
    for 401: the login expired). A live refresh (``strict``) raises instead: it must not
    replace a part the page shows with one drawn from a failed read, and tries again later.
    """
    every = "*" in parts
    need_scope = every or bool(parts & {"disk", "popups", "controls"})
    need_queue = every or "queue" in parts
    session, scopes, queue = await asyncio.gather(
        api.session(session_id),
        api.microscopes() if need_scope else _none(),
        api.queue(session_id) if need_queue else _none(),
        return_exceptions=True,
    )
    if isinstance(session, BaseException):
        raise session
    for extra in (scopes, queue):
        if isinstance(extra, BaseException) and (
            strict or (isinstance(extra, ApiError) and extra.status == 401)
        ):
            raise extra
    microscope = None
    if isinstance(scopes, list):
        microscope = next((m for m in scopes if m.id == session.microscope_id), None)
    return SessionContext(
        session=session,
        user=user,
        microscope=microscope,
        queue=queue if isinstance(queue, QueueView) else None,
    )


def _holder_links(holder: LeaseHolderView, session: SessionView) -> tuple[tuple[str, str], ...]:
    if holder.session_id is None:
        return ()
    if holder.session_id == session.id:
        return (("This session holds the lock", f"/sessions/{session.id}"),)
    name = holder.session_name or str(holder.session_id)[:8]
    return ((f"Go to session {name}", f"/sessions/{holder.session_id}"),)


RECENT = timedelta(minutes=10)
"""How long a run that stopped as asked still says so (a stop honoured at once must not flash
by unseen). The other ways a run can end are shown until someone takes note."""


def popups(ctx: SessionContext) -> list[Popup]:
    """The notices the seed lists, in order of urgency; the decision prompt is separate.

    Notices about how the session's latest run ended belong to that run (``Popup.run``): the
    page marks them with the run and when it ended, and they go once someone has taken note
    (acknowledged it, for every reader) or a new run starts."""
    run, session, holder = ctx.run, ctx.session, ctx.holder
    out = _outcome(ctx, run) if run is not None and run.state is RunState.ENDED else []
    if holder is not None and holder.session_id != session.id:
        out.insert(
            1 if out and out[0].key.startswith("locked-") else 0,
            Popup(
                f"lock-{holder.run_id or holder.session_id}",
                "warning",
                "Scope in use",
                f"{session.microscope_name} is in use by session {holder.session_name}"
                f" on {holder.host} (PID {holder.pid}).",
                _holder_links(holder, session),
                alert=f"lock:{holder.run_id or holder.session_id}",
            ),
        )
    if (
        run is not None
        and run.state.live
        and (run.state is RunState.STOPPING or run.stop_requested)
    ):
        out.append(
            Popup(
                f"stop-{run.id}",
                "info",
                "Stop signal received",
                "The run will end after the current acquisition.",
            )
        )
    for volume in ctx.volumes:
        if volume.level != "ok":
            left = f", about {volume.hours_left:.1f} h left" if volume.hours_left else ""
            out.append(
                Popup(
                    f"disk-{volume.name}-{volume.level}",
                    "critical" if volume.level == "critical" else "warning",
                    "Disk low",
                    f"Volume {volume.name} is {volume.used_fraction:.0%} full{left}.",
                )
            )
    return out


def _outcome(ctx: SessionContext, run: RunView) -> list[Popup]:
    """How the ended ``run`` ended, unless someone has taken note of it."""
    if run.acknowledged_by is not None:
        return []
    key, reason, scope = f"{run.exit_reason}-{run.id}", run.exit_reason, ctx.session.microscope_name
    if reason is ExitReason.LOCKED:
        # what the run found when it tried (its detail names the holder then); who holds the
        # scope now is the next notice's, live
        why = run.detail or f"{scope} was locked by another session"
        free = f" {scope} is free now." if ctx.holder is None else ""
        text = f"Run {run.number} did not start: {why}.{free}"
        return [Popup(key, "warning", "Scope locked", text, alert=f"locked:{run.id}", run=run)]
    if reason is ExitReason.STOPPED and run.ended_at and datetime.now(UTC) - run.ended_at < RECENT:
        text = "The run stopped after finishing its current acquisition."
        return [Popup(key, "info", f"Run {run.number} stopped", text, run=run)]
    if reason is ExitReason.LOST:
        text = "The run lost the microscope lease and stopped driving the scope." + (
            f" {run.detail}" if run.detail else ""
        )
        return [Popup(key, "critical", "Lease lost", text, run=run)]
    if reason in (ExitReason.FAILED, ExitReason.KILLED):
        word = "failed" if reason is ExitReason.FAILED else "was force-killed"
        return [Popup(key, "warning", f"Run {run.number} {word}", run.detail or "", run=run)]
    return []


# --- which bus messages change which parts ---------------------------------------------------


@dataclass
class SessionFilter:
    """Classifies bus messages for one session page (``run_ids`` grows as runs start)."""

    session_id: UUID
    microscope_id: str
    run_ids: set[UUID] = field(default_factory=set)

    def __call__(self, m: Message) -> frozenset[str] | None:
        sid = getattr(m, "session_id", None)
        if sid is not None and str(sid) == str(self.session_id) and m.run_id is not None:
            self.run_ids.add(m.run_id)
        mine = (sid is not None and str(sid) == str(self.session_id)) or (
            m.run_id is not None and m.run_id in self.run_ids
        )
        if isinstance(m, LogRecorded):
            return frozenset({"log"}) if mine else None
        if isinstance(m, LeaseGranted | LeaseReleased | LeaseLost):
            scope = m.holder.microscope_id
            return (
                frozenset({"process", "controls", "popups"})
                if scope == self.microscope_id
                else None
            )
        if isinstance(m, LeaseDenied):
            return frozenset({"popups"}) if m.microscope_id == self.microscope_id else None
        if isinstance(m, MicroscopeReported):
            return frozenset({"disk", "popups"}) if m.microscope_id == self.microscope_id else None
        if not mine:
            return None
        if isinstance(m, QueueUpdated):
            return frozenset({"queue"})
        if isinstance(m, RunHeartbeatSent):
            return frozenset({"process"})
        if isinstance(m, RunStateChanged | DecisionRequested | DecisionTaken | SessionChanged):
            return frozenset({"process", "controls", "popups", "queue"})
        if isinstance(m, PauseBetweenGridsChanged):  # the prompt says when it is off
            return frozenset({"controls", "popups"})
        if isinstance(m, ExposureAcquired | ExposureProcessed | ImageFailed):
            return frozenset({"process"})
        if isinstance(m, GridLoaded | GridFinished):
            return frozenset({"process", "queue"})
        return None


@dataclass
class FacilityFilter:
    """Classifies bus messages for the dashboard: parts are ``card:<microscope id>``."""

    run_scopes: dict[UUID, str] = field(default_factory=dict)

    def __call__(self, m: Message) -> frozenset[str] | None:
        scope: str | None = None
        if isinstance(m, LogRecorded):
            return None
        if isinstance(m, LeaseGranted | LeaseReleased | LeaseLost):
            scope = m.holder.microscope_id
        elif isinstance(m, LeaseDenied | MicroscopeReported | SessionChanged):
            scope = m.microscope_id
        elif isinstance(m, RunStateChanged | RunHeartbeatSent):
            scope = m.microscope_id
            self.run_scopes[m.run_id] = scope
        elif isinstance(
            m, QueueUpdated | DecisionRequested | DecisionTaken | ExposureProcessed | ImageFailed
        ):
            scope = self.run_scopes.get(m.run_id) if m.run_id else None
            if scope is None:
                return frozenset({"*"})
        return frozenset({f"card:{scope}"}) if scope else None
