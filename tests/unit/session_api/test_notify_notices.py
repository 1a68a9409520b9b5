"""Events to notices: which subscriptions hear what, disk levels rising, failure windows,
silent runs, and the apprise URLs kept secret."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from proto import messages as m
from proto.states import ExitReason, RunState
from session_api.db.models import Microscope, Run, Session
from session_api.notify.notices import (
    DiskLevels,
    FailureWindow,
    event_labels,
    pause_prompt,
    run_ended,
)
from session_api.notify.sender import MAX_LISTED, compose
from session_api.notify.urls import Unreadable, UrlBox, check, hide_unparsed_urls, mask
from session_api.notify.watch import SilenceWatch
from session_api.settings import NotifySettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RUN, SESSION = uuid.uuid4(), uuid.uuid4()


def ended(reason: ExitReason) -> m.RunStateChanged:
    return m.RunStateChanged(
        run_id=RUN,
        session_id=SESSION,
        microscope_id="k1",
        state=RunState.ENDED,
        exit_reason=reason,
        detail="why",
    )


def test_an_ended_run_is_heard_by_run_ended_and_by_its_reason() -> None:
    assert run_ended(ended(ExitReason.STOPPED)).events == {"run_ended"}  # type: ignore[union-attr]
    locked = run_ended(ended(ExitReason.LOCKED))
    assert locked is not None and locked.events == {"run_ended", "scope_locked"}
    assert locked.title.startswith("Scope locked")
    lost = run_ended(ended(ExitReason.LOST))
    assert lost is not None and lost.events == {"run_ended", "lease_lost"}
    assert lost.level == "critical"
    running = m.RunStateChanged(
        run_id=RUN, session_id=SESSION, microscope_id="k1", state=RunState.RUNNING
    )
    assert run_ended(running) is None


def test_a_prompt_asked_again_at_once_is_not_told_again() -> None:
    def ask(reprompt: str | None) -> m.DecisionRequested:
        return m.DecisionRequested(
            run_id=RUN,
            session_id=SESSION,
            grid_id=uuid.uuid4(),
            grid_name="g1",
            has_next_grid=True,
            reprompt_reason=reprompt,
        )

    first = pause_prompt(ask(None))
    assert first is not None and "Grid g1 has no more targets" in first.text
    assert pause_prompt(ask("No targets are queued")) is None


def report(free: float) -> m.MicroscopeReported:
    volume = m.VolumeStatus(
        name="data", path="/data", total_bytes=1000, free_bytes=int(free * 1000)
    )
    return m.MicroscopeReported(microscope_id="k1", name="Krios", driver="sim", volumes=(volume,))


def test_disk_notices_fire_when_a_level_rises_not_on_every_report() -> None:
    disk = DiskLevels()
    disk.seed("k1", [report(0.10).volumes[0]])  # warning before this start: not told again
    assert disk.report(report(0.10)) == []
    [critical] = disk.report(report(0.01))
    assert critical.events == {"disk_warning", "disk_critical"} and critical.level == "critical"
    assert disk.report(report(0.01)) == []
    assert disk.report(report(0.50)) == []  # back to ok
    [warning] = disk.report(report(0.10))
    assert warning.events == {"disk_warning"} and "90% full" in warning.text


def test_more_than_n_failures_within_the_window_once_per_window() -> None:
    window = FailureWindow(n=2, minutes=10)

    def fail(minute: float) -> m.ImageFailed:
        return m.ImageFailed(
            run_id=RUN,
            image_id=uuid.uuid4(),
            path="/m.mrc",
            reason="truncated",
            sent_at=T0 + timedelta(minutes=minute),
        )

    assert window.failed(fail(0)) is None and window.failed(fail(1)) is None
    told = window.failed(fail(2))
    assert told is not None and "3 exposures failed" in told.text
    assert window.failed(fail(3)) is None  # the same window
    assert window.failed(fail(30)) is None  # alone in a new window
    assert window.failed(fail(31)) is None
    assert window.failed(fail(32)) is not None


def test_labels_say_this_deployments_thresholds() -> None:
    labels = event_labels(NotifySettings(failures_n=3, failures_minutes=5, silent_s=90))
    assert (
        "more than 3" in labels["processing_failures"] and "5 min" in labels["processing_failures"]
    )
    assert "90 s" in labels["run_silent"]


def test_one_message_per_burst_lists_each_notice_and_links_the_page() -> None:
    notices = [
        run_ended(ended(ExitReason.LOST)),
        *[run_ended(ended(ExitReason.STOPPED)) for _ in range(MAX_LISTED + 2)],
    ]
    message = compose([n for n in notices if n is not None], "https://gp.example.org/")
    assert message.title.startswith(f"Gridpilot: {MAX_LISTED + 3} notices")
    assert message.level == "critical"
    assert f"https://gp.example.org/sessions/{SESSION}" in message.body
    assert message.body.endswith("… and 3 more.")


def test_urls_are_sealed_masked_and_checked() -> None:
    box = UrlBox("one secret")
    url = "jsons://user:hunter22@hooks.example.org/T0KEN1234567890/x"
    sealed = box.seal(url)
    assert "hunter22" not in sealed and box.open(sealed) == url
    with pytest.raises(Unreadable, match="GRIDPILOT_SECRET_KEY"):
        UrlBox("another secret").open(sealed)
    checked = check(url)
    assert checked.service == "JSON"
    assert "hunter22" not in checked.masked and "T0KEN1234567890" not in checked.masked
    assert checked.masked.startswith("jsons://user:****@hooks.example.org/")
    mail = check("mailto://smtp.example.org?to=alice@example.org&from=gp@example.org")
    assert mail.service == "E-Mail" and "alice@example.org" in mail.masked
    with pytest.raises(ValueError, match="not a URL"):
        check("alice@example.org")
    with pytest.raises(ValueError, match="control character"):
        check("json://host/a\x00b")
    with pytest.raises(ValueError, match="apprise cannot use this nosuch:// URL"):
        check("nosuch://x")
    assert mask("slack://T1/B2/verylongtoken?footer=no") == "slack://T1/B2/v…n"


def test_a_url_apprise_cannot_parse_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    hide_unparsed_urls()
    with caplog.at_level(logging.DEBUG, logger="apprise"), pytest.raises(ValueError):
        check("mailto:/alice:hunter22@smtp.example.org")
    assert "Unsupported URL" in caplog.text and "hunter22" not in caplog.text


async def test_silent_and_stalled_runs_are_told_once_until_heard_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    async with sessions() as db:
        db.add(Microscope(id="k1", name="Krios"))
        db.add(Session(id=SESSION, name="s", microscope_id="k1", created_by="t"))
        await db.flush()
        db.add_all(
            [
                Run(
                    id=RUN,
                    session_id=SESSION,
                    microscope_id="k1",
                    number=1,
                    state="running",
                    requested_by="t",
                    started_at=now - timedelta(hours=2),
                    heartbeat_at=now - timedelta(seconds=1),
                ),
                hung := Run(
                    id=uuid.uuid4(),
                    session_id=SESSION,
                    microscope_id="k1",
                    number=2,
                    state="awaiting_decision",
                    requested_by="t",
                    started_at=now - timedelta(hours=1),
                    heartbeat_at=now - timedelta(seconds=120),
                ),
            ]
        )
        await db.commit()
        watch = SilenceWatch(silent_s=60, stalled_s=1800, started=now - timedelta(hours=3))
        told = {n.run_id: n for n in await watch.check(db, now)}
        assert "no progress" in told[RUN].text and "No heartbeat" in told[hung.id].text
        assert await watch.check(db, now) == []  # once
        watch.heard(
            m.ExposureAcquired(
                run_id=RUN,
                grid_id=uuid.uuid4(),
                hole_id=uuid.uuid4(),
                exposure_id=uuid.uuid4(),
                movie=m.ImageRef(path="/x", pixel_size_a=1, shape=(1, 1)),
                n_frames=2,
                dose_e_per_a2=1,
                sent_at=now,
            )
        )
        assert [n.run_id for n in await watch.check(db, now)] == []  # moving again
        assert [n.run_id for n in await watch.check(db, now + timedelta(hours=1))] == [RUN]


async def test_who_hears_a_notice(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A session's notice: its subscribers and its microscope's; a disk notice: the
    microscope's subscribers and those of the sessions live on it now; only for the events
    they chose; each destination once."""
    from session_api.db.models import NotifyDestination, NotifySubscription, User
    from session_api.notify.notices import Notice
    from session_api.notify.service import _destinations_for

    live, idle = uuid.uuid4(), uuid.uuid4()
    async with sessions() as db:
        db.add_all([Microscope(id="k1", name="Krios"), Microscope(id="k2", name="Glacios")])
        users = {n: User(username=n, role="viewer", password_hash="x") for n in "abcd"}
        db.add_all(users.values())
        await db.flush()
        db.add_all(
            [
                Session(
                    id=live,
                    name="live",
                    microscope_id="k1",
                    created_by="t",
                    live_run_id=uuid.uuid4(),
                ),
                Session(id=idle, name="idle", microscope_id="k1", created_by="t"),
            ]
        )
        await db.flush()
        dest = {}
        for n, u in users.items():
            dest[n] = NotifyDestination(
                user_id=u.id, label=n, service="JSON", url_box="x", url_masked="x"
            )
            db.add(dest[n])

        def sub(
            user: str, events: list[str], session: uuid.UUID | None = None, scope: str = "k1"
        ) -> NotifySubscription:
            return NotifySubscription(
                user_id=users[user].id, session_id=session, microscope_id=scope, events=events
            )

        db.add_all(
            [
                sub("a", ["pause_prompt", "disk_critical"], session=live),
                sub("a", ["pause_prompt"]),  # the same user twice: one destination, once
                sub("b", ["disk_warning"], session=idle),
                sub("c", ["disk_warning", "run_ended"]),
                sub("d", ["pause_prompt"], scope="k2"),
            ]
        )
        await db.commit()
        ids = {d.id: n for n, d in dest.items()}

        def notice(events: set[str], session: uuid.UUID | None) -> Notice:
            return Notice(
                frozenset(events),
                "t",
                "x",
                T0,
                microscope_id="k1",  # type: ignore[arg-type]
                session_id=session,
            )

        async def who(n: Notice) -> list[str]:
            return sorted(ids[i] for i in await _destinations_for(db, n))

        assert await who(notice({"pause_prompt"}, live)) == ["a"]
        assert await who(notice({"pause_prompt"}, idle)) == ["a"]  # a's microscope subscription
        assert await who(notice({"run_ended"}, idle)) == ["c"]
        assert await who(notice({"disk_warning", "disk_critical"}, None)) == ["a", "c"]
        assert await who(notice({"disk_warning"}, None)) == ["c"]  # b's session is not live
