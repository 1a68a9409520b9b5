"""The audit log: who did what, when, to which run, and how it ended. It is never lost.

How a state-changing route is audited (docs/security.md, "Adding a state-changing route"):

* it takes ``act: AuditDep`` and calls ``act.record()`` (with ``run_id``/``target``/``detail``
  as they become known) **before** it commits: the row commits in the same transaction as the
  change it records, and before any command is published;
* a refusal or failure (any ``HTTPException`` or validation error of an unsafe request whose
  user is known: 403, 404, 409, 422, 429, 503 …) is audited by the app's exception handlers in
  a transaction of its own, since the request's own rolls back; a route never audits those
  itself. A failure after the commit (a command that could not be published) adds a second
  row, ``failed 503``;
* values longer than their column (a target list, an absurd path parameter) are cut and
  written whole into ``detail`` (text); NUL bytes, which PostgreSQL refuses, are escaped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession

from session_api.db.models import AuditEntry
from session_api.deps import DbDep

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LIMITS = {"username": 64, "action": 64, "target": 255, "outcome": 32}
"""The audit table's ``String`` columns; ``detail`` is text."""


def clean(value: str) -> str:
    """``value`` storable on every database: PostgreSQL refuses NUL in text."""
    return value.replace("\x00", "\\x00")


def entry(
    username: str,
    action: str,
    outcome: str,
    *,
    session_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    target: str | None = None,
    detail: str | None = None,
) -> AuditEntry:
    """An audit row whose values fit their columns: a longer value is cut (ending ``…``)
    and kept whole in ``detail``."""
    values: dict[str, str | None] = {
        "username": username,
        "action": action,
        "outcome": outcome,
        "target": target,
    }
    overflow = []
    for name, value in list(values.items()):
        if value is None:
            continue
        value = clean(value)
        if len(value) > LIMITS[name]:
            overflow.append(f"{name}: {value}")
            value = value[: LIMITS[name] - 1] + "…"
        values[name] = value
    parts = [clean(detail)] if detail else []
    text = "\n".join(parts + overflow) or None
    return AuditEntry(
        username=values["username"],
        action=values["action"],
        outcome=values["outcome"],
        session_id=session_id,
        run_id=run_id,
        target=values["target"],
        detail=text,
    )


async def audit(
    request: Request,
    username: str,
    action: str,
    outcome: str,
    *,
    session_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    """Write one row in a transaction of its own: for what changed no state (a refusal, a
    login), or what changed state outside the database (the broker's dead letters)."""
    async with request.app.state.sessionmaker() as db:
        db.add(
            entry(
                username,
                action,
                outcome,
                session_id=session_id,
                run_id=run_id,
                target=target,
                detail=detail,
            )
        )
        await db.commit()


def action_of(request: Request) -> str:
    """The audited name of the request's route: its ``name`` with ``-`` (``force_start`` →
    ``force-start``); routes whose action is named otherwise set ``name=``."""
    route = request.scope.get("route")
    return str(getattr(route, "name", None) or request.url.path).replace("_", "-")


def session_of(request: Request) -> uuid.UUID | None:
    raw = request.path_params.get("session_id")
    try:
        return uuid.UUID(str(raw)) if raw is not None else None
    except ValueError:
        return None


def target_of(request: Request) -> str | None:
    params = request.path_params
    if "microscope_id" in params:
        return str(params["microscope_id"])
    return "/".join(str(params[k]) for k in ("queue", "key") if k in params) or None


@dataclass
class Audit:
    """The audit of one state-changing request (``act: AuditDep``); see the module doc."""

    request: Request
    db: AsyncSession
    username: str = ""
    action: str = ""
    session_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    target: str | None = None
    detail: str | None = None
    recorded: bool = field(default=False)

    def record(self, outcome: str = "ok", **fields: Any) -> None:
        """Add this request's row to its own transaction: the caller commits it with the
        change. ``fields`` set ``run_id``, ``target``, ``detail``, ``session_id``, ``action``
        first. The user is the one the role check found."""
        for name, value in fields.items():
            if name not in {"run_id", "target", "detail", "session_id", "action"}:
                raise TypeError(f"not an audit field: {name}")
            setattr(self, name, value)
        user = getattr(self.request.state, "user", None)
        self.db.add(
            entry(
                getattr(user, "username", None) or self.username or "anonymous",
                self.action,
                outcome,
                session_id=self.session_id,
                run_id=self.run_id,
                target=self.target,
                detail=self.detail,
            )
        )
        self.recorded = True

    async def commit(self, outcome: str = "ok", **fields: Any) -> None:
        """:meth:`record`, then commit the request's transaction."""
        self.record(outcome, **fields)
        await self.db.commit()


async def get_audit(request: Request, db: DbDep) -> AsyncIterator[Audit]:
    act = Audit(
        request,
        db,
        action=action_of(request),
        session_id=session_of(request),
        target=target_of(request),
    )
    request.state.audit = act
    yield act


AuditDep = Annotated[Audit, Depends(get_audit)]


class Refused(HTTPException):
    """A refusal that names what it refused (the audit row's ``target``) when the route has
    no ``AuditDep`` to hold it."""

    def __init__(self, status: int, detail: object, *, target: str | None = None) -> None:
        super().__init__(status, detail)
        self.target = target


async def audit_refusal(
    request: Request, status: int, detail: str, target: str | None = None
) -> None:
    """The refusal of an unsafe request whose user is known, in a transaction of its own
    (called by the app's exception handlers; the request's transaction rolled back)."""
    user = getattr(request.state, "user", None)
    if request.method in SAFE_METHODS or user is None:
        return
    if getattr(request.state, "refusal_audited", False):
        return
    request.state.refusal_audited = True
    act: Audit | None = getattr(request.state, "audit", None)
    outcome = f"failed {status}" if status >= 500 else f"refused {status}"
    try:
        await audit(
            request,
            user.username,
            act.action if act else action_of(request),
            outcome,
            session_id=act.session_id if act else session_of(request),
            run_id=act.run_id if act else None,
            target=target or (act.target if act else target_of(request)),
            detail=detail,
        )
    except Exception:
        log.exception("could not audit the refusal of %s %s", request.method, request.url.path)
