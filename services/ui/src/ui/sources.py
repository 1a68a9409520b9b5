"""What the live hubs read and render: a session page's parts, and the dashboard's cards."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from uuid import UUID

from jinja2 import Environment

from proto.api import MicroscopeView, QueueView
from proto.messages.base import Message
from proto.messages.image import QueueUpdated
from proto.messages.lease import LeaseDenied, LeaseGranted, LeaseLost, LeaseReleased
from proto.messages.run import (
    DecisionRequested,
    DecisionTaken,
    PauseBetweenGridsChanged,
    RunStateChanged,
)
from proto.messages.session import SessionChanged
from ui.auth import User
from ui.client import ApiClient
from ui.partials import SESSION_TEMPLATES, scope_card, session_part
from ui.views import FacilityFilter, SessionContext, SessionFilter, load_session

ACTION_PARTS = frozenset({"process", "controls", "popups"})
"""The session parts a control's answer replaces too (``_control_response.html``)."""
CONTROLLED = (
    RunStateChanged,
    DecisionRequested,
    DecisionTaken,
    PauseBetweenGridsChanged,
    SessionChanged,
    LeaseGranted,
    LeaseReleased,
    LeaseLost,
    LeaseDenied,
)
"""Events that follow a control (start, stop, kill, pause, decision, lock release; session-api's
own ``SessionChanged`` for what it commits itself), or end what one began: after these the
action parts are sent even when they render as before, since the acting page may show a
control's answer instead. A disk report, a heartbeat, an exposure or a log line is no such
event: unchanged parts are not resent for them."""


@dataclass(frozen=True)
class SessionSnapshot:
    env: Environment
    ctx: SessionContext
    loaded: frozenset[str]

    def parts(self) -> Iterable[str]:
        return sorted(self.loaded)

    def render(self, part: str, user: User) -> str:
        return session_part(self.env, part, replace(self.ctx, user=user))


@dataclass
class SessionSource:
    """One session page's live parts (``ui.partials.SESSION_TEMPLATES``)."""

    env: Environment
    session_id: UUID
    where: SessionFilter
    """Shared by the feeds of every stream of the session (they all learn its runs)."""

    def resend(self, messages: tuple[Message, ...]) -> frozenset[str]:
        return ACTION_PARTS if any(isinstance(m, CONTROLLED) for m in messages) else frozenset()

    async def load(
        self, api: ApiClient, parts: frozenset[str], messages: tuple[Message, ...]
    ) -> SessionSnapshot:
        wanted = set(SESSION_TEMPLATES) if "*" in parts else set(parts) & set(SESSION_TEMPLATES)
        # A queue update carries the whole queue: no need to read it back.
        queued = [m for m in messages if isinstance(m, QueueUpdated)]
        fetch = frozenset(wanted - {"queue"} if queued else wanted) or frozenset({"process"})
        ctx = await load_session(api, self.session_id, _READER, fetch)
        if queued and "queue" in wanted:
            last = queued[-1]
            view = QueueView(run_id=last.run_id, items=list(last.items), counts=dict(last.counts))
            ctx = replace(ctx, queue=view)
        return SessionSnapshot(self.env, ctx, frozenset(wanted))


@dataclass(frozen=True)
class FacilitySnapshot:
    env: Environment
    scopes: dict[str, MicroscopeView]
    loaded: frozenset[str]

    def parts(self) -> Iterable[str]:
        every = "*" in self.loaded
        return [card(m) for m in self.scopes if every or card(m) in self.loaded]

    def render(self, part: str, user: User) -> str:
        return scope_card(self.env, self.scopes[part.removeprefix("card:")])


def card(microscope_id: str) -> str:
    return f"card:{microscope_id}"


@dataclass
class FacilitySource:
    """The dashboard's cards, ``card:<microscope id>``; no control replaces them."""

    env: Environment
    where: FacilityFilter
    """Shared by every dashboard stream's feed; learns which run is on which scope."""

    def resend(self, messages: tuple[Message, ...]) -> frozenset[str]:
        return frozenset()

    async def load(
        self, api: ApiClient, parts: frozenset[str], messages: tuple[Message, ...]
    ) -> FacilitySnapshot:
        scopes = await api.microscopes()
        for scope in scopes:
            if scope.run is not None:
                self.where.run_scopes[scope.run.id] = scope.id
        return FacilitySnapshot(self.env, {m.id: m for m in scopes}, parts)


_READER = User(username="-", role="viewer", token="")
"""The user a snapshot's context is read with; each render replaces it with its reader."""
