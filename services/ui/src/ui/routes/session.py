"""The run session page and its log download."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from ui.auth import UserDep
from ui.deps import ApiDep, render
from ui.views import load_session

router = APIRouter()

PANELS = ("acquisition", "processing", "system")


@router.get("/sessions/{session_id}")
async def session_page(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
    ctx = await load_session(api, session_id, user)
    return render(request, "pages/session.html", {"ctx": ctx, "nav": "sessions"})


@router.get("/sessions/{session_id}/logs.txt")
async def download_logs(session_id: UUID, api: ApiDep, panel: str | None = None) -> Response:
    """The whole log of a panel (or of every panel) as text, streamed from session-api."""
    chosen = panel if panel in PANELS else None
    body = await api.logs_text(session_id, chosen)
    name = f"session-{session_id}-{chosen or 'all'}.log"
    return StreamingResponse(
        body,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
