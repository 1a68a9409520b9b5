"""A fake session-api for the ui's tests: the proto.api routes over in-memory state.

Commands change the state at once and publish the events the real services would publish
on the given bus, so the ui's live streams can be exercised without the real stack.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID, uuid4

from fastapi import Body, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, Response

from proto.api import (
    NOTIFY_EVENTS,
    ROLE_RANK,
    DecisionView,
    ExposureSeries,
    ExposureView,
    GridDetail,
    GridView,
    ImageView,
    LeaseHolderView,
    LeaseReleaseResponse,
    LogLineView,
    MicroscopeView,
    NotificationSettings,
    NotifyEventView,
    QueueView,
    RefusalReport,
    RunView,
    SessionView,
    SquareDetail,
    StartResponse,
    TargetView,
    TokenResponse,
    UserView,
    VolumeView,
)
from proto.bus.base import Bus
from proto.messages.image import QueueItem, QueueUpdated
from proto.messages.log import LogRecorded
from proto.messages.projection import StateProjected
from proto.messages.run import RunStateChanged
from proto.messages.session import SessionChanged
from proto.states import ExitReason, RunState

Auth = Annotated[str | None, Header()]
PASSWORDS = {"viewer": "viewer-pw", "operator": "operator-pw", "staff": "staff-pw"}
T0 = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def png(width: int = 200, height: int = 150) -> bytes:
    """A small grey PNG of a grid disc with a square mesh, made without an imaging library."""

    def pixel(x: int, y: int) -> int:
        dx, dy = (x - width / 2) / (width * 0.42), (y - height / 2) / (height * 0.45)
        if dx * dx + dy * dy > 1:
            return 18
        bar = x % 25 < 4 or y % 25 < 4
        return 60 if bar else 150 + (x * 7 + y * 13) % 60

    rows = b"".join(b"\x00" + bytes(pixel(x, y) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    head = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", head)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass
class Scope:
    id: str
    name: str
    volumes: list[VolumeView] = field(default_factory=list)
    holder: LeaseHolderView | None = None


@dataclass
class Sess:
    id: UUID
    name: str
    scope: str
    grids: list[GridView]
    pause: bool = False
    runs: list[dict[str, Any]] = field(default_factory=list)
    targets: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    exposures: list[ExposureView] = field(default_factory=list)
    created_at: datetime = T0


class FakeApi:
    """State plus the FastAPI ``app``; ``bus`` (entered) receives the events, if given."""

    def __init__(self, bus: Bus | None = None) -> None:
        self.bus = bus
        self.scopes: dict[str, Scope] = {}
        self.sessions: dict[UUID, Sess] = {}
        self.logs: list[LogLineView] = []
        self.calls: list[tuple[str, str]] = []
        self.fail_next: tuple[int, Any] | None = None
        self.fail_only: str | None = None
        """With ``fail_next``: fail the next request whose path contains this (not whatever
        request comes first: a stream's refresh may)."""
        self.auto_end_on_stop: float | None = None
        self.refusals: list[tuple[str, RefusalReport]] = []
        """Requests the ui refused and had audited: (user, report)."""
        self.app = self._build()

    # --- seeding --------------------------------------------------------------------------

    def add_scope(self, sid: str, name: str, volumes: list[VolumeView] | None = None) -> Scope:
        scope = Scope(sid, name, volumes if volumes is not None else [volume()])
        self.scopes[sid] = scope
        return scope

    def add_session(self, name: str, scope: str, grids: int = 2, squares: int = 6) -> Sess:
        sid = uuid4()
        gv = [
            GridView(
                id=uuid4(), name=f"grid-{i + 1}", position=i + 1, status="pending", atlas_id=uuid4()
            )
            for i in range(grids)
        ]
        s = Sess(sid, name, scope, gv, created_at=T0 + timedelta(seconds=len(self.sessions)))
        for g in gv:
            for k in range(squares):
                tid = uuid4()
                s.targets[tid] = {
                    "id": tid,
                    "kind": "square",
                    "grid_id": g.id,
                    "parent_id": g.atlas_id,
                    "y": 158.0 + 100 * (k // 3),
                    "x": 258.0 + 100 * (k % 3),
                    "size_px": 76.0,
                    "cls": ("good", "thick", "empty", "broken", "cracked", "contaminated")[k % 6],
                    "score": 0.5 + k / 20,
                    "ice_nm": 30.0 + k,
                    "status": None,
                    "image_id": tid if k == 0 else None,
                }
                if k == 0:
                    for h in range(5):
                        hid = uuid4()
                        s.targets[hid] = {
                            "id": hid,
                            "kind": "hole",
                            "grid_id": g.id,
                            "parent_id": tid,
                            "y": 100.0 + 60 * h,
                            "x": 100.0 + 70 * h,
                            "size_px": 40.0,
                            "cls": "good",
                            "score": 0.9,
                            "ice_nm": 25.0,
                            "status": None,
                            "image_id": None,
                        }
        self.sessions[sid] = s
        return s

    # --- views ----------------------------------------------------------------------------

    def run_view(self, s: Sess, run: dict[str, Any]) -> RunView:
        beat = run.get("heartbeat_at")
        return RunView(
            **{k: v for k, v in run.items() if k not in ("heartbeat_at",)},
            session_id=s.id,
            microscope_id=s.scope,
            heartbeat_at=beat,
            heartbeat_age_s=(now() - beat).total_seconds() if beat else None,
        )

    def live_run(self, s: Sess) -> dict[str, Any] | None:
        run = s.runs[-1] if s.runs else None
        return run if run is not None and run["state"] is not RunState.ENDED else None

    def session_view(self, s: Sess) -> SessionView:
        scope = self.scopes[s.scope]
        holder = scope.holder if scope.holder and scope.holder.session_id != s.id else None
        return SessionView(
            id=s.id,
            name=s.name,
            microscope_id=s.scope,
            microscope_name=scope.name,
            created_at=s.created_at,
            created_by="operator",
            pause_between_grids=s.pause,
            grids=s.grids,
            run=self.run_view(s, s.runs[-1]) if s.runs else None,
            lock_holder=holder,
            exposures=len(s.exposures),
        )

    def queue_view(self, s: Sess) -> QueueView:
        items = [
            QueueItem(
                target_id=t["id"],
                kind=t["kind"],
                grid_name=self.grid_name(s, t["grid_id"]),
                label=f"{t['kind']} {str(t['id'])[:6]}",
                status=t["status"],
            )
            for t in s.targets.values()
            if t["status"] in ("queued", "acquiring")
        ]
        counts: dict[str, int] = {}
        for t in s.targets.values():
            if t["status"]:
                counts[t["status"]] = counts.get(t["status"], 0) + 1
        run = s.runs[-1]["id"] if s.runs else None
        return QueueView(run_id=run, items=items, counts=counts)

    def grid_name(self, s: Sess, gid: UUID) -> str:
        return next(g.name for g in s.grids if g.id == gid)

    def scope_view(self, scope: Scope) -> MicroscopeView:
        s = next((x for x in self.sessions.values() if x.scope == scope.id and x.runs), None)
        run = self.run_view(s, s.runs[-1]) if s else None
        return MicroscopeView(
            id=scope.id,
            name=scope.name,
            lease_holder=scope.holder,
            session_id=s.id if s else None,
            session_name=s.name if s else None,
            run=run,
            current_grid=run.current_grid if run else None,
            exposures_per_hour=120.0 if run and run.state.live else 0.0,
            backlog=3 if run and run.state.live else 0,
            volumes=scope.volumes,
        )

    # --- events ---------------------------------------------------------------------------

    async def publish_state(self, s: Sess, run: dict[str, Any]) -> None:
        if self.bus is not None:
            event = RunStateChanged(
                run_id=run["id"],
                session_id=s.id,
                microscope_id=s.scope,
                state=run["state"],
                exit_reason=run["exit_reason"],
                host=run["host"],
                pid=run["pid"],
            )
            # like session-api: the pages hear of a change once it is committed
            await self.bus.publish(StateProjected.of(event))

    async def announce(self, s: Sess, change: str, who: str) -> None:
        """What session-api publishes once it has committed a control's change itself."""
        if self.bus is not None:
            run = self.live_run(s)
            await self.bus.publish(
                SessionChanged(
                    run_id=run["id"] if run else None,
                    session_id=s.id,
                    microscope_id=s.scope,
                    change=change,
                    requested_by=who,
                )
            )

    async def publish_queue(self, s: Sess) -> None:
        q = self.queue_view(s)
        if self.bus is not None and q.run_id is not None:
            event = QueueUpdated(
                run_id=q.run_id, session_id=s.id, items=tuple(q.items), counts=q.counts
            )
            await self.bus.publish(StateProjected.of(event))

    async def log(
        self,
        s: Sess,
        panel: Literal["acquisition", "processing", "system"],
        text: str,
        level: Literal["debug", "info", "warning", "error", "critical"] = "info",
        *,
        store: bool = True,
        publish: bool = True,
        sent_at: datetime | None = None,
    ) -> LogRecorded:
        """A log line: stored (as session-api would) and/or published (as a service would)."""
        run = s.runs[-1]["id"] if s.runs else None
        rec = LogRecorded(
            run_id=run,
            service=panel if panel != "system" else "session-api",
            panel=panel,
            level=level,
            logger="fake",
            text=text,
            session_id=str(s.id),
            microscope_id=s.scope,
            sent_at=sent_at or now(),
        )
        if store:
            self.store(s, rec)
        if publish and self.bus is not None:
            await self.bus.publish(rec)
        return rec

    def store(self, s: Sess, rec: LogRecorded) -> None:
        self.logs.append(
            LogLineView(
                id=len(self.logs) + 1,
                message_id=rec.message_id,
                sent_at=rec.sent_at,
                run_id=rec.run_id,
                service=rec.service,
                panel=rec.panel,
                level=rec.level,
                text=rec.text,
            )
        )
        self._log_sessions[len(self.logs)] = s.id

    async def set_state(
        self, s: Sess, state: RunState, reason: ExitReason | None = None, **extra: Any
    ) -> None:
        run = s.runs[-1]
        run.update(state=state, exit_reason=reason, **extra)
        if state is RunState.ENDED:
            run["ended_at"] = now()
            run["decision"] = None
            scope = self.scopes[s.scope]
            if scope.holder and scope.holder.run_id == run["id"]:
                scope.holder = None
        await self.publish_state(s, run)

    async def ask_decision(
        self, s: Sess, cause: Literal["grid_done", "disk_low"] = "grid_done"
    ) -> None:
        """The run's grid ran out of targets with pause-between-grids on: prompt."""
        run, g = s.runs[-1], s.grids[0]
        run["decision"] = DecisionView(
            grid_id=g.id, grid_name=g.name, has_next_grid=len(s.grids) > 1, cause=cause
        )
        await self.set_state(s, RunState.AWAITING_DECISION)

    # --- the app ----------------------------------------------------------------------------

    def _build(self) -> FastAPI:  # noqa: C901 - one route table, read top to bottom
        app = FastAPI()
        self._log_sessions: dict[int, UUID] = {}
        fake = self

        def user_of(authorization: str | None, need: str = "viewer") -> str:
            if not authorization or not authorization.startswith("Bearer tok-"):
                raise HTTPException(401, "not logged in")
            name = authorization.removeprefix("Bearer tok-")
            if name not in PASSWORDS:
                raise HTTPException(401, "not logged in")
            if ROLE_RANK[name] < ROLE_RANK[need]:
                who = {"operator": "operators and staff", "staff": "staff"}[need]
                article = "an" if name[0] in "aeiou" else "a"
                # session-api's words (session_api.auth.refusal), for any action
                raise HTTPException(
                    403, f"Only {who} can do this; you are signed in as {article} {name}."
                )
            return name

        def sess(session_id: UUID) -> Sess:
            if session_id not in fake.sessions:
                raise HTTPException(404, "no such session")
            return fake.sessions[session_id]

        @app.middleware("http")
        async def record(request: Request, call_next: Any) -> Any:
            fake.calls.append((request.method, request.url.path))
            if (
                fake.fail_next is not None
                and request.url.path != "/api/auth/token"
                and (fake.fail_only is None or fake.fail_only in request.url.path)
            ):
                status, detail = fake.fail_next
                fake.fail_next = None
                from fastapi.responses import JSONResponse

                return JSONResponse({"detail": detail}, status_code=status)
            return await call_next(request)

        @app.post("/api/auth/token")
        async def token(body: Annotated[dict[str, Any], Body()]) -> TokenResponse:
            name, pw = body.get("username"), body.get("password")
            if not name or not pw:
                raise HTTPException(422, [{"loc": ["body", "username"], "msg": "Field required"}])
            if PASSWORDS.get(name) != pw:
                raise HTTPException(401, "wrong username or password")
            return TokenResponse(
                access_token=f"tok-{name}", user=UserView(username=name, role=name)
            )  # type: ignore[arg-type]

        @app.post("/api/auth/logout", status_code=204)
        async def logout() -> None:
            return None

        @app.post("/api/audit/refusals", status_code=204)
        async def refusal(body: RefusalReport, authorization: Auth = None) -> None:
            fake.refusals.append((user_of(authorization), body))

        @app.get("/api/auth/me")
        async def me(authorization: Auth = None) -> UserView:
            name = user_of(authorization)
            return UserView(username=name, role=name)  # type: ignore[arg-type]

        @app.get("/api/notifications")
        async def notifications(authorization: Auth = None) -> NotificationSettings:
            """Nobody has destinations or subscriptions here (the session page's *Notify me*
            asks; the notifications pages are tested on the real session-api)."""
            user_of(authorization)
            events = [NotifyEventView(event=e, label=e) for e in NOTIFY_EVENTS]
            return NotificationSettings(destinations=[], subscriptions=[], events=events)

        @app.get("/api/microscopes")
        async def microscopes(authorization: Auth = None) -> list[MicroscopeView]:
            user_of(authorization)
            return [fake.scope_view(m) for m in fake.scopes.values()]

        @app.post("/api/microscopes/{mid}/lease/release")
        async def release(mid: str, authorization: Auth = None) -> LeaseReleaseResponse:
            user_of(authorization, "staff")
            scope = fake.scopes[mid]
            holder, scope.holder = scope.holder, None
            if holder is not None:
                for s in fake.sessions.values():
                    if s.runs and s.runs[-1]["id"] == holder.run_id and fake.live_run(s):
                        await fake.set_state(
                            s,
                            RunState.ENDED,
                            ExitReason.LOST,
                            detail="the lease was force-released",
                        )
            return LeaseReleaseResponse(released=holder is not None, holder=holder)

        @app.get("/api/sessions")
        async def sessions(
            request: Request,
            response: Response,
            authorization: Auth = None,
            microscope_id: str | None = None,
            state: str | None = None,
            limit: int = Query(100, ge=1, le=500),
            before: UUID | None = None,
        ) -> list[SessionView]:
            """Newest first, filtered, then cut to a page (as session-api does)."""
            user_of(authorization)
            out = [fake.session_view(s) for s in fake.sessions.values()]
            if microscope_id:
                out = [v for v in out if v.microscope_id == microscope_id]
            if state == "idle":
                out = [v for v in out if v.run is None]
            elif state:
                out = [v for v in out if v.run and v.run.state == state]
            out.sort(key=lambda v: (v.created_at, str(v.id)), reverse=True)
            return page(request, response, out, limit, before, lambda v: v.id, "session")

        @app.get("/api/sessions/{session_id}")
        async def get_session(session_id: UUID, authorization: Auth = None) -> SessionView:
            user_of(authorization)
            return fake.session_view(sess(session_id))

        @app.get("/api/sessions/{session_id}/queue")
        async def queue(session_id: UUID, authorization: Auth = None) -> QueueView:
            user_of(authorization)
            return fake.queue_view(sess(session_id))

        async def _start(s: Sess, who: str) -> StartResponse:
            scope = fake.scopes[s.scope]
            run: dict[str, Any] = {
                "id": uuid4(),
                "number": len(s.runs) + 1,
                "state": RunState.RUNNING,
                "exit_reason": None,
                "detail": None,
                "host": "scope-pc",
                "pid": 4242,
                "started_at": now(),
                "ended_at": None,
                "heartbeat_at": now(),
                "requested_by": who,
                "pause_between_grids": s.pause,
                "stop_requested": False,
                "decision": None,
                "current_grid": s.grids[0].name if s.grids else None,
                "exposures": 0,
                "acknowledged_by": None,
                "acknowledged_at": None,
            }
            s.runs.append(run)
            if scope.holder is not None:
                run.update(
                    state=RunState.ENDED,
                    exit_reason=ExitReason.LOCKED,
                    ended_at=now(),
                    detail=f"microscope {scope.name} is locked by session "
                    f"{scope.holder.session_name}",
                )
                await fake.log(s, "acquisition", run["detail"], "error")
            else:
                scope.holder = LeaseHolderView(
                    microscope_id=s.scope,
                    session_id=s.id,
                    session_name=s.name,
                    run_id=run["id"],
                    host="scope-pc",
                    pid=4242,
                    acquired_at=now(),
                )
                await fake.log(s, "acquisition", f"run {run['number']} started", "info")
            await fake.announce(s, f"run {run['number']} starting", who)
            await fake.publish_state(s, run)
            return StartResponse(run_id=run["id"], session_id=s.id)

        @app.post("/api/sessions/{session_id}/start", status_code=202)
        async def start(session_id: UUID, authorization: Auth = None) -> StartResponse:
            who = user_of(authorization, "operator")
            s = sess(session_id)
            live = fake.live_run(s)
            if live is not None:
                raise HTTPException(409, f"run {live['number']} is {live['state'].label}")
            return await _start(s, who)

        @app.post("/api/sessions/{session_id}/force-start", status_code=202)
        async def force_start(session_id: UUID, authorization: Auth = None) -> StartResponse:
            who = user_of(authorization, "staff")
            s = sess(session_id)
            if fake.live_run(s) is not None:
                await fake.set_state(s, RunState.ENDED, ExitReason.LOST, detail="force start")
            return await _start(s, who)

        @app.post("/api/sessions/{session_id}/stop", status_code=202)
        async def stop(session_id: UUID, authorization: Auth = None) -> RunView:
            who = user_of(authorization, "operator")
            s = sess(session_id)
            run = fake.live_run(s)
            if run is None:
                raise HTTPException(409, "no live run to stop")
            run["stop_requested"] = True
            await fake.announce(s, f"stop requested for run {run['number']}", who)
            await fake.set_state(s, RunState.STOPPING)
            if fake.auto_end_on_stop is not None:
                asyncio.get_running_loop().call_later(
                    fake.auto_end_on_stop,
                    lambda: asyncio.ensure_future(
                        fake.set_state(s, RunState.ENDED, ExitReason.STOPPED)
                    ),
                )
            return fake.run_view(s, run)

        @app.post("/api/sessions/{session_id}/kill", status_code=202)
        async def kill(session_id: UUID, authorization: Auth = None) -> RunView:
            user_of(authorization, "staff")
            s = sess(session_id)
            if fake.live_run(s) is None:
                raise HTTPException(409, "no live run to kill")
            await fake.set_state(s, RunState.ENDED, ExitReason.KILLED)
            return fake.run_view(s, s.runs[-1])

        @app.post("/api/sessions/{session_id}/runs/{run_id}/acknowledge")
        async def acknowledge(
            session_id: UUID, run_id: UUID, authorization: Auth = None
        ) -> RunView:
            who = user_of(authorization, "operator")
            s = sess(session_id)
            run = next((r for r in s.runs if r["id"] == run_id), None)
            if run is None:
                raise HTTPException(404, f"no run {run_id} in session {s.name}")
            if run["state"] is not RunState.ENDED:
                raise HTTPException(409, f"run {run['number']} has not ended yet")
            if run["acknowledged_by"] is None:
                run.update(acknowledged_by=who, acknowledged_at=now())
                await fake.announce(s, f"run {run['number']} acknowledged", who)
            return fake.run_view(s, run)

        @app.put("/api/sessions/{session_id}/pause-between-grids")
        async def pause(
            session_id: UUID, body: Annotated[dict[str, Any], Body()], authorization: Auth = None
        ) -> SessionView:
            who = user_of(authorization, "operator")
            s = sess(session_id)
            if not isinstance(body.get("enabled"), bool):
                raise HTTPException(422, [{"loc": ["body", "enabled"], "msg": "not a boolean"}])
            s.pause = body["enabled"]
            run = fake.live_run(s)
            if run is not None:
                run["pause_between_grids"] = s.pause
            await fake.announce(s, f"pause between grids {'on' if s.pause else 'off'}", who)
            return fake.session_view(s)

        @app.post("/api/sessions/{session_id}/decision", status_code=202)
        async def decision(
            session_id: UUID, body: Annotated[dict[str, Any], Body()], authorization: Auth = None
        ) -> RunView:
            user_of(authorization, "operator")
            s = sess(session_id)
            run = fake.live_run(s)
            if run is None or run["decision"] is None:
                raise HTTPException(409, "the run is not waiting for a decision")
            queued = [t for t in s.targets.values() if t["status"] == "queued"]
            if body.get("choice") == "continue_grid" and not queued:
                d: DecisionView = run["decision"]
                run["decision"] = d.model_copy(
                    update={
                        "reprompt_reason": "No target is queued on this grid: add targets first."
                    }
                )
            else:
                run["decision"] = None
                run["state"] = RunState.RUNNING
            await fake.publish_state(s, run)
            return fake.run_view(s, run)

        async def _targets(s: Sess, body: dict[str, Any], status: str | None) -> QueueView:
            for raw in body.get("target_ids", []):
                t = s.targets.get(UUID(raw))
                if t is None:
                    raise HTTPException(422, "unknown target")
                t["status"] = status
            await fake.publish_queue(s)
            return fake.queue_view(s)

        @app.post("/api/sessions/{session_id}/targets", status_code=202)
        async def add(
            session_id: UUID, body: Annotated[dict[str, Any], Body()], authorization: Auth = None
        ) -> QueueView:
            user_of(authorization, "operator")
            return await _targets(sess(session_id), body, "queued")

        @app.delete("/api/sessions/{session_id}/targets", status_code=202)
        async def remove(
            session_id: UUID, body: Annotated[dict[str, Any], Body()], authorization: Auth = None
        ) -> QueueView:
            user_of(authorization, "operator")
            return await _targets(sess(session_id), body, "removed")

        @app.get("/api/sessions/{session_id}/logs", response_model=None)
        async def logs(
            session_id: UUID,
            authorization: Auth = None,
            panel: str | None = None,
            after_id: int = 0,
            limit: int = Query(500, le=5000),
            since: datetime | None = None,
            tail: int | None = None,
            format: str = "json",
        ) -> list[LogLineView] | PlainTextResponse:
            user_of(authorization)
            s = sess(session_id)
            rows = [
                ln
                for ln in fake.logs
                if fake._log_sessions[ln.id] == s.id
                and ln.id > after_id
                and (panel is None or ln.panel == panel)
                and (since is None or ln.sent_at >= since)
            ]
            if format == "text":
                return PlainTextResponse(
                    "".join(
                        f"{ln.sent_at.isoformat()} {ln.level.upper():8} {ln.service}: {ln.text}\n"
                        for ln in rows
                    )
                )
            if tail:
                rows = rows[-tail:]
            return rows[:limit]

        @app.get("/api/sessions/{session_id}/grids/{grid_id}")
        async def grid(session_id: UUID, grid_id: UUID, authorization: Auth = None) -> GridDetail:
            user_of(authorization)
            s = sess(session_id)
            g = next((g for g in s.grids if g.id == grid_id), None)
            if g is None:
                raise HTTPException(404, "no such grid")
            atlas = ImageView(
                id=g.atlas_id or uuid4(),
                url=f"/api/images/{g.atlas_id}.png",
                width=800,
                height=600,
                pixel_size_a=500.0,
            )
            squares = [
                TargetView(**t)
                for t in s.targets.values()
                if t["kind"] == "square" and t["grid_id"] == g.id
            ]
            return GridDetail(grid=g, atlas=atlas, squares=squares)

        @app.get("/api/squares/{square_id}")
        async def square(square_id: UUID, authorization: Auth = None) -> SquareDetail:
            user_of(authorization)
            for s in fake.sessions.values():
                t = s.targets.get(square_id)
                if t is not None:
                    holes = [
                        TargetView(**h)
                        for h in s.targets.values()
                        if h["kind"] == "hole" and h["parent_id"] == square_id
                    ]
                    image = ImageView(
                        id=square_id,
                        url=f"/api/images/{square_id}.png",
                        width=500,
                        height=500,
                        pixel_size_a=50.0,
                    )
                    return SquareDetail(square=TargetView(**t), image=image, holes=holes)
            raise HTTPException(404, "no such square")

        @app.get("/api/sessions/{session_id}/runs")
        async def runs(
            session_id: UUID,
            request: Request,
            response: Response,
            authorization: Auth = None,
            limit: int = Query(100, ge=1, le=1000),
        ) -> list[RunView]:
            user_of(authorization)
            s = sess(session_id)
            views = [fake.run_view(s, r) for r in reversed(s.runs)]
            return page(request, response, views, limit, None, lambda r: r.number, "run")

        @app.get("/api/sessions/{session_id}/exposures")
        async def exposures(
            session_id: UUID,
            request: Request,
            response: Response,
            authorization: Auth = None,
            limit: int = Query(200, ge=1, le=5000),
            before: UUID | None = None,
        ) -> list[ExposureView]:
            user_of(authorization)
            rows = sorted(
                sess(session_id).exposures, key=lambda e: (e.acquired_at, str(e.id)), reverse=True
            )
            return page(request, response, rows, limit, before, lambda e: e.id, "exposure")

        @app.get("/api/sessions/{session_id}/exposures/series")
        async def exposure_series(
            session_id: UUID, authorization: Auth = None, limit: int = Query(1000, ge=1, le=5000)
        ) -> ExposureSeries:
            user_of(authorization)
            rows = sorted(
                sess(session_id).exposures, key=lambda e: (e.acquired_at, str(e.id)), reverse=True
            )
            names = [n for n in ExposureSeries.model_fields if n != "more"]
            columns = {n: [getattr(e, n) for e in rows[:limit]] for n in names}
            return ExposureSeries(**columns, more=len(rows) > limit)

        @app.get("/api/images/{name}")
        async def image(name: str, authorization: Auth = None) -> Response:
            user_of(authorization)
            return Response(png(), media_type="image/png")

        return app

    def add_exposures(self, s: Sess, n: int) -> None:
        hole = next(t for t in s.targets.values() if t["kind"] == "hole")
        for i in range(n):
            failed = i % 7 == 6
            s.exposures.append(
                ExposureView(
                    id=uuid4(),
                    run_id=s.runs[-1]["id"] if s.runs else None,
                    grid_id=s.grids[0].id,
                    hole_id=hole["id"],
                    acquired_at=T0 + timedelta(minutes=i),
                    status="failed" if failed else "processed",
                    error="truncated movie: 12 of 40 frames" if failed else None,
                    defocus1_a=None if failed else 15000.0 + 300 * (i % 5),
                    defocus2_a=None if failed else 14500.0 + 300 * (i % 5),
                    astigmatism_a=None if failed else 500.0,
                    astig_angle_deg=None if failed else 35.0,
                    ctf_fit_resolution_a=None if failed else 3.2 + (i % 4) * 0.4,
                    ctf_low_confidence=i % 5 == 4,
                    drift_total_a=None if failed else 8.0 + i % 3,
                    ice_nm=None if failed else 20.0 + (i * 7) % 40,
                    thumbnail_url=None if failed else f"/api/images/{uuid4()}.png",
                    spectrum_url=None if failed else f"/api/images/{uuid4()}.png",
                )
            )


P = TypeVar("P")


def page(
    request: Request,
    response: Response,
    rows: list[P],
    limit: int,
    before: object | None,
    key: Callable[[P], object],
    what: str,
) -> list[P]:
    """``rows`` (newest first) after the one whose key is ``before``, cut to ``limit``, with
    session-api's ``Link: <…>; rel="next"`` when more follow."""
    if before is not None:
        at = next((i for i, r in enumerate(rows) if key(r) == before), None)
        if at is None:
            raise HTTPException(
                422, [{"loc": ["query", "before"], "msg": f"no {what} {before}", "type": "value"}]
            )
        rows = rows[at + 1 :]
    if len(rows) > limit:
        url = request.url.remove_query_params("before").include_query_params(
            before=str(key(rows[limit - 1]))
        )
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return rows[:limit]


def volume(
    name: str = "data", free: float = 0.6, total: int = 8 * 10**12, hours_left: float | None = 30.0
) -> VolumeView:
    used = 1 - free
    level: Literal["ok", "warning", "critical"] = (
        "critical" if free <= 0.05 else "warning" if free <= 0.15 else "ok"
    )
    return VolumeView(
        name=name,
        path=f"/mnt/{name}",
        total_bytes=total,
        free_bytes=int(total * free),
        used_fraction=used,
        level=level,
        hours_left=hours_left,
    )
