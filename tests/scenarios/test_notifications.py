"""Notifications end to end: a real SMTP server (aiosmtpd) and a real HTTP webhook receive
what apprise sends when a run needs people; coalescing, rate limit and failures, on both
buses and both databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from proto import messages as m
from support.receivers import MailInbox, Webhook, basic, mail_inbox, webhook
from support.system import System

BASE = "http://gridpilot.example.org"
FAST = pytest.mark.notify(coalesce_s=0.2, min_interval_s=0, retries=0, base_url=BASE)


@pytest.fixture
async def mail() -> AsyncIterator[MailInbox]:
    async with mail_inbox() as inbox:
        yield inbox


@pytest.fixture
async def hook() -> AsyncIterator[Webhook]:
    async with webhook() as receiver:
        yield receiver


async def add_destination(system: System, who: str, label: str, url: str) -> dict[str, object]:
    r = await system.clients[who].post(
        "/api/notifications/destinations", json={"label": label, "url": url}
    )
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


async def subscribe(system: System, who: str, events: list[str], **scope: str) -> None:
    r = await system.clients[who].post(
        "/api/notifications/subscriptions", json={"events": events, **scope}
    )
    assert r.status_code == 200, r.text


@FAST
async def test_pause_prompt_sends_an_email_and_a_webhook(
    system: System, mail: MailInbox, hook: Webhook
) -> None:
    """A viewer subscribes to a session; when its pause prompt appears, an e-mail arrives at
    the SMTP server and a JSON post at the webhook, both naming the session and the grid and
    linking to the page. The stored URL is never shown back (its password is masked)."""
    await add_destination(system, "viewer", "my mail", mail.url("viewer@example.org"))
    secret_url = hook.url(auth="gridpilot:s3cret-token@")
    shown = await add_destination(system, "viewer", "lab hook", secret_url)
    assert "s3cret-token" not in str(shown) and "gridpilot:****@" in str(shown["url_masked"])
    session = await system.session("notify", grids=2, pause=True)
    sid = session["id"]
    await subscribe(system, "viewer", ["pause_prompt", "run_ended"], session_id=sid)

    run_id = await system.start(sid)
    await system.wait_for(m.DecisionRequested, lambda e: e.run_id == run_id, timeout=60)
    [letter] = await mail.wait_mail(1)
    assert letter.to == ["viewer@example.org"]
    assert "Pause prompt waiting" in letter.subject and "session notify" in letter.subject
    assert "Grid notify-g1 has no more targets" in letter.text
    assert f"{BASE}/sessions/{sid}" in letter.text
    [post] = await hook.wait_posts(1)
    assert post.authorization == basic("gridpilot", "s3cret-token")  # decrypted whole
    assert post.body["type"] == "warning" and "Pause prompt waiting" in post.body["title"]
    assert "notify-g1" in post.body["message"]

    await system.api.state.notifier.idle()  # the attempts are recorded once apprise returns
    mine = (await system.clients["viewer"].get("/api/notifications")).json()
    assert "s3cret-token" not in str(mine)
    status = {d["label"]: d for d in mine["destinations"]}
    for label in ("my mail", "lab hook"):
        assert status[label]["sent"] == 1 and status[label]["last_ok_at"]
        assert status[label]["last_error"] is None and status[label]["failed"] == 0

    await system.clients["operator"].post(f"/api/sessions/{sid}/stop")
    assert (await system.ended(run_id)).exit_reason == "stopped"
    [_, ended] = await mail.wait_mail(2)
    assert "Run ended: stopped" in ended.subject


@pytest.mark.parametrize("system", [("memory", "sqlite")], indirect=True, ids=["memory-sqlite"])
@pytest.mark.notify(coalesce_s=0.3, min_interval_s=3, retries=0, timeout_s=60)
async def test_a_burst_is_one_message_and_messages_are_rate_limited(
    system: System, hook: Webhook
) -> None:
    """While a message is on its way (the receiver holds it open), what happens next waits;
    the notices of that burst go as one message, and no sooner than ``min_interval_s`` after
    the one before."""
    dest = await add_destination(system, "operator", "hook", hook.url() + "?rto=60")
    await subscribe(
        system, "operator", ["pause_prompt", "lease_lost", "run_ended"], microscope_id="krios-1"
    )
    session = await system.session("burst", grids=2, pause=True)
    hook.gate.clear()
    run_id = await system.start(session["id"])
    [first] = await hook.wait_posts(1, timeout=60)  # held open
    assert "Pause prompt waiting" in first.body["title"]

    r = await system.clients["staff"].post("/api/microscopes/krios-1/lease/release")
    assert r.status_code == 200, r.text
    assert (await system.ended(run_id)).exit_reason == "lost"
    await system.wait_for(m.LeaseLost, lambda e: e.holder.run_id == run_id)
    await system.api.state.notifier.queue.join()  # every projected event is routed
    mine = (await system.clients["operator"].get("/api/notifications")).json()
    assert [d["pending"] for d in mine["destinations"] if d["id"] == dest["id"]] == [2]

    hook.gate.set()
    [_, second] = await hook.wait_posts(2)
    await system.api.state.notifier.idle()
    # min_interval_s counts from when the first message was handed to apprise, a few ms
    # before the receiver saw it (the exact rule is tested in tests/unit/session_api)
    assert second.at - first.at >= 3.0 - 0.5, "rate limit: one message per min_interval_s"
    assert second.body["title"].startswith("Gridpilot: 2 notices")
    text = second.body["message"]
    assert "Lease lost" in text and "Run ended: lost" in text
    assert second.body["type"] == "failure"  # the worst of the burst: lease lost is critical
    mine = (await system.clients["operator"].get("/api/notifications")).json()
    [status] = [d for d in mine["destinations"] if d["id"] == dest["id"]]
    assert status["sent"] == 2 and status["pending"] == 0


@pytest.mark.parametrize("system", [("memory", "sqlite")], indirect=True, ids=["memory-sqlite"])
@FAST
async def test_a_failing_destination_shows_why_and_send_test_reports_it(
    system: System, hook: Webhook
) -> None:
    hook.fail = True
    dest = await add_destination(system, "viewer", "broken hook", hook.url("down"))
    await subscribe(system, "viewer", ["run_ended"], microscope_id="krios-2")
    session = await system.session("fails", microscope="krios-2", grids=1)
    run_id = await system.start(session["id"])
    await system.clients["operator"].post(f"/api/sessions/{session['id']}/stop")
    await system.ended(run_id)
    await hook.wait_posts(1)
    status = await _status(system, "viewer", dest["id"])
    assert status["failed"] == 1 and "500" in str(status["last_error"])
    assert status["sent"] == 0 and status["dropped"] == 1  # retries=0: given up at once

    r = await system.clients["viewer"].post(f"/api/notifications/destinations/{dest['id']}/test")
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["ok"] is False and "500" in result["error"]
    assert result["destination"]["failed"] == 2
    again = await system.clients["viewer"].post(
        f"/api/notifications/destinations/{dest['id']}/test"
    )
    assert again.status_code == 429 and "wait" in again.json()["detail"]
    audit = (await system.clients["staff"].get("/api/audit")).json()
    tests = [(a["outcome"], a["username"]) for a in audit if a["action"] == "notify-test"]
    assert sorted(tests) == [("failed", "viewer"), ("refused 429", "viewer")]


async def _status(system: System, who: str, dest_id: object) -> dict[str, object]:
    """The destination's status once nothing is on its way to it (the sender records an
    attempt when apprise returns, a moment after the receiver saw it)."""
    await system.api.state.notifier.idle()
    mine = (await system.clients[who].get("/api/notifications")).json()
    [status] = [d for d in mine["destinations"] if d["id"] == dest_id]
    return dict(status)


@pytest.mark.parametrize("system", [("memory", "sqlite")], indirect=True, ids=["memory-sqlite"])
async def test_own_destinations_only_clear_errors_and_audit(system: System) -> None:
    """Nobody reaches another user's destinations (404, as if none); bad input is a 422
    naming the field; every change is audited with the URL masked; staff see every
    destination's status, masked too."""
    secret = "json://bot:p4ssw0rd-xyz@127.0.0.1:9/hook"
    mine = await add_destination(system, "viewer", "mine", secret)
    for who in ("operator", "staff"):
        c = system.clients[who]
        assert (await c.delete(f"/api/notifications/destinations/{mine['id']}")).status_code == 404
        r = await c.post(f"/api/notifications/destinations/{mine['id']}/test")
        assert r.status_code == 404

    viewer = system.clients["viewer"]
    r = await viewer.post("/api/notifications/destinations", json={"label": "x", "url": "nope"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "url"]
    r = await viewer.post("/api/notifications/destinations", json={"label": "", "url": secret})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "label"]
    sub = "/api/notifications/subscriptions"
    r = await viewer.post(sub, json={"events": ["run_ended"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "session_id"]
    r = await viewer.post(sub, json={"microscope_id": "krios-1", "events": ["soon"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "events"]
    r = await viewer.post(sub, json={"session_id": str(uuid.uuid4()), "events": ["run_ended"]})
    assert r.status_code == 422 and "no session" in r.json()["detail"][0]["msg"]
    r = await viewer.post(sub, json={"microscope_id": "nope", "events": ["run_ended"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "microscope_id"]

    await subscribe(system, "viewer", ["run_ended"], microscope_id="krios-1")
    await subscribe(system, "viewer", ["disk_critical", "run_ended"], microscope_id="krios-1")
    listed = (await viewer.get("/api/notifications")).json()
    [only] = listed["subscriptions"]  # the same scope again replaced the events
    assert only["events"] == ["run_ended", "disk_critical"]
    assert only["microscope_name"] == "Krios 1" and only["session_id"] is None
    r = await system.clients["operator"].delete(f"{sub}/{only['id']}")
    assert r.status_code == 404
    assert (await viewer.delete(f"{sub}/{only['id']}")).status_code == 204

    everyone = (await system.clients["staff"].get("/api/notifications/deliveries")).json()
    assert [(d["owner"], d["label"]) for d in everyone] == [("viewer", "mine")]
    assert "p4ssw0rd" not in str(everyone)
    assert (await viewer.delete(f"/api/notifications/destinations/{mine['id']}")).status_code == 204

    audit = (await system.clients["staff"].get("/api/audit")).json()
    assert "p4ssw0rd" not in str(audit)
    done = sorted(
        (a["username"], a["action"], a["outcome"])
        for a in audit
        if a["action"].startswith("notify")
    )
    assert ("viewer", "notify-destination-add", "ok") in done
    assert ("viewer", "notify-destination-add", "refused 422") in done
    assert ("viewer", "notify-destination-remove", "ok") in done
    assert ("operator", "notify-destination-remove", "refused 404") in done
    assert ("viewer", "notify-subscribe", "ok") in done
    assert ("viewer", "notify-unsubscribe", "ok") in done
    assert ("staff", "notify-test", "refused 404") in done


@pytest.mark.parametrize("system", [("memory", "sqlite")], indirect=True, ids=["memory-sqlite"])
@pytest.mark.faults(truncate_every=1)
@pytest.mark.notify(coalesce_s=0.2, min_interval_s=0, retries=0, failures_n=1)
async def test_processing_failures_more_than_n_are_told(system: System, hook: Webhook) -> None:
    await add_destination(system, "operator", "hook", hook.url())
    session = await system.session("corrupt", grids=1)
    await subscribe(system, "operator", ["processing_failures"], session_id=session["id"])
    run_id = await system.start(session["id"])
    [post] = await hook.wait_posts(1, timeout=60)
    assert "Processing failures" in post.body["title"]
    assert "2 exposures failed processing within 10 min" in post.body["message"]
    assert "bytes in data block" in post.body["message"]  # the latest reason
    await system.clients["operator"].post(f"/api/sessions/{session['id']}/stop")
    await system.ended(run_id)


@pytest.mark.parametrize("system", [("memory", "sqlite")], indirect=True, ids=["memory-sqlite"])
@pytest.mark.faults(slow_file_s=3)
@pytest.mark.notify(coalesce_s=0.2, min_interval_s=0, retries=0, stalled_s=1, watch_interval_s=0.2)
async def test_a_run_that_makes_no_progress_is_told_silent(system: System, hook: Webhook) -> None:
    """Each movie takes 3 s to write here: a running run with nothing new for more than
    ``stalled_s`` (1 s) is told (once until it moves again: tests/unit/session_api)."""
    await add_destination(system, "viewer", "hook", hook.url())
    session = await system.session("stalls", grids=1)
    await subscribe(system, "viewer", ["run_silent"], session_id=session["id"])
    run_id = await system.start(session["id"])
    [post] = await hook.wait_posts(1, timeout=60)
    assert "Run silent" in post.body["title"] and "no progress" in post.body["message"]
    await system.clients["operator"].post(f"/api/sessions/{session['id']}/stop")
    await system.ended(run_id)
