"""Sessions from the browser: the *New session* page, *Edit*, *Copy*, *Archive*, and the
*Skip* buttons of the session page's queue panel.

The form posts (``hx-post``, or a plain POST without JavaScript); a refusal re-renders the
form with each of session-api's field errors beside its field, success goes to the session
page. session-api checks roles and values; the pages only show what it says.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from proto.api import CASSETTE_SLOTS, SessionView
from ui.auth import User, UserDep
from ui.client import ApiClient, Rejected
from ui.deps import ApiDep, is_htmx, render
from ui.forms import ORDERINGS, SessionForm

router = APIRouter()

Mode = Literal["new", "edit", "copy"]
TITLES = {"new": "New session", "edit": "Edit session", "copy": "Copy session"}
SUBMIT = {"new": "Create session", "edit": "Save changes", "copy": "Create the copy"}


def _go(request: Request, url: str) -> Response:
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


async def _form(
    request: Request,
    api: ApiClient,
    user: User,
    form: SessionForm,
    mode: Mode,
    session: SessionView | None = None,
) -> Response:
    scopes = await api.microscopes()
    action = "/sessions/new" if session is None else f"/sessions/{session.id}/{mode}"
    context: dict[str, Any] = {
        "form": form,
        "mode": mode,
        "title": TITLES[mode],
        "submit": SUBMIT[mode],
        "action": action,
        "scopes": scopes,
        "s": session,
        "orderings": ORDERINGS,
        "slots": CASSETTE_SLOTS,
        "grids_locked": mode == "edit" and session is not None and session.run is not None,
        "placeholders": {g.position: g.name for g in session.grids}
        if session and mode == "copy"
        else {},
        "can_operate": user.can_operate,
        "nav": "sessions",
    }
    partial = is_htmx(request) and request.method == "POST"
    template = "partials/_session_form.html" if partial else "pages/session_form.html"
    return render(request, template, context)


@router.get("/sessions/new")
async def new_session(request: Request, api: ApiDep, user: UserDep) -> Response:
    return await _form(request, api, user, SessionForm(), "new")


@router.post("/sessions/new")
async def create_session(request: Request, api: ApiDep, user: UserDep) -> Response:
    form = SessionForm.posted(await request.form())
    try:
        created = await api.create_session(form.create())
    except Rejected as exc:
        form.refused(exc.errors, exc.detail)
        return await _form(request, api, user, form, "new")
    return _go(request, f"/sessions/{created.id}")


@router.get("/sessions/{session_id}/edit")
async def edit_page(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
    session = await api.session(session_id)
    return await _form(request, api, user, SessionForm.of(session), "edit", session)


@router.post("/sessions/{session_id}/edit")
async def edit_session(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
    session = await api.session(session_id)
    form = SessionForm.posted(await request.form())
    locked = session.run is not None  # a session that has run keeps its grids
    if locked:
        form.slots = {g.position: g.name for g in session.grids}
    form.microscope_id = session.microscope_id
    try:
        await api.edit_session(session_id, form.edit(grids=not locked))
    except Rejected as exc:
        form.refused(exc.errors, exc.detail)
        return await _form(request, api, user, form, "edit", session)
    return _go(request, f"/sessions/{session_id}")


@router.get("/sessions/{session_id}/copy")
async def copy_page(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
    session = await api.session(session_id)
    form = SessionForm.of(session, name=f"{session.name} copy", grids=False)
    return await _form(request, api, user, form, "copy", session)


@router.post("/sessions/{session_id}/copy")
async def copy_session(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
    session = await api.session(session_id)
    form = SessionForm.posted(await request.form())
    try:
        copy = await api.copy_session(session_id, form.copy())
    except Rejected as exc:
        form.refused(exc.errors, exc.detail)
        return await _form(request, api, user, form, "copy", session)
    return _go(request, f"/sessions/{copy.id}")


async def _archive(request: Request, api: ApiClient, session_id: UUID, archived: bool) -> Response:
    session = await api.archive(session_id, archived)
    if not is_htmx(request):
        return RedirectResponse(f"/sessions/{session_id}", status_code=303)
    return render(request, "partials/_session_setup.html", {"s": session})


@router.post("/sessions/{session_id}/archive")
async def archive(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
    return await _archive(request, api, session_id, True)


@router.post("/sessions/{session_id}/unarchive")
async def unarchive(request: Request, session_id: UUID, api: ApiDep, user: UserDep) -> Response:
    return await _archive(request, api, session_id, False)


async def _skip(
    request: Request,
    api: ApiClient,
    session_id: UUID,
    what: Literal["target", "square"],
    target_id: UUID | None,
    label: str,
) -> Response:
    await api.skip(session_id, what, target_id)
    thing = label or "the target being acquired"
    note = (
        f"Skip of {thing} sent: the run skips it at its next safe point (an exposure under"
        " way is finished first)."
        if what == "target"
        else f"Skip of the rest of the square of {thing} sent: its queued holes are skipped"
        " now, what is being acquired at the next safe point."
    )
    return render(request, "partials/_message.html", {"error": None, "note": note})


@router.post("/sessions/{session_id}/skip-target")
async def skip_target(
    request: Request,
    session_id: UUID,
    api: ApiDep,
    user: UserDep,
    target_id: Annotated[UUID | None, Form()] = None,
    label: Annotated[str, Form(max_length=120)] = "",
) -> Response:
    return await _skip(request, api, session_id, "target", target_id, label)


@router.post("/sessions/{session_id}/skip-square")
async def skip_square(
    request: Request,
    session_id: UUID,
    api: ApiDep,
    user: UserDep,
    target_id: Annotated[UUID | None, Form()] = None,
    label: Annotated[str, Form(max_length=120)] = "",
) -> Response:
    return await _skip(request, api, session_id, "square", target_id, label)
