"""What the live hubs read and render: a session page's parts, and the dashboard's cards."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from uuid import UUID

from jinja2 import Environment

from proto.api import MicroscopeView, QueueView
from proto.messages.base import Message
from proto.messages.image import QueueUpdated
from ui.auth import User
from ui.client import ApiClient
from ui.partials import SESSION_TEMPLATES, scope_card, session_part
from ui.views import FacilityFilter, SessionContext, SessionFilter, load_session


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

    async def load(
        self, api: ApiClient, parts: frozenset[str], messages: tuple[Message, ...]
    ) -> SessionSnapshot:
        wanted = set(SESSION_TEMPLATES) if "*" in parts else set(parts) & set(SESSION_TEMPLATES)
        # A queue update carries the whole queue: no need to read it back.
        queued = [m for m in messages if isinstance(m, QueueUpdated)]
        fetch = frozenset(wanted - {"queue"} if queued else wanted) or frozenset({"process"})
        ctx = await load_session(api, self.session_id, _READER, fetch, strict=True)
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
    """The dashboard's cards, ``card:<microscope id>``."""

    env: Environment
    where: FacilityFilter
    """Shared by every dashboard stream's feed; learns which run is on which scope."""

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
