"""One message to one apprise URL: its words, and whether it went (and if not, why).

``Apprise.async_notify`` does not raise when a service fails: it returns a falsy result whose
logs say why. Apprise runs the blocking senders (SMTP, HTTP) on its own thread pool, so the
event loop is never held; ``timeout_s`` bounds the whole call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import apprise

from session_api.notify.notices import Notice

log = logging.getLogger(__name__)

MAX_LISTED = 20
"""Notices written out in one message; the rest are counted."""
MAX_ERROR = 500
TYPES = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "critical": apprise.NotifyType.FAILURE,
}
RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    level: str


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str | None = None


def compose(notices: Sequence[Notice], base_url: str | None) -> Message:
    """One message for a burst of notices (oldest first), worst level first in its type."""
    level = max((n.level for n in notices), key=RANK.__getitem__)
    first = notices[0]
    if len(notices) == 1:
        title = f"Gridpilot: {first.title}" + (f" ({first.where})" if first.where else "")
    else:
        kinds = list(dict.fromkeys(n.title for n in notices))
        title = f"Gridpilot: {len(notices)} notices: " + "; ".join(kinds[:3])
        if len(kinds) > 3:
            title += "; …"
    parts = []
    for n in notices[:MAX_LISTED]:
        lines = [f"{n.title} ({n.at:%H:%M:%S} UTC)"]
        if n.where:
            lines.append(n.where)
        lines.append(n.text)
        if base_url and n.session_id:
            lines.append(f"{base_url.rstrip('/')}/sessions/{n.session_id}")
        parts.append("\n".join(lines))
    if len(notices) > MAX_LISTED:
        parts.append(f"… and {len(notices) - MAX_LISTED} more.")
    return Message(title, "\n\n".join(parts), level)


async def deliver(url: str, message: Message, timeout_s: float) -> Outcome:
    """Send ``message`` to ``url``; never raises (a failure is an :class:`Outcome`)."""
    sender = apprise.Apprise()
    try:
        if not await asyncio.to_thread(sender.add, url):
            return Outcome(False, "apprise cannot use this URL any more")
        async with asyncio.timeout(timeout_s + 1):  # apprise has its own; a backstop
            result = await sender.async_notify(
                body=message.body,
                title=message.title,
                notify_type=TYPES[message.level],
                body_format=apprise.NotifyFormat.TEXT,
                timeout=timeout_s,
            )
    except TimeoutError:
        return Outcome(False, f"no answer within {timeout_s:g} s")
    except Exception as exc:  # apprise reports failures in its result; anything else is a bug
        log.exception("apprise raised while sending a notification")
        return Outcome(False, f"apprise raised {type(exc).__name__}: {exc}"[:MAX_ERROR])
    if result:
        return Outcome(True)
    said = [
        entry.message
        for entry in result.logs()
        if entry.level.upper() in ("WARNING", "ERROR", "CRITICAL")
    ]
    why = "; ".join(dict.fromkeys(said)) or f"delivery failed ({result.status.name.lower()})"
    return Outcome(False, why[:MAX_ERROR])
