"""The rows of a seeded facility (``support.facility``), as each microscope's sessions would
have written them: one generator per microscope, in time order."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

Row = tuple[str, dict[str, Any]]

LEVELS = (("info", 0.90), ("debug", 0.03), ("warning", 0.05), ("error", 0.018), ("critical", 0.002))
PANELS = (("acquisition", 0.45), ("processing", 0.50), ("system", 0.05))


@dataclass(frozen=True)
class Shape:
    exposures: int
    sessions: int
    scopes: int = 10
    lines_per_exposure: int = 10
    processed_per_exposure: int = 3
    busy_share: float = 0.25
    busy_cap: int = 100_000
    span_days: float = 45.0
    rate_per_h: float = 600.0
    idle_share: float = 0.03
    squares_per_grid: int = 12
    spare_holes: int = 16
    """Holes found on each imaged square that are never imaged (the hole finder reports every
    hole of a square; the run images a few)."""
    seed: int = 18


@dataclass
class Facility:
    """What the seed made, for the callers to aim at."""

    now: datetime
    scopes: list[str]
    busy: uuid.UUID
    busy_run: uuid.UUID
    small: uuid.UUID
    """A finished session of about 45 exposures."""
    live_runs: dict[str, uuid.UUID] = field(default_factory=dict)
    sessions: list[uuid.UUID] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)


class Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.log = 0
        self.audit = 0

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128))


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    x, acc = rng.random(), 0.0
    for value, p in table:
        acc += p
        if x < acc:
            return value
    return table[0][0]


class Scope:
    """One microscope's sessions, back to back, as rows in time order."""

    def __init__(self, fac: Facility, shape: Shape, ids: Ids, scope: str, plan: list[int]):
        self.fac, self.shape, self.ids, self.scope, self.plan = fac, shape, ids, scope, plan
        self.rng = random.Random(f"{shape.seed}-{scope}")

    def rows(self) -> Iterator[tuple[datetime, int, Row]]:
        """Every row of this microscope's sessions, in time order; the last one ends now."""
        step = timedelta(hours=1 / self.shape.rate_per_h)
        sizes = [self.busy_n if n == BUSY else n for n in self.plan]
        work = sum(sizes) * step + len(sizes) * SETUP
        span = timedelta(days=self.shape.span_days)
        gap = max((span - work) / max(len(sizes) - 1, 1), timedelta(0))
        t = self.fac.now - work - gap * (len(sizes) - 1)
        seq = 0
        for i, n in enumerate(sizes):
            busy = self.plan[i] == BUSY
            for at, row in self._session(t, n, step, i == len(sizes) - 1, busy):
                seq += 1
                yield at, seq, row
            t += SETUP + n * step + gap

    def _session(
        self, t0: datetime, n: int, step: timedelta, live: bool, busy: bool
    ) -> Iterator[tuple[datetime, Row]]:
        ids, rng, fac = self.ids, self.rng, self.fac
        sid = fac.busy if busy else ids.uuid()
        fac.sessions.append(sid)
        session = {
            "id": sid,
            "name": f"{self.scope}-{len(fac.sessions):06d}",
            "microscope_id": self.scope,
            "created_at": t0,
            "created_by": "operator",
            "pause_between_grids": False,
            "live_run_id": None,
            "latest_run_id": None,
            "plan": None,
            # staff archive one finished session in fifty
            "archived": not live and not busy and len(fac.sessions) % 50 == 0,
        }
        if n == 45 and not live and fac.small == NIL:
            fac.small = sid
        if rng.random() < self.shape.idle_share and not live and sid not in (fac.busy, fac.small):
            yield t0, ("sessions", session)
            return
        cassette = 12 if n > 3000 else 3  # a very busy session screens a full cassette
        runs = 2 if n > 20 and rng.random() < 0.2 else 1
        run_rows: list[dict[str, Any]] = []
        for k in range(runs):
            rid = fac.busy_run if sid == fac.busy and k == runs - 1 else ids.uuid()
            share = n // runs + (n % runs if k == runs - 1 else 0)
            started = t0 + SETUP / 2 + (n // runs) * k * step
            last = k == runs - 1
            run_rows.append(
                {
                    "id": rid,
                    "session_id": sid,
                    "microscope_id": self.scope,
                    "number": k + 1,
                    "state": "running" if live and last else "ended",
                    "exit_reason": None if live and last else rng.choice(["completed", "stopped"]),
                    "detail": None,
                    "host": "scope-pc",
                    "pid": 4242,
                    "started_at": started,
                    "ended_at": None if live and last else started + share * step,
                    "heartbeat_at": fac.now if live and last else started + share * step,
                    "requested_by": "operator",
                    "pause_between_grids": False,
                    "stop_requested": False,
                    "decision": None,
                    "queue": json.dumps({"items": [], "counts": {"queued": 3}}),
                    "current_grid": f"g{cassette - 1 if live else cassette}",
                    "exposures": share,
                    "exposures_failed": 0,
                    "last_exposure_at": started + share * step if share else None,
                    "_share": share,
                }
            )
        session["latest_run_id"] = run_rows[-1]["id"]
        if live:
            session["live_run_id"] = run_rows[-1]["id"]
            fac.live_runs[self.scope] = run_rows[-1]["id"]
        yield t0, ("sessions", session)
        grids: list[tuple[uuid.UUID, uuid.UUID]] = []
        for pos in range(1, cassette + 1):
            gid, atlas = ids.uuid(), ids.uuid()
            status = "done"
            if live:  # the live run is on the last grid but one
                status = {cassette - 1: "screening", cassette: "pending"}.get(pos, "done")
            grids.append((gid, atlas))
            grid = {
                "id": gid,
                "session_id": sid,
                "name": f"g{pos}",
                "position": pos,
                "status": status,
                "atlas_id": atlas,
            }
            yield t0, ("grids", grid)
            yield t0, ("images", _image(atlas, "atlas", sid, gid, 4096))
            for _ in range(self.shape.squares_per_grid):  # found on the atlas, never imaged
                row = _target(ids.uuid(), "square", sid, run_rows[0]["id"], gid, atlas, rng)
                yield t0, ("targets", row)
        for run in run_rows:
            yield run["started_at"], ("runs", {k: v for k, v in run.items() if k != "_share"})
            yield run["started_at"], ("audit", _audit(ids, run, "start"))
            yield from self._exposures(run, grids, step, live and run is run_rows[-1])
            if run["ended_at"] is not None:
                yield run["ended_at"], ("audit", _audit(ids, run, "stop"))

    busy_n = 0

    def _exposures(
        self,
        run: dict[str, Any],
        grids: list[tuple[uuid.UUID, uuid.UUID]],
        step: timedelta,
        live: bool,
    ) -> Iterator[tuple[datetime, Row]]:
        """The run's exposures, ``HOLES_PER_SQUARE`` (or more) on each square it images, a
        grid after the other (a live run is on its last grid but one), with their holes, PNGs,
        processed ids and log lines."""
        ids, rng, shape = self.ids, self.rng, self.shape
        sid, rid = run["session_id"], run["id"]
        n = run["_share"]
        used = len(grids) - 1 if live else len(grids)
        per_square = max(HOLES_PER_SQUARE, -(-n // (used * SQUARES_PER_ATLAS)))
        square = uuid.uuid4()
        for j in range(n):
            at = run["started_at"] + j * step
            gid, atlas = grids[min(j * used // max(n, 1), used - 1)]
            if j % per_square == 0:  # the run images a new square
                square = ids.uuid()
                yield at, ("images", _image(square, "square", sid, gid, 2048))
                row = _target(
                    square, "square", sid, rid, gid, atlas, rng, status="done", image_id=square
                )
                yield at, ("targets", row)
                for _ in range(shape.spare_holes):  # found on the square, never imaged
                    row = _target(ids.uuid(), "hole", sid, rid, gid, square, rng)
                    yield at, ("targets", row)
            hole, eid = ids.uuid(), ids.uuid()
            backlog = live and j >= n - 3
            failed = not backlog and rng.random() < 0.005
            yield at, ("targets", _target(hole, "hole", sid, rid, gid, square, rng, status="done"))
            if live and j >= n - 10:  # what the live run has queued next
                row = _target(ids.uuid(), "hole", sid, rid, gid, square, rng, status="queued")
                yield at, ("targets", row)
            thumb, spec = uuid.uuid5(eid, "thumbnail_id"), uuid.uuid5(eid, "spectrum_id")
            done = not (backlog or failed)
            yield (
                at,
                (
                    "exposures",
                    {
                        "id": eid,
                        "session_id": sid,
                        "run_id": rid,
                        "grid_id": gid,
                        "hole_id": hole,
                        "path": f"/data/{sid.hex[:8]}/movie_{j:06d}.mrc",
                        "acquired_at": at,
                        "status": "acquired" if backlog else ("failed" if failed else "processed"),
                        "error": "truncated file" if failed else None,
                        "defocus1_a": 15000 + rng.random() * 10000 if done else None,
                        "defocus2_a": 14800 + rng.random() * 10000 if done else None,
                        "astig_angle_deg": rng.random() * 180 if done else None,
                        "ctf_fit_resolution_a": 3 + rng.random() * 6 if done else None,
                        "ctf_cc": rng.random() if done else None,
                        "ctf_low_confidence": rng.random() < 0.1 if done else None,
                        "drift_total_a": rng.random() * 20 if done else None,
                        "ice_nm": 20 + rng.random() * 60 if done else None,
                        "thumbnail_id": thumb if done else None,
                        "spectrum_id": spec if done else None,
                        "processed_at": at + timedelta(seconds=2) if done else None,
                        "processing_s": 1.7 if done else None,
                    },
                ),
            )
            if done:
                yield at, ("images", _image(thumb, "thumbnail", sid, gid, 256))
                yield at, ("images", _image(spec, "spectrum", sid, gid, 256))
            for p in range(shape.processed_per_exposure):
                yield (
                    at,
                    (
                        "processed_messages",
                        {"message_id": ids.uuid(), "at": at + timedelta(seconds=p)},
                    ),
                )
            for k in range(shape.lines_per_exposure):
                panel, level = _pick(rng, PANELS), _pick(rng, LEVELS)
                yield (
                    at,
                    (
                        "log_lines",
                        {
                            "message_id": ids.uuid(),
                            "sent_at": at + timedelta(milliseconds=300 * k),
                            "session_id": sid,
                            "run_id": rid,
                            "service": panel if panel != "system" else "session-api",
                            "panel": panel,
                            "level": level,
                            "logger": f"{panel}.run",
                            "text": f"exposure {j + 1} step {k}: hole "
                            f"{hole.hex[:6]} → movie_{j:06d}.mrc ({level})",
                        },
                    ),
                )


NIL = uuid.UUID(int=0)
HOLES_PER_SQUARE = 4
"""Holes a run images on a square (acquisition's default ``holes_per_square``); a very busy
session images more per square, so that an atlas keeps at most ``SQUARES_PER_ATLAS``."""
SQUARES_PER_ATLAS = 300
BUSY = -1
"""The busy session's place in a microscope's plan (its size is ``Scope.busy_n``)."""
SETUP = timedelta(minutes=10)
"""Loading and atlas time of a session before its first exposure."""


def _image(iid: uuid.UUID, kind: str, sid: uuid.UUID, gid: uuid.UUID, px: int) -> dict[str, Any]:
    path = f"/data/{sid.hex[:8]}/{kind}_{iid.hex[:8]}.png"
    return {
        "id": iid,
        "kind": kind,
        "session_id": sid,
        "grid_id": gid,
        "path": path,
        "preview_path": path,
        "width": px,
        "height": px,
        "pixel_size_a": 1.0,
    }


def _target(
    tid: uuid.UUID,
    kind: str,
    sid: uuid.UUID,
    rid: uuid.UUID,
    gid: uuid.UUID,
    parent: uuid.UUID,
    rng: random.Random,
    *,
    status: str | None = None,
    image_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    return {
        "id": tid,
        "kind": kind,
        "session_id": sid,
        "run_id": rid,
        "grid_id": gid,
        "parent_id": parent,
        "y": rng.random() * 2000,
        "x": rng.random() * 2000,
        "size_px": 40.0,
        "cls": "good",
        "score": rng.random(),
        "ice_nm": 30.0,
        "status": status,
        "image_id": image_id,
    }


def _audit(ids: Ids, run: dict[str, Any], action: str) -> dict[str, Any]:
    at = run["started_at"] if action == "start" else run["ended_at"]
    return {
        "at": at,
        "username": "operator",
        "action": action,
        "session_id": run["session_id"],
        "run_id": run["id"],
        "target": None,
        "outcome": "ok",
        "detail": None,
    }


def plan(shape: Shape, rng: random.Random) -> dict[str, list[int]]:
    """Exposures per session, per microscope (the busy session: -1, last on the first)."""
    scopes = [f"m{i + 1:02d}" for i in range(shape.scopes)]
    busy = min(int(shape.exposures * shape.busy_share), shape.busy_cap)
    rest = shape.exposures - busy
    counts = [rng.uniform(0.2, 1.8) for _ in range(shape.sessions - 1)]
    scale = rest / sum(counts)
    sizes = [max(1, round(c * scale)) for c in counts]
    sizes[len(sizes) // 2] = 45  # the small session the pages are timed on
    out: dict[str, list[int]] = {s: [] for s in scopes}
    for i, n in enumerate(sizes):
        out[scopes[i % len(scopes)]].append(n)
    out[scopes[0]].append(BUSY)
    Scope.busy_n = busy
    return out
