"""The session browser: the list of sessions, and one session's grids, atlas, squares,
exposures and plots; a click on a drawn target queues or dequeues it."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from proto.api import ExposureSeries, GridDetail, SessionView, SquareDetail, TargetView
from proto.states import RunState
from ui.auth import UserDep
from ui.client import ApiClient, NotFound, Rejected
from ui.deps import ApiDep, is_htmx, render
from ui.plots import histogram, scatter

router = APIRouter()

STATES = [s.value for s in RunState] + ["idle"]
"""What the list filters on: a run state, or ``idle`` (never started)."""


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


SESSIONS_PAGE = 50
"""Sessions per page of the list (newest first; "older" pages back)."""


@router.get("/sessions")
async def sessions(
    request: Request,
    api: ApiDep,
    microscope: str | None = None,
    state: str | None = None,
    since: str | None = None,
    until: str | None = None,
    archived: str | None = None,
    before: UUID | None = None,
) -> Response:
    """The sessions, newest first, a page at a time; session-api filters before it cuts."""
    d0, d1 = _day(since), _day(until)
    archived = archived if archived in ("only", "include") else None
    found, scopes = await asyncio.gather(
        api.sessions(
            microscope_id=microscope or None,
            state=state if state in STATES else None,
            since=datetime.combine(d0, time(), UTC) if d0 else None,
            until=datetime.combine(d1, time(), UTC) + timedelta(days=1) if d1 else None,
            archived=archived,
            limit=SESSIONS_PAGE,
            before=before,
        ),
        api.microscopes(),
    )
    context = {
        "sessions": found.items,
        "older": _page_url(request, found.next),
        "newest": _newest_url(request),
        "scopes": scopes,
        "states": STATES,
        "filters": {
            "microscope": microscope or "",
            "state": state or "",
            "since": since or "",
            "until": until or "",
            "archived": archived or "",
        },
        "nav": "sessions",
    }
    if is_htmx(request) and request.headers.get("HX-Target") == "session-list":
        return render(request, "partials/_session_rows.html", context)
    return render(request, "pages/sessions.html", context)


def _page_url(request: Request, before: object | None) -> str | None:
    """This page's URL starting ``before`` (the next, older page; ``None``: there is none)."""
    if before is None:
        return None
    url = request.url.remove_query_params("before").include_query_params(before=str(before))
    return f"{url.path}?{url.query}"


def _newest_url(request: Request) -> str | None:
    """This page's URL without a cursor: the newest page (``None`` when this is it)."""
    if "before" not in request.query_params:
        return None
    url = request.url.remove_query_params("before")
    return f"{url.path}?{url.query}" if url.query else url.path


async def _square(api: ApiClient, square: UUID | None) -> SquareDetail | None:
    if square is None:
        return None
    try:
        return await api.square(square)
    except NotFound:
        return None


NEWS_EVERY_S = 10
"""How often an open session browser asks whether its live run took new exposures."""


EXPOSURES_PAGE = 100
"""Exposures per page of the table (newest first; "older" pages back)."""
PLOT_SAMPLE = 1000
"""The plots draw the session's newest this many exposures, and say so."""


@router.get("/sessions/{session_id}/browse")
async def browse(
    request: Request,
    session_id: UUID,
    api: ApiDep,
    user: UserDep,
    grid: UUID | None = None,
    square: UUID | None = None,
    before: UUID | None = None,
) -> Response:
    session = await api.session(session_id)
    chosen = _choose_grid(session, grid)
    detail, sample, exposures, runs = await asyncio.gather(
        api.grid(session_id, chosen) if chosen else _nothing(),
        api.exposure_series(session_id, limit=PLOT_SAMPLE),
        api.exposures(session_id, limit=EXPOSURES_PAGE, before=before),
        api.runs(session_id),
    )
    if square is None and detail is not None:
        imaged = [t.id for t in detail.squares if t.image_id is not None]
        square = imaged[-1] if imaged else None  # the latest imaged square, to start with
    sq = await _square(api, square)
    context = {
        "s": session,
        "grid": detail,
        "sq": sq,
        "exposures": exposures.items,
        "exposure_pages": {
            "older": _page_url(request, exposures.next),
            "newest": _newest_url(request),
            "first": before is None,
        },
        "runs": runs.items,
        "more_runs": runs.next is not None,
        "run_numbers": {r.id: r.number for r in runs.items},
        "grid_names": {g.id: g.name for g in session.grids},
        "plots": _plots(sample),
        "sample": {
            "n": len(sample.acquired_at),
            "all": not sample.more,
            "since": min(sample.acquired_at, default=None),
        },
        "every_s": NEWS_EVERY_S,
        "can_operate": user.can_operate,
        "nav": "sessions",
    }
    return render(request, "pages/browse.html", context)


@router.get("/sessions/{session_id}/browse/news")
async def browse_news(
    request: Request, session_id: UUID, api: ApiDep, run: UUID, seen: int = 0
) -> Response:
    """What the run the page was loaded with did since: new exposures, or that it ended.
    The page is not re-rendered under the reader (its tables would lose their scroll):
    it offers to reload."""
    session = await api.session(session_id)
    live = session.run if session.run is not None and session.run.id == run else None
    context = {
        "s": session,
        "run_id": run,
        "seen": seen,
        "new": (live.exposures - seen) if live is not None else 0,
        "ended": live is None or not live.state.live,
        "every_s": NEWS_EVERY_S,
    }
    return render(request, "partials/_browse_news.html", context)


async def _nothing() -> None:
    return None


def _choose_grid(session: SessionView, grid: UUID | None) -> UUID | None:
    ids = [g.id for g in session.grids]
    if grid in ids:
        return grid
    screening = [g.id for g in session.grids if g.status == "screening"]
    with_atlas = [g.id for g in session.grids if g.atlas_id is not None]
    choices = screening or with_atlas or ids
    return choices[0] if choices else None


def _plots(s: ExposureSeries) -> dict[str, object]:
    columns = zip(
        s.acquired_at,
        s.status,
        s.defocus1_a,
        s.defocus2_a,
        s.ctf_fit_resolution_a,
        s.ctf_low_confidence,
        s.ice_nm,
        strict=True,
    )
    done = sorted((c for c in columns if c[1] == "processed"), key=lambda c: c[0])
    defocus = [
        (at, (d1 + d2) / 2e4) for at, _, d1, d2, *_ in done if d1 is not None and d2 is not None
    ]
    res = [(at, r, bool(low)) for at, _, _, _, r, low, _ in done if r is not None]
    return {
        "defocus": scatter(defocus, title="Defocus over time", ylabel="defocus (µm)"),
        "resolution": scatter(
            [(at, r) for at, r, _ in res],
            title="CTF fit resolution over time",
            ylabel="resolution (Å)",
            flagged=[low for _, _, low in res],
        ),
        "ice": histogram(
            [ice for *_, ice in done if ice is not None],
            title="Ice thickness",
            xlabel="ice (nm)",
        ),
        "res_hist": histogram(
            [r for _, r, _ in res if r], title="CTF fit resolution", xlabel="resolution (Å)"
        ),
    }


@router.post("/sessions/{session_id}/targets")
async def toggle_target(
    request: Request,
    session_id: UUID,
    api: ApiDep,
    user: UserDep,
    target_id: Annotated[UUID, Form()],
    action: Annotated[Literal["queue", "dequeue"], Form()],
    grid: Annotated[UUID | None, Form()] = None,
    square: Annotated[UUID | None, Form()] = None,
) -> Response:
    """Queue or dequeue one target; answers with the overlay it was drawn on."""
    if action == "queue":
        await api.add_targets(session_id, [target_id])
    else:
        await api.remove_targets(session_id, [target_id])
    # The command is asynchronous: the run changes its queue a moment later. Draw the
    # clicked target as requested until the next view shows the run's own word on it.
    wanted = "queued" if action == "queue" else "removed"
    if square is not None:
        sq = await api.square(square)
        sq = sq.model_copy(update={"holes": _pending(sq.holes, target_id, wanted)})
        context = {"sid": session_id, "sq": sq, "can_operate": user.can_operate}
        return render(request, "partials/_square.html", context)
    if grid is None:
        raise Rejected("a click on the atlas must name its grid", 422)
    detail: GridDetail = await api.grid(session_id, grid)
    detail = detail.model_copy(update={"squares": _pending(detail.squares, target_id, wanted)})
    context = {"sid": session_id, "grid": detail, "can_operate": user.can_operate, "sq": None}
    return render(request, "partials/_atlas.html", context)


def _pending(targets: list[TargetView], target_id: UUID, status: str) -> list[TargetView]:
    return [
        t.model_copy(update={"status": status})
        if t.id == target_id and t.status not in ("acquiring", "done")
        else t
        for t in targets
    ]


@router.get("/images/{image}")
async def image(image: str, api: ApiDep) -> Response:
    """An image from session-api (atlas, square, thumbnail, spectrum), for the browser."""
    if "/" in image or not image.endswith(".png"):
        raise NotFound("no such image")
    body, content_type = await api.image(f"/api/images/{image}")
    return Response(
        body, media_type=content_type, headers={"Cache-Control": "private, max-age=300"}
    )
