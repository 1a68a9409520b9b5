"""Run controls: each POST calls session-api and answers with its outcome, for the page's
message area (``#messages``) and nothing else.

What the control changed reaches the page by its stream, the only writer of the live parts
(process, controls, pop-ups): session-api announces what it commits itself
(``SessionChanged``) and projects what the run reports. Refusals are answered by the app's
``ApiError`` handler: 401 → login, 403/409/422 → a message saying why.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from proto.messages.run import Choice
from ui.deps import ApiDep, render, to_messages

router = APIRouter()


def _answer(request: Request, note: str | None = None) -> Response:
    """The outcome: a note, or nothing (which also clears an earlier refusal)."""
    context = {"error": None, "note": note}
    return render(request, "partials/_message.html", context, headers=to_messages(request))


@router.post("/sessions/{session_id}/start")
async def start(request: Request, session_id: UUID, api: ApiDep) -> Response:
    await api.start(session_id)
    return _answer(request)


@router.post("/sessions/{session_id}/stop")
async def stop(request: Request, session_id: UUID, api: ApiDep) -> Response:
    await api.stop(session_id)
    return _answer(request)


@router.post("/sessions/{session_id}/pause-between-grids")
async def pause_between_grids(
    request: Request,
    session_id: UUID,
    api: ApiDep,
    enabled: Annotated[bool, Form()],
) -> Response:
    await api.set_pause(session_id, enabled)
    return _answer(request)


@router.post("/sessions/{session_id}/decision")
async def decision(
    request: Request,
    session_id: UUID,
    api: ApiDep,
    choice: Annotated[Choice, Form()],
) -> Response:
    await api.decide(session_id, choice)
    return _answer(request)


@router.post("/sessions/{session_id}/force-start")
async def force_start(request: Request, session_id: UUID, api: ApiDep) -> Response:
    await api.force_start(session_id)
    return _answer(request, "Force start requested.")


@router.post("/sessions/{session_id}/release-lock")
async def release_lock(request: Request, session_id: UUID, api: ApiDep) -> Response:
    session = await api.session(session_id)
    released = await api.release_lease(session.microscope_id)
    if released.released and released.holder is not None:
        note = (
            f"Scope lock of {session.microscope_name} removed from {released.holder.session_name}."
        )
    elif released.released:
        note = f"Scope lock of {session.microscope_name} removed."
    else:
        note = f"{session.microscope_name} was not locked."
    return _answer(request, note)


@router.post("/sessions/{session_id}/kill")
async def kill(request: Request, session_id: UUID, api: ApiDep) -> Response:
    await api.kill(session_id)
    return _answer(request, "Force-kill sent.")


@router.post("/sessions/{session_id}/runs/{run_id}/acknowledge")
async def acknowledge(request: Request, session_id: UUID, run_id: UUID, api: ApiDep) -> Response:
    """Take note of how an ended run ended: its pop-up goes, for every reader."""
    await api.acknowledge(session_id, run_id)
    return _answer(request)
