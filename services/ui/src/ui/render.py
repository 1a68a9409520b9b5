"""Jinja2 templates and the filters that word numbers, sizes, times and states the same way
on every page."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi.templating import Jinja2Templates
from jinja2 import StrictUndefined

from proto.states import ExitReason, RunState
from ui.forms import plan_words

TEMPLATES = Path(__file__).parent / "templates"


def bytes_h(n: float | int | None) -> str:
    """``1.2 TB`` (decimal units, as disk vendors and df -H word them)."""
    if n is None:
        return "—"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(value) < 1000 or unit == "PB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"


def pct(fraction: float | None) -> str:
    if fraction is None or math.isnan(fraction):
        return "—"
    return f"{max(0.0, min(fraction, 1.0)) * 100:.0f} %"


def hours(h: float | None) -> str:
    """Time left: ``45 min``, ``12.5 h``, ``3.2 d``, ``> 1 year``."""
    if h is None or math.isnan(h) or h < 0:
        return "—"
    if math.isinf(h) or h > 24 * 365:
        return "> 1 year"
    if h < 1:
        return f"{h * 60:.0f} min"
    if h < 48:
        return f"{h:.1f} h"
    return f"{h / 24:.1f} d"


def age(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def seconds(s: float | None) -> str:
    """A setting's duration: ``0.5 s``, ``10 s``, ``5 min``."""
    if s is None or math.isnan(s):
        return "—"
    return f"{s / 60:g} min" if s >= 120 else f"{s:g} s"


def when(at: datetime | None) -> str:
    if at is None:
        return "—"
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(at: datetime | None) -> str:
    if at is None:
        return ""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%H:%M:%S")


def iso(at: datetime | None) -> str:
    if at is None:
        return ""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat()


def num(n: float | int | None, digits: int = 0) -> str:
    if n is None or (isinstance(n, float) and (math.isnan(n) or math.isinf(n))):
        return "—"
    return f"{n:,.{digits}f}".replace(",", "\u202f")


def short(u: UUID | str | None) -> str:
    return str(u)[:8] if u else "—"


def state_label(state: RunState | str | None) -> str:
    if state is None or state == "idle":
        return "never started"
    return RunState(state).label


def reason_label(reason: ExitReason | str | None) -> str:
    return str(reason) if reason else "—"


def count_label(key: str) -> str:
    """A queue counter's words: ``squares_queued`` → ``squares queued``. The statuses
    (``done``, ``queued``) and ``exposures`` are words already; a key added later reads the
    same way."""
    return key.replace("_", " ")


def img(url: str | None) -> str:
    """session-api's image URL as the ui serves it (``/api/images/x.png`` → ``/images/x.png``)."""
    if not url:
        return ""
    marker = "/api/images/"
    return "/images/" + url.split(marker, 1)[1] if marker in url else url


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    env = templates.env
    env.undefined = StrictUndefined
    env.trim_blocks = True
    env.lstrip_blocks = True
    filters: dict[str, Any] = {
        "bytes_h": bytes_h,
        "pct": pct,
        "hours": hours,
        "age": age,
        "seconds": seconds,
        "when": when,
        "clock": clock,
        "iso": iso,
        "num": num,
        "short": short,
        "state_label": state_label,
        "reason_label": reason_label,
        "img": img,
        "count_label": count_label,
        "plan_words": plan_words,
    }
    env.filters.update(filters)
    return templates
