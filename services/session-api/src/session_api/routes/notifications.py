"""Notifications: each user's own destinations (apprise URLs) and subscriptions, a *Send
test*, and for staff the delivery status of every destination.

Viewers may use all of it for themselves: they are people who need to be told. Nobody sees
or changes another user's destinations here (another user's id answers 404); staff read
every destination's delivery status, masked like everywhere. Every change is audited in the
transaction that makes it; a refused one is audited too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, TypeVar

from fastapi import APIRouter, HTTPException, Path, Request, Response
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from proto.api import (
    NOTIFY_EVENTS,
    DestinationCreate,
    DestinationView,
    NotificationSettings,
    NotifyEventView,
    SendTestResult,
    SubscriptionCreate,
    SubscriptionView,
)
from session_api.audit import Refused, entry
from session_api.auth import CurrentUser, Staff, Viewer
from session_api.db.models import (
    Microscope,
    NotifyDestination,
    NotifySubscription,
    Session,
    User,
)
from session_api.deps import DbDep
from session_api.notify.notices import event_labels
from session_api.notify.service import Notifier, status_values
from session_api.notify.urls import check

router = APIRouter(prefix="/api/notifications", tags=["notifications"])

MAX_SUBSCRIPTIONS = 200
TEST_EVERY_S = 5.0
"""A *Send test* per destination at most this often (429 otherwise)."""

Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _notifier(request: Request) -> Notifier:
    notifier: Notifier = request.app.state.notifier
    return notifier


def _audit(
    db: AsyncSession,
    user: CurrentUser,
    action: str,
    outcome: str,
    *,
    target: str | None = None,
    session_id: uuid.UUID | None = None,
    detail: str | None = None,
) -> None:
    """The audit row, in the caller's transaction (it commits with the change)."""
    db.add(
        entry(
            user.username,
            action,
            outcome,
            target=target,
            session_id=session_id,
            detail=detail,
        )
    )


def _refuse(
    code: int, detail: str | list[dict[str, object]], target: str | None = None
) -> HTTPException:
    """The refusal to raise; the app's handlers audit it (``session_api.refusals``)."""
    return Refused(code, detail, target=target)


def _field(name: str, msg: str) -> list[dict[str, object]]:
    return [{"loc": ["body", name], "msg": msg, "type": "value_error"}]


def destination_view(
    row: NotifyDestination, pending: int = 0, owner: str | None = None
) -> DestinationView:
    return DestinationView(
        id=row.id,
        label=row.label,
        service=row.service,
        url_masked=row.url_masked,
        created_at=row.created_at,
        owner=owner,
        last_attempt_at=row.last_attempt_at,
        last_ok_at=row.last_ok_at,
        last_error_at=row.last_error_at,
        last_error=row.last_error,
        sent=row.sent,
        failed=row.failed,
        dropped=row.dropped,
        pending=pending,
    )


async def _subscription_view(db: AsyncSession, row: NotifySubscription) -> SubscriptionView:
    session = await db.get(Session, row.session_id) if row.session_id else None
    scope = await db.get(Microscope, row.microscope_id)
    return SubscriptionView(
        id=row.id,
        session_id=row.session_id,
        session_name=session.name if session else None,
        microscope_id=row.microscope_id,
        microscope_name=scope.name if scope else row.microscope_id,
        events=[e for e in NOTIFY_EVENTS if e in row.events],
        created_at=row.created_at,
    )


Row = TypeVar("Row", NotifyDestination, NotifySubscription)


async def _own(db: AsyncSession, model: type[Row], row_id: int, user: CurrentUser) -> Row | None:
    """The user's own row, or ``None`` (another user's row is not theirs to know of)."""
    row = await db.get(model, row_id)
    return row if row is not None and row.user_id == user.id else None


@router.get("")
async def my_notifications(request: Request, user: Viewer, db: DbDep) -> NotificationSettings:
    """The caller's destinations (with delivery status) and subscriptions, and what each
    event means here."""
    notifier = _notifier(request)
    rows = (
        await db.scalars(
            select(NotifyDestination)
            .where(NotifyDestination.user_id == user.id)
            .order_by(NotifyDestination.id)
        )
    ).all()
    subs = (
        await db.scalars(
            select(NotifySubscription)
            .where(NotifySubscription.user_id == user.id)
            .order_by(NotifySubscription.id)
        )
    ).all()
    labels = event_labels(notifier.settings)
    return NotificationSettings(
        destinations=[destination_view(r, notifier.outbox.pending(r.id)) for r in rows],
        subscriptions=[await _subscription_view(db, s) for s in subs],
        events=[NotifyEventView(event=e, label=labels[e]) for e in NOTIFY_EVENTS],
        coalesce_s=notifier.settings.coalesce_s,
        min_interval_s=notifier.settings.min_interval_s,
    )


@router.post("/destinations", status_code=201, name="notify-destination-add")
async def add_destination(
    body: DestinationCreate, request: Request, user: Viewer, db: DbDep
) -> DestinationView:
    """Add a destination: one apprise URL (checked by apprise, stored encrypted)."""
    action = "notify-destination-add"
    notifier = _notifier(request)
    have = await db.scalar(select(func.count()).where(NotifyDestination.user_id == user.id))
    most = notifier.settings.max_destinations
    if (have or 0) >= most:
        raise _refuse(
            409,
            f"you have {have} destinations, the most there may be; remove one first",
        )
    try:
        checked = await asyncio.to_thread(check, body.url)
    except ValueError as exc:
        raise _refuse(422, _field("url", str(exc))) from exc
    row = NotifyDestination(
        user_id=user.id,
        label=body.label,
        service=checked.service,
        url_box=notifier.box.seal(body.url.strip()),
        url_masked=checked.masked,
    )
    db.add(row)
    await db.flush()
    _audit(
        db,
        user,
        action,
        "ok",
        target=f"destination {row.id}",
        detail=f"{row.label}: {row.service} {row.url_masked}",
    )
    await db.commit()
    return destination_view(row)


@router.delete("/destinations/{destination_id}", status_code=204, name="notify-destination-remove")
async def remove_destination(
    destination_id: Id, request: Request, user: Viewer, db: DbDep
) -> Response:
    """Remove one of your destinations; what waited for it is dropped."""
    action, target = "notify-destination-remove", f"destination {destination_id}"
    row = await _own(db, NotifyDestination, destination_id, user)
    if row is None:
        raise _refuse(404, f"you have no destination {destination_id}", target)
    _audit(db, user, action, "ok", target=target, detail=f"{row.label}: {row.url_masked}")
    await db.delete(row)
    await db.commit()
    _notifier(request).outbox.forget(destination_id)
    return Response(status_code=204)


@router.post("/destinations/{destination_id}/test", name="notify-test")
async def send_test(
    destination_id: Id, request: Request, user: Viewer, db: DbDep
) -> SendTestResult:
    """Send a test message now and say whether it went (and if not, apprise's reason)."""
    action, target = "notify-test", f"destination {destination_id}"
    notifier = _notifier(request)
    row = await _own(db, NotifyDestination, destination_id, user)
    if row is None:
        raise _refuse(404, f"you have no destination {destination_id}", target)
    last = notifier.last_test.get(destination_id)
    now = time.monotonic()
    if last is not None and now - last < TEST_EVERY_S:
        wait = TEST_EVERY_S - (now - last)
        raise _refuse(
            429,
            f"a test was sent {now - last:.0f} s ago; wait {wait:.0f} s",
            target,
        )
    notifier.last_test[destination_id] = now
    outcome = await notifier.send_test(row, user.username)
    await db.execute(
        update(NotifyDestination)
        .where(NotifyDestination.id == row.id)
        .values(status_values(outcome))
    )
    _audit(
        db,
        user,
        action,
        "ok" if outcome.ok else "failed",
        target=target,
        detail=f"{row.label}: {row.url_masked}" + (f": {outcome.error}" if outcome.error else ""),
    )
    await db.commit()
    await db.refresh(row)
    return SendTestResult(
        ok=outcome.ok,
        error=outcome.error,
        destination=destination_view(row, notifier.outbox.pending(row.id)),
    )


@router.post("/subscriptions", name="notify-subscribe")
async def subscribe(
    body: SubscriptionCreate, request: Request, user: Viewer, db: DbDep
) -> SubscriptionView:
    """Subscribe to events of one session or of every session of one microscope; a second
    subscription for the same session or microscope replaces the first one's events."""
    action = "notify-subscribe"
    if (body.session_id is None) == (body.microscope_id is None):
        raise _refuse(
            422,
            _field("session_id", "give a session_id or a microscope_id (exactly one)"),
        )
    if body.session_id is not None:
        session = await db.get(Session, body.session_id)
        if session is None:
            raise _refuse(422, _field("session_id", f"no session {body.session_id}"))
        microscope_id, target = session.microscope_id, f"session {session.id}"
        same = NotifySubscription.session_id == session.id
    else:
        assert body.microscope_id is not None
        if await db.get(Microscope, body.microscope_id) is None:
            raise _refuse(
                422,
                _field("microscope_id", f"no microscope {body.microscope_id!r}"),
            )
        microscope_id, target = body.microscope_id, f"microscope {body.microscope_id}"
        same = (NotifySubscription.session_id.is_(None)) & (
            NotifySubscription.microscope_id == microscope_id
        )
    events = [e for e in NOTIFY_EVENTS if e in body.events]
    row = await db.scalar(
        select(NotifySubscription).where(NotifySubscription.user_id == user.id, same)
    )
    if row is None:
        have = await db.scalar(select(func.count()).where(NotifySubscription.user_id == user.id))
        if (have or 0) >= MAX_SUBSCRIPTIONS:
            raise _refuse(409, f"you have {have} subscriptions; remove some first", target)
        row = NotifySubscription(
            user_id=user.id, session_id=body.session_id, microscope_id=microscope_id
        )
        db.add(row)
    row.events = events
    await db.flush()
    _audit(
        db, user, action, "ok", target=target, session_id=body.session_id, detail=", ".join(events)
    )
    await db.commit()
    return await _subscription_view(db, row)


@router.delete("/subscriptions/{subscription_id}", status_code=204, name="notify-unsubscribe")
async def unsubscribe(subscription_id: Id, user: Viewer, db: DbDep) -> Response:
    """Remove one of your subscriptions."""
    action = "notify-unsubscribe"
    row = await _own(db, NotifySubscription, subscription_id, user)
    if row is None:
        raise _refuse(
            404,
            f"you have no subscription {subscription_id}",
            f"subscription {subscription_id}",
        )
    scope = f"session {row.session_id}" if row.session_id else f"microscope {row.microscope_id}"
    _audit(db, user, action, "ok", target=scope, session_id=row.session_id)
    await db.delete(row)
    await db.commit()
    return Response(status_code=204)


@router.get("/deliveries")
async def deliveries(request: Request, user: Staff, db: DbDep) -> list[DestinationView]:
    """Every user's destinations and their delivery status (staff; URLs masked)."""
    notifier = _notifier(request)
    rows = (
        await db.execute(
            select(NotifyDestination, User.username)
            .join(User, User.id == NotifyDestination.user_id)
            .order_by(User.username, NotifyDestination.id)
        )
    ).all()
    return [destination_view(r, notifier.outbox.pending(r.id), owner) for r, owner in rows]
