"""Rendering the session page's and dashboard's partials by name (page loads, POSTs, SSE)."""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

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


class RenderedLines:
    """Log lines rendered once for every stream that sends them (a line looks the same to
    every reader), the most recent ``size`` kept."""

    def __init__(self, env: Environment, size: int = 4096) -> None:
        self._template = env.get_template("partials/_log_line.html")
        self._html: OrderedDict[UUID, str] = OrderedDict()
        self._size = size

    def html(self, line: Line) -> str:
        html = self._html.get(line.message_id)
        if html is None:
            html = self._html[line.message_id] = self._template.render(line=line).strip()
            if len(self._html) > self._size:
                self._html.popitem(last=False)
        return html

    def by_panel(self, lines: list[Line]) -> dict[str, str]:
        """Lines rendered per panel (``system`` lines show in the acquisition panel)."""
        out: dict[str, list[str]] = {}
        for line in lines:
            panel = "processing" if line.panel == "processing" else "acquisition"
            out.setdefault(panel, []).append(self.html(line))
        return {panel: "\n".join(rendered) for panel, rendered in out.items()}
