"""``ApiClient``: the ui's only way to session-api, over HTTP with ``proto.api`` models.

Every call forwards the user's bearer token. Failures become :class:`ApiError` subclasses
the pages turn into a redirect (401), a role message (403) or the API's ``detail`` (409/422).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
from pydantic import BaseModel, TypeAdapter

from proto.api import (
    DeadLetterAction,
    DestinationView,
    ExposureSeries,
    ExposureView,
    GridDetail,
    LeaseReleaseResponse,
    LogLineView,
    MicroscopeView,
    NotificationSettings,
    OpsView,
    QueueView,
    RefusalReport,
    RunView,
    SendTestResult,
    SessionView,
    SquareDetail,
    StartResponse,
    SubscriptionView,
    TokenResponse,
    UserView,
)
from proto.messages.run import Choice
from ui.metrics import API_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)


class ApiError(Exception):
    """session-api answered with an error (or could not be reached)."""

    status = 0
    cross_site = False
    """The ui itself refused the request as not sent by one of its pages (``ui.csrf``)."""

    def __init__(
        self, detail: str, status: int | None = None, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.errors: list[dict[str, Any]] = errors or []
        """A 422's field list as session-api gave it (``loc``, ``msg``, ``type``, ``ctx``):
        a form shows each beside its field."""


class NotLoggedIn(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Rejected(ApiError):
    """409 (conflict, e.g. a run is live) or 422 (invalid request)."""


class Unavailable(ApiError):
    status = 503


_PARTS = frozenset({"body", "path", "query", "header", "cookie"})


def field_errors(errors: Sequence[Any]) -> str:
    """FastAPI's 422 field list in words, ``enabled: Input should be a valid boolean; …``
    (without the part of the request, body or path, that held the field)."""
    parts = []
    for err in errors:
        if isinstance(err, dict):
            loc = [str(x) for x in err.get("loc", ())]
            if loc and loc[0] in _PARTS:
                loc = loc[1:]
            msg = str(err.get("msg", ""))
            parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
        else:
            parts.append(str(err))
    return "; ".join(parts) or "invalid request"


def _detail(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase, []
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI's 422 field list
        return field_errors(detail), [e for e in detail if isinstance(e, dict)]
    return (str(detail) if detail is not None else response.reason_phrase), []


def raise_for(response: httpx.Response) -> None:
    """Raise the :class:`ApiError` that matches an error response; return on success."""
    if response.is_success:
        return
    status = response.status_code
    API_ERRORS.labels(status=str(status)).inc()
    detail, errors = _detail(response)
    if status == 401:
        raise NotLoggedIn(detail)
    if status == 403:
        raise Forbidden(detail)
    if status == 404:
        raise NotFound(detail)
    if status in (409, 422, 400):
        raise Rejected(detail, status, errors)
    raise Unavailable(f"session-api answered {status}: {detail}", status)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a session-api list, newest first, and where the next (older) one starts:
    the ``before`` cursor of its ``Link: rel="next"``, ``None`` on the last page."""

    items: list[T]
    next: str | None = None


def next_cursor(response: httpx.Response, name: str = "before") -> str | None:
    """The ``name`` parameter of the response's ``rel="next"`` link, if it has one."""
    url = response.links.get("next", {}).get("url")
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get(name)
    return values[0] if values else None


_SESSIONS = TypeAdapter(list[SessionView])
_MICROSCOPES = TypeAdapter(list[MicroscopeView])
_LOGS = TypeAdapter(list[LogLineView])
_EXPOSURES = TypeAdapter(list[ExposureView])
_RUNS = TypeAdapter(list[RunView])
_DESTINATIONS = TypeAdapter(list[DestinationView])


class ApiClient:
    """session-api on behalf of one user (``token``) or anonymously (login)."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None) -> None:
        self._http = http
        self._token = token

    # --- plumbing -------------------------------------------------------------------------

    async def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = await self._http.request(method, url, headers=headers, **kw)
        except httpx.HTTPError as exc:
            API_ERRORS.labels(status="unreachable").inc()
            raise Unavailable(f"session-api is unreachable ({type(exc).__name__})") from exc
        raise_for(response)
        return response

    async def _get(self, model: type[T], url: str, **kw: Any) -> T:
        return model.model_validate_json((await self._send("GET", url, **kw)).content)

    # --- auth -----------------------------------------------------------------------------

    async def token(self, username: str, password: str) -> TokenResponse:
        body = {"username": username, "password": password}
        r = await self._send("POST", "/api/auth/token", json=body)
        return TokenResponse.model_validate_json(r.content)

    async def me(self) -> UserView:
        return await self._get(UserView, "/api/auth/me")

    async def logout(self) -> None:
        await self._send("POST", "/api/auth/logout")

    async def report_refusal(self, report: RefusalReport) -> None:
        """Have session-api audit a request the ui refused (as this user)."""
        await self._send("POST", "/api/audit/refusals", json=report.model_dump(mode="json"))

    # --- reading --------------------------------------------------------------------------

    async def microscopes(self) -> list[MicroscopeView]:
        return _MICROSCOPES.validate_json((await self._send("GET", "/api/microscopes")).content)

    async def sessions(
        self,
        *,
        microscope_id: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        archived: str | None = None,
        limit: int = 50,
        before: UUID | None = None,
    ) -> Page[SessionView]:
        """A page of sessions, newest first, filtered by session-api before it is cut."""
        params = {
            k: v.isoformat() if isinstance(v, datetime) else str(v)
            for k, v in {
                "microscope_id": microscope_id,
                "state": state,
                "since": since,
                "until": until,
                "archived": archived,
                "limit": limit,
                "before": before,
            }.items()
            if v
        }
        r = await self._send("GET", "/api/sessions", params=params)
        return Page(_SESSIONS.validate_json(r.content), next_cursor(r))

    async def session(self, session_id: UUID) -> SessionView:
        return await self._get(SessionView, f"/api/sessions/{session_id}")

    async def queue(self, session_id: UUID) -> QueueView:
        return await self._get(QueueView, f"/api/sessions/{session_id}/queue")

    async def run(self, run_id: UUID) -> RunView:
        return await self._get(RunView, f"/api/runs/{run_id}")

    async def logs(
        self,
        session_id: UUID,
        *,
        after_id: int | None = None,
        since: datetime | None = None,
        tail: int | None = None,
        limit: int = 1000,
    ) -> list[LogLineView]:
        """Log lines in id order; ``since`` and ``tail`` are the replay cursor (see report)."""
        params: dict[str, str | int] = {"limit": limit}
        if after_id is not None:
            params["after_id"] = after_id
        if since is not None:
            params["since"] = since.isoformat()
        if tail is not None:
            params["tail"] = tail
        r = await self._send("GET", f"/api/sessions/{session_id}/logs", params=params)
        return _LOGS.validate_json(r.content)

    async def logs_text(self, session_id: UUID, panel: str | None) -> AsyncIterator[bytes]:
        """The whole log as text, streamed (download)."""
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        params = {"format": "text", **({"panel": panel} if panel else {})}
        request = self._http.build_request(
            "GET", f"/api/sessions/{session_id}/logs", params=params, headers=headers
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise Unavailable(f"session-api is unreachable ({type(exc).__name__})") from exc
        if not response.is_success:
            await response.aread()
            await response.aclose()
            raise_for(response)
        return _stream(response)

    async def log_history(
        self, session_id: UUID, *, since: datetime | None = None, tail: int | None = None
    ) -> list[LogLineView]:
        """Every line with ``sent_at >= since`` (or the newest ``tail``), paging by id."""
        page, out, after = 1000, [], None
        while True:
            batch = await self.logs(session_id, after_id=after, since=since, tail=tail, limit=page)
            out.extend(batch)
            if len(batch) < page:
                break
            after = batch[-1].id
        return out[-tail:] if tail else out

    async def grid(self, session_id: UUID, grid_id: UUID) -> GridDetail:
        return await self._get(GridDetail, f"/api/sessions/{session_id}/grids/{grid_id}")

    async def square(self, square_id: UUID) -> SquareDetail:
        return await self._get(SquareDetail, f"/api/squares/{square_id}")

    async def runs(self, session_id: UUID, *, limit: int = 100) -> Page[RunView]:
        """The session's newest runs."""
        r = await self._send("GET", f"/api/sessions/{session_id}/runs", params={"limit": limit})
        return Page(_RUNS.validate_json(r.content), next_cursor(r))

    async def exposures(
        self, session_id: UUID, *, limit: int = 100, before: UUID | None = None
    ) -> Page[ExposureView]:
        """A page of the session's exposures, newest first (``before``: older than that one)."""
        params: dict[str, str | int] = {"limit": limit}
        if before is not None:
            params["before"] = str(before)
        r = await self._send("GET", f"/api/sessions/{session_id}/exposures", params=params)
        return Page(_EXPOSURES.validate_json(r.content), next_cursor(r))

    async def exposure_series(self, session_id: UUID, *, limit: int) -> ExposureSeries:
        """What the plots draw of the session's newest ``limit`` exposures."""
        url = f"/api/sessions/{session_id}/exposures/series"
        return await self._get(ExposureSeries, url, params={"limit": limit})

    async def image(self, path: str) -> tuple[bytes, str]:
        """An image by its API path (``/api/images/<id>.png``): bytes and content type."""
        r = await self._send("GET", path)
        return r.content, r.headers.get("content-type", "image/png")

    # --- setting sessions up ---------------------------------------------------------------

    async def create_session(self, body: dict[str, Any]) -> SessionView:
        """``body``: a ``proto.api.SessionCreate`` as JSON (checked by session-api: 422)."""
        r = await self._send("POST", "/api/sessions", json=body)
        return SessionView.model_validate_json(r.content)

    async def edit_session(self, session_id: UUID, body: dict[str, Any]) -> SessionView:
        """``body``: a ``proto.api.SessionEdit`` as JSON."""
        r = await self._send("PATCH", f"/api/sessions/{session_id}", json=body)
        return SessionView.model_validate_json(r.content)

    async def copy_session(self, session_id: UUID, body: dict[str, Any]) -> SessionView:
        """``body``: a ``proto.api.SessionCopy`` as JSON."""
        r = await self._send("POST", f"/api/sessions/{session_id}/copy", json=body)
        return SessionView.model_validate_json(r.content)

    async def archive(self, session_id: UUID, archived: bool) -> SessionView:
        verb = "archive" if archived else "unarchive"
        r = await self._send("POST", f"/api/sessions/{session_id}/{verb}")
        return SessionView.model_validate_json(r.content)

    # --- commands -------------------------------------------------------------------------

    async def start(self, session_id: UUID) -> StartResponse:
        r = await self._send("POST", f"/api/sessions/{session_id}/start")
        return StartResponse.model_validate_json(r.content)

    async def force_start(self, session_id: UUID) -> StartResponse:
        r = await self._send("POST", f"/api/sessions/{session_id}/force-start")
        return StartResponse.model_validate_json(r.content)

    async def stop(self, session_id: UUID) -> RunView:
        r = await self._send("POST", f"/api/sessions/{session_id}/stop")
        return RunView.model_validate_json(r.content)

    async def kill(self, session_id: UUID) -> RunView:
        r = await self._send("POST", f"/api/sessions/{session_id}/kill")
        return RunView.model_validate_json(r.content)

    async def acknowledge(self, session_id: UUID, run_id: UUID) -> RunView:
        r = await self._send("POST", f"/api/sessions/{session_id}/runs/{run_id}/acknowledge")
        return RunView.model_validate_json(r.content)

    async def set_pause(self, session_id: UUID, enabled: bool) -> None:
        url = f"/api/sessions/{session_id}/pause-between-grids"
        await self._send("PUT", url, json={"enabled": enabled})

    async def decide(self, session_id: UUID, choice: Choice) -> RunView:
        r = await self._send(
            "POST", f"/api/sessions/{session_id}/decision", json={"choice": choice}
        )
        return RunView.model_validate_json(r.content)

    async def add_targets(self, session_id: UUID, target_ids: list[UUID]) -> QueueView:
        body = {"target_ids": [str(t) for t in target_ids]}
        r = await self._send("POST", f"/api/sessions/{session_id}/targets", json=body)
        return QueueView.model_validate_json(r.content)

    async def remove_targets(self, session_id: UUID, target_ids: list[UUID]) -> QueueView:
        body = {"target_ids": [str(t) for t in target_ids]}
        r = await self._send("DELETE", f"/api/sessions/{session_id}/targets", json=body)
        return QueueView.model_validate_json(r.content)

    async def skip(
        self, session_id: UUID, what: Literal["target", "square"], target_id: UUID | None
    ) -> RunView:
        """*Skip this target* or *Skip rest of this square* (``target_id``: the one shown
        being acquired)."""
        body = {"target_id": str(target_id) if target_id else None}
        r = await self._send("POST", f"/api/sessions/{session_id}/skip-{what}", json=body)
        return RunView.model_validate_json(r.content)

    async def release_lease(self, microscope_id: str) -> LeaseReleaseResponse:
        r = await self._send("POST", f"/api/microscopes/{microscope_id}/lease/release")
        return LeaseReleaseResponse.model_validate_json(r.content)

    # --- operations (staff) -----------------------------------------------------------------

    async def ops(self) -> OpsView:
        return await self._get(OpsView, "/api/ops")

    async def dead_letter(
        self, queue: str, key: str, action: Literal["replay", "discard"]
    ) -> DeadLetterAction:
        r = await self._send("POST", f"/api/ops/dead-letters/{queue}/{key}/{action}")
        return DeadLetterAction.model_validate_json(r.content)

    async def purge_dead_letters(self, queue: str) -> DeadLetterAction:
        r = await self._send("POST", f"/api/ops/dead-letters/{queue}/purge")
        return DeadLetterAction.model_validate_json(r.content)

    # --- notifications (each user's own; deliveries: staff) ----------------------------------

    async def notifications(self) -> NotificationSettings:
        return await self._get(NotificationSettings, "/api/notifications")

    async def add_destination(self, label: str, url: str) -> DestinationView:
        body = {"label": label, "url": url}
        r = await self._send("POST", "/api/notifications/destinations", json=body)
        return DestinationView.model_validate_json(r.content)

    async def remove_destination(self, destination_id: int) -> None:
        await self._send("DELETE", f"/api/notifications/destinations/{destination_id}")

    async def test_destination(self, destination_id: int) -> SendTestResult:
        r = await self._send("POST", f"/api/notifications/destinations/{destination_id}/test")
        return SendTestResult.model_validate_json(r.content)

    async def subscribe(
        self,
        events: Sequence[str],
        *,
        session_id: UUID | None = None,
        microscope_id: str | None = None,
    ) -> SubscriptionView:
        body: dict[str, object] = {"events": list(events)}
        if session_id is not None:
            body["session_id"] = str(session_id)
        if microscope_id is not None:
            body["microscope_id"] = microscope_id
        r = await self._send("POST", "/api/notifications/subscriptions", json=body)
        return SubscriptionView.model_validate_json(r.content)

    async def unsubscribe(self, subscription_id: int) -> None:
        await self._send("DELETE", f"/api/notifications/subscriptions/{subscription_id}")

    async def deliveries(self) -> list[DestinationView]:
        r = await self._send("GET", "/api/notifications/deliveries")
        return _DESTINATIONS.validate_json(r.content)


async def _stream(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    finally:
        await response.aclose()
