"""Run controls: each POST calls session-api and answers with the partial it changes.

Errors are answered by the app's ``ApiError`` handler: 401 → login, 403 → "not allowed for
your role", 409/422 → the API's ``detail`` in the page's message area.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from proto.messages.run import Choice
from ui.auth import User, UserDep
from ui.client import ApiClient
from ui.deps import ApiDep, render
from ui.views import load_session

router = APIRouter()


async def _answer(
    request: Request, api: ApiClient, session_id: UUID, user: User, note: str | None = None
) -> Response:
    ctx = await load_session(api, session_id, user)
    return render(request, "partials/_control_response.html", {"ctx": ctx, "note": note})


@router.post("/sessions/{session_id}/start")
async def start(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
    await api.start(session_id)
    return await _answer(request, api, session_id, user)


@router.post("/sessions/{session_id}/stop")
async def stop(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
    await api.stop(session_id)
    return await _answer(request, api, session_id, user)


@router.post("/sessions/{session_id}/pause-between-grids")
async def pause_between_grids(
    request: Request,
    session_id: UUID,
    api: ApiDep,
    user: UserDep,
    enabled: Annotated[bool, Form()],
) -> Response:
    await api.set_pause(session_id, enabled)
    return await _answer(request, api, session_id, user)


@router.post("/sessions/{session_id}/decision")
async def decision(
    request: Request,
    session_id: UUID,
    api: ApiDep,
    user: UserDep,
    choice: Annotated[Choice, Form()],
) -> Response:
    await api.decide(session_id, choice)
    return await _answer(request, api, session_id, user)


@router.post("/sessions/{session_id}/force-start")
async def force_start(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
    await api.force_start(session_id)
    return await _answer(request, api, session_id, user, "Force start requested.")


@router.post("/sessions/{session_id}/release-lock")
async def release_lock(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
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
    return await _answer(request, api, session_id, user, note)


@router.post("/sessions/{session_id}/kill")
async def kill(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
    await api.kill(session_id)
    return await _answer(request, api, session_id, user, "Force-kill sent.")
