"""The Notifications page: your destinations (with delivery status), your subscriptions, a
*Send test*, and this browser's own alerts; for staff, every destination's status. Also the
session page's *Notify me* control.

Every action goes to session-api, which checks and audits it. One writer per part: the two
tables are drawn by their own GET only (every few seconds, and when an action's answer says
``destinations-changed`` / ``subscriptions-changed``); a button's answer is a note for the
message area; a form's answer is the form (fresh, or with the errors beside their fields).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from proto.api import NOTIFY_EVENTS, NotificationSettings, NotifyEvent
from ui.auth import UserDep
from ui.client import ApiClient, Rejected
from ui.deps import ApiDep, render, to_messages

router = APIRouter()

DEFAULT_EVENTS: tuple[NotifyEvent, ...] = tuple(e for e in NOTIFY_EVENTS if e != "disk_warning")
"""What *Notify me* and a fresh form subscribe to: all but the early disk warning."""
MAX_SESSIONS_OFFERED = 100
"""The newest sessions the form lists (older ones: *Notify me* on their page)."""
REFRESH_S = 10
"""The destinations table refreshes itself (delivery status) this often."""


def field_errors(detail: str) -> dict[str, str]:
    """``url: apprise cannot use …; label: …`` → ``{"url": …, "label": …}`` (what
    ``ui.client.field_errors`` made of session-api's 422); other words go under ``""``."""
    out: dict[str, str] = {}
    for part in detail.split("; "):
        name, sep, msg = part.partition(": ")
        key = name if sep and name.replace("_", "").isalnum() else ""
        out[key] = f"{out[key]}; {msg or part}" if key in out else (msg if key else part)
    return out


async def _context(api: ApiClient, **extra: Any) -> dict[str, Any]:
    mine: NotificationSettings = await api.notifications()
    return {
        "mine": mine,
        "labels": {e.event: e.label for e in mine.events},
        "refresh_s": REFRESH_S,
        "form": {},
        "errors": {},
        "note": None,
        **extra,
    }


async def _with_choices(api: ApiClient, **extra: Any) -> dict[str, Any]:
    """The context and what the subscription form offers: microscopes, recent sessions."""
    ctx = await _context(api, **extra)
    sessions = await api.sessions(limit=MAX_SESSIONS_OFFERED)
    return {
        **ctx,
        "scopes": await api.microscopes(),
        "sessions": sessions.items,
        "defaults": DEFAULT_EVENTS,
    }


def _said(request: Request, changed: str, note: str, failed: bool = False) -> Response:
    """An action's answer: a note for the message area, and the event that makes the table
    it changed redraw itself (after the swap: from the page's body if the button is gone)."""
    headers = {**to_messages(request), "HX-Trigger-After-Swap": changed}
    template = "partials/_notify_failed.html" if failed else "partials/_message.html"
    return render(request, template, {"error": None, "note": note}, headers=headers)


@router.get("/notifications")
async def page(request: Request, api: ApiDep, user: UserDep) -> Response:
    ctx = await _with_choices(api)
    everyone = await api.deliveries() if user.is_staff else []
    return render(
        request,
        "pages/notifications.html",
        {**ctx, "everyone": everyone, "nav": "notifications"},
    )


@router.get("/notifications/destinations")
async def destinations(request: Request, api: ApiDep) -> Response:
    return render(request, "partials/_notify_destinations.html", await _context(api))


@router.get("/notifications/subscriptions")
async def subscriptions(request: Request, api: ApiDep) -> Response:
    return render(request, "partials/_notify_subscriptions.html", await _context(api))


@router.post("/notifications/destinations")
async def add_destination(
    request: Request,
    api: ApiDep,
    label: Annotated[str, Form(max_length=200)] = "",
    url: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Answers the form: fresh, with a note and ``destinations-changed``; or as it was, with
    session-api's words beside the field they are about (answered 200: the form with its
    errors is the answer, not a failure)."""
    try:
        added = await api.add_destination(label.strip(), url.strip())
    except Rejected as exc:
        ctx = {"form": {"label": label, "url": url}, "errors": field_errors(exc.detail)}
        return render(request, "partials/_notify_dest_form.html", ctx)
    note = f"Added {added.label} ({added.service}). Send a test to check it."
    return render(
        request,
        "partials/_notify_dest_form.html",
        {"form": {}, "errors": {}, "note": note},
        headers={"HX-Trigger-After-Swap": "destinations-changed"},
    )


@router.post("/notifications/destinations/{destination_id}/test")
async def test_destination(request: Request, destination_id: int, api: ApiDep) -> Response:
    result = await api.test_destination(destination_id)
    d = result.destination
    if result.ok:
        return _said(request, "destinations-changed", f"Test sent to {d.label}.")
    return _said(
        request, "destinations-changed", f"Test to {d.label} failed: {result.error}", failed=True
    )


@router.post("/notifications/destinations/{destination_id}/remove")
async def remove_destination(request: Request, destination_id: int, api: ApiDep) -> Response:
    await api.remove_destination(destination_id)
    return _said(request, "destinations-changed", "Destination removed.")


def _scope(scope: str) -> dict[str, Any]:
    kind, _, value = scope.partition(":")
    if kind == "session":
        try:
            return {"session_id": UUID(value)}
        except ValueError:
            return {}
    if kind == "microscope" and value:
        return {"microscope_id": value}
    return {}


@router.post("/notifications/subscriptions")
async def subscribe(
    request: Request,
    api: ApiDep,
    scope: Annotated[str, Form(max_length=200)] = "",
    events: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Answers the form, as :func:`add_destination` does (``subscriptions-changed``)."""
    chosen = [e for e in NOTIFY_EVENTS if e in (events or [])]
    errors: dict[str, str] = {}
    if not _scope(scope):
        errors["scope"] = "choose a microscope or a session"
    if not chosen:
        errors["events"] = "choose at least one event"
    if not errors:
        try:
            sub = await api.subscribe(chosen, **_scope(scope))
        except Rejected as exc:
            errors = field_errors(exc.detail)
            for name in ("session_id", "microscope_id"):
                if name in errors:
                    errors["scope"] = errors.pop(name)
        else:
            what = f"session {sub.session_name}" if sub.session_id else sub.microscope_name
            ctx = await _with_choices(api, note=f"Subscribed to {len(chosen)} events of {what}.")
            return render(
                request,
                "partials/_notify_sub_form.html",
                ctx,
                headers={"HX-Trigger-After-Swap": "subscriptions-changed"},
            )
    ctx = await _with_choices(api, errors=errors, form={"scope": scope, "events": chosen})
    return render(request, "partials/_notify_sub_form.html", ctx)


@router.post("/notifications/subscriptions/{subscription_id}/remove")
async def unsubscribe(request: Request, subscription_id: int, api: ApiDep) -> Response:
    await api.unsubscribe(subscription_id)
    return _said(request, "subscriptions-changed", "Unsubscribed.")


# --- the session page's "Notify me" -----------------------------------------------------


async def _notify_me(
    request: Request, api: ApiClient, session_id: UUID, note: str | None = None
) -> Response:
    mine = await api.notifications()
    sub = next((s for s in mine.subscriptions if s.session_id == session_id), None)
    return render(
        request,
        "partials/_notify_me.html",
        {
            "session_id": session_id,
            "sub": sub,
            "destinations": len(mine.destinations),
            "note": note,
        },
    )


@router.get("/sessions/{session_id}/notify-me")
async def notify_me(request: Request, session_id: UUID, api: ApiDep) -> Response:
    return await _notify_me(request, api, session_id)


@router.post("/sessions/{session_id}/notify-me")
async def set_notify_me(
    request: Request,
    session_id: UUID,
    api: ApiDep,
    on: Annotated[Literal["true", "false"], Form()],
) -> Response:
    if on == "true":
        await api.subscribe(DEFAULT_EVENTS, session_id=session_id)
        return await _notify_me(request, api, session_id, "You will be notified.")
    mine = await api.notifications()
    for sub in mine.subscriptions:
        if sub.session_id == session_id:
            await api.unsubscribe(sub.id)
    return await _notify_me(request, api, session_id)
