"""Retention archives old rows to readable files before it deletes them, a batch at a time;
it keeps what is recent, what was imaged, and exposures and the audit unless told otherwise."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridpilot import archive as archive_cli
from gridpilot.cli import _parser
from session_api import archive
from session_api.db.engine import make_engine, migrate, sessionmaker
from session_api.db.models import (
    AuditEntry,
    Exposure,
    Image,
    LogLine,
    Microscope,
    Processed,
    Run,
    Session,
    Target,
)
from session_api.db.types import utcnow
from session_api.retention import Policy, retain_once
from support.database import fresh_database

DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
NOW = utcnow()
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=1)


@pytest.fixture(params=DATABASES)
async def db(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with fresh_database(request.param, tmp_path) as url:
        engine = make_engine(url)
        await migrate(engine)
        yield sessionmaker(engine)
        await engine.dispose()


def _session(name: str, ended: datetime | None) -> tuple[Session, Run | None]:
    s = Session(id=uuid.uuid4(), name=name, microscope_id="m1", created_by="op", created_at=OLD)
    if ended is None:
        return s, None
    run = Run(
        id=uuid.uuid4(),
        session_id=s.id,
        microscope_id="m1",
        number=1,
        state="ended",
        exit_reason="completed",
        requested_by="op",
        started_at=ended - timedelta(hours=2),
        ended_at=ended,
    )
    s.latest_run_id = run.id
    return s, run


def _target(s: Session, run: Run, kind: str, **kw: object) -> Target:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "kind": kind,
        "session_id": s.id,
        "run_id": run.id,
        "grid_id": uuid.uuid4(),
        "parent_id": uuid.uuid4(),
        "y": 1.0,
        "x": 2.0,
        "size_px": 3.0,
        "cls": "good",
        "score": 0.5,
        **kw,
    }
    return Target(**values)


async def _seed(sessions: async_sessionmaker[AsyncSession]) -> dict[str, object]:
    """Two finished sessions (one long ago, one yesterday) with targets, exposures, logs,
    audit and processed ids, half of them old."""
    old_s, old_run = _session("old", OLD)
    new_s, new_run = _session("new", RECENT)
    assert old_run is not None and new_run is not None
    unimaged = [_target(old_s, old_run, "hole", status=st) for st in (None, "queued", "removed")]
    square = _target(old_s, old_run, "square", image_id=uuid.uuid4())
    exposed = _target(old_s, old_run, "hole", status="done")
    shot = _target(old_s, old_run, "hole", status="failed")  # failed, but its movie exists
    recent = _target(new_s, new_run, "hole")
    exposures = []
    for hole, run, sess in ((exposed, old_run, old_s), (shot, old_run, old_s)):
        e = Exposure(
            id=uuid.uuid4(),
            session_id=sess.id,
            run_id=run.id,
            grid_id=hole.grid_id,
            hole_id=hole.id,
            path="/data/x.mrc",
            acquired_at=OLD,
            status="processed",
        )
        e.thumbnail_id = uuid.uuid5(e.id, "thumbnail_id")
        exposures.append(e)
    async with sessions() as db:
        db.add(Microscope(id="m1", name="M1"))
        await db.flush()
        db.add_all([old_s, new_s])
        await db.flush()
        db.add_all([old_run, new_run, *unimaged, square, exposed, shot, recent, *exposures])
        for e in exposures:
            db.add(
                Image(
                    id=e.thumbnail_id,
                    kind="thumbnail",
                    session_id=e.session_id,
                    path="/data/t.png",
                    preview_path="/data/t.png",
                )
            )
        for i in range(45):
            at = OLD + timedelta(minutes=i) if i < 30 else RECENT
            db.add(
                LogLine(
                    message_id=uuid.uuid4(),
                    sent_at=at,
                    session_id=old_s.id,
                    service="acquisition",
                    panel="acquisition",
                    level="info",
                    logger="t",
                    text=f"line {i}",
                )
            )
            db.add(Processed(message_id=uuid.uuid4(), at=at))
        for at in (OLD, RECENT):
            db.add(AuditEntry(at=at, username="op", action="start", outcome="ok"))
        await db.commit()
    return {"unimaged": {t.id for t in unimaged}, "kept": {square.id, exposed.id, shot.id}}


async def _count(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_old_rows_are_archived_then_deleted_in_batches(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    seeded = await _seed(db)
    policy = Policy(archive_dir=tmp_path / "archive", batch=7, file_rows=20)
    done = await retain_once(db, policy, now=NOW)
    assert done == {"log_lines": 30, "processed": 30, "targets": 3}
    assert await _count(db, LogLine) == 15 and await _count(db, Processed) == 15
    async with db() as s:
        left = set((await s.scalars(select(Target.id))).all())
    assert not left & seeded["unimaged"]  # type: ignore[operator]
    assert seeded["kept"] <= left, "imaged squares and exposed holes stay"  # type: ignore[operator]
    assert len(left) == 4, "the recent session's targets stay"
    assert await _count(db, Exposure) == 2 and await _count(db, AuditEntry) == 2

    logs = archive.files(policy.archive_dir, "log_lines")
    assert len(logs) == 2, "30 lines in files of at most 20 rows"
    texts = []
    for path in logs:
        header, rows = archive.read(path)
        assert header["kind"] == "log_lines" and path.parent.name == OLD.date().isoformat()
        texts += [r["text"] for r in rows]
    assert texts == [f"line {i}" for i in range(30)]
    assert archive.files(policy.archive_dir, "processed") == [], "ids are not worth a file"
    (targets,) = archive.files(policy.archive_dir, "targets")
    assert {uuid.UUID(r["id"]) for r in archive.read(targets)[1]} == seeded["unimaged"]

    assert await retain_once(db, policy, now=NOW) == {"log_lines": 0, "processed": 0, "targets": 0}


async def test_every_batch_waits_for_the_projection_first(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """session-api passes ``Projector.drain``: before each batch it reads or deletes, the
    round lets the event being projected (and those waiting) go first."""
    await _seed(db)
    progress: dict[str, int] = {}
    seen: list[dict[str, int]] = []

    async def turn() -> None:
        seen.append(dict(progress))

    policy = Policy(archive_dir=tmp_path / "archive", batch=7, file_rows=20)
    done = await retain_once(db, policy, now=NOW, progress=progress, yield_to=turn)
    assert done == {"log_lines": 30, "processed": 30, "targets": 3}
    for kind, rows in done.items():
        before = {s.get(kind, 0) for s in seen}
        # a turn before every deleting transaction: at 0, 7, 14 … rows deleted
        assert set(range(0, rows, 7)) <= before, (kind, sorted(before))
    # log lines and message ids, 30 each at 7 a statement: 5 reads and 5 deleting
    # transactions each; then the targets' sessions
    assert len(seen) >= 2 * (5 + 5) + 1


async def test_exposures_and_audit_go_only_when_a_setting_says_so(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await _seed(db)
    policy = Policy(
        archive_dir=tmp_path / "archive",
        log_lines_days=None,
        processed_days=None,
        targets_days=None,
        audit_days=30,
        exposures_days=30,
    )
    assert await retain_once(db, policy, now=NOW) == {"audit": 1, "exposures": 2}
    assert await _count(db, Exposure) == 0 and await _count(db, Image) == 0
    assert await _count(db, AuditEntry) == 1 and await _count(db, LogLine) == 45
    (exposures,) = archive.files(policy.archive_dir, "exposures")
    rows = list(archive.read(exposures)[1])
    assert [r["images"][0]["kind"] for r in rows] == ["thumbnail", "thumbnail"]


async def test_gridpilot_archive_lists_and_shows_the_files(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await _seed(db)
    root = tmp_path / "archive"
    await retain_once(db, Policy(archive_dir=root, file_rows=100), now=NOW)
    out = io.StringIO()
    assert archive_cli.main(_parser().parse_args(["archive", "list", "--dir", str(root)]), out) == 0
    listed = out.getvalue().split()
    assert [Path(p).parts[-3] for p in listed] == ["log_lines", "targets"]
    out = io.StringIO()
    assert archive_cli.main(_parser().parse_args(["archive", "show", listed[0]]), out) == 0
    first = out.getvalue().splitlines()[0]
    assert first.endswith("INFO     acquisition: line 0") and first.startswith(OLD.isoformat()[:16])
    assert archive_cli.main(_parser().parse_args(["archive", "show", str(tmp_path)])) == 1
