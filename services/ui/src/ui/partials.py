"""Rendering the session page's and dashboard's partials by name (page loads, POSTs, SSE)."""

from __future__ import annotations

from jinja2 import Environment

from proto.api import MicroscopeView
from ui.live import Line
from ui.views import SessionContext

SESSION_TEMPLATES = {
    "process": "partials/_process.html",
    "controls": "partials/_controls.html",
    "popups": "partials/_popups.html",
    "disk": "partials/_disk.html",
    "queue": "partials/_queue.html",
}
"""SSE event name → partial; each partial's root carries ``sse-swap`` with the same name."""


def session_part(env: Environment, part: str, ctx: SessionContext) -> str:
    return env.get_template(SESSION_TEMPLATES[part]).render(ctx=ctx, user=ctx.user, nav="")


def scope_card(env: Environment, scope: MicroscopeView) -> str:
    return env.get_template("partials/_scope_card.html").render(m=scope, user=None, nav="")


def log_lines(env: Environment, lines: list[Line]) -> dict[str, str]:
    """Lines rendered per panel (``system`` lines show in the acquisition panel)."""
    template = env.get_template("partials/_log_line.html")
    out: dict[str, list[str]] = {}
    for line in lines:
        panel = "processing" if line.panel == "processing" else "acquisition"
        out.setdefault(panel, []).append(template.render(line=line).strip())
    return {panel: "\n".join(rendered) for panel, rendered in out.items()}
