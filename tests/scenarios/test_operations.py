"""Operations through session-api: queues, worker heartbeats, dead letters replayed and
discarded (audited), on every bus and database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from proto import messages as m
from proto.topology import PROCESSING_IMAGES
from support.system import PASSWORD, System


@pytest.mark.faults(truncate_every=1)
async def test_staff_sees_queues_workers_and_operates_dead_letters(system: System) -> None:
    session = await system.session("ops", grids=1)
    run_id = await system.start(session["id"])
    failed = await system.wait_for(m.ImageFailed, lambda e: e.run_id == run_id, timeout=60)
    run = (await system.clients["viewer"].get(f"/api/runs/{run_id}")).json()
    assert run["exposures_failed"] >= 1 and run["exposures"] >= run["exposures_failed"]
    scopes = (await system.clients["viewer"].get("/api/microscopes")).json()
    alerts = next(s["alerts"] for s in scopes if s["id"] == "krios-1")
    assert any(a.startswith("processing failed on ") for a in alerts), alerts
    await system.clients["operator"].post(f"/api/sessions/{session['id']}/stop")
    await system.ended(run_id)
    beat = system.mark()
    fresh = await system.wait_for(
        m.WorkerHeartbeat, lambda e: e.service == "processing", after=beat
    )
    await system.wait_for(  # session-api counts what it projected
        m.WorkerHeartbeat, lambda e: e.service == "session-api" and e.handled > 0, after=beat
    )
    staff = system.clients["staff"]

    ops = (await staff.get("/api/ops")).json()
    assert ops["broker_error"] is None
    queues = {q["queue"]: q for q in ops["queues"]}
    assert set(queues) == {
        "acquisition.commands",
        "processing.finders",
        "processing.images",
        "session-api.events",
        "session-api.logs",
    }
    assert queues["processing.images"]["consumers"] >= 1
    assert queues["processing.images"]["dead_letters"] >= 1
    workers = {w["service"]: w for w in ops["workers"]}
    assert {"acquisition", "processing", "session-api"} <= set(workers)
    assert workers["session-api"]["handled"] > 0
    assert datetime.fromisoformat(workers["processing"]["seen_at"]) >= fresh.sent_at
    letters = [x for x in ops["dead_letters"] if x["queue"] == "processing.images"]
    assert letters and all(x["reason"].startswith("CorruptImage") for x in letters)

    # replay the letter of the exposure we saw fail: the movie is still truncated, so it
    # fails again (logged again) and is back in the dead-letter queue
    body = {
        x.key: m.ExposureAcquired.model_validate_json(x.body)
        for x in await system.bus.dead_letters(PROCESSING_IMAGES)
    }
    key = next(k for k, e in body.items() if e.exposure_id == failed.image_id)
    mark = system.mark()
    r = await staff.post(f"/api/ops/dead-letters/processing.images/{key}/replay")
    assert r.status_code == 200, r.text
    assert r.json() == {"queue": "processing.images", "action": "replayed", "count": 1, "key": key}
    movie = Path(body[key].movie.path).name
    await system.wait_for(
        m.LogRecorded, lambda r: r.level == "error" and movie in r.text, after=mark, timeout=60
    )
    again = (await staff.get("/api/ops/dead-letters", params={"queue": "processing.images"})).json()
    assert key in {x["key"] for x in again}

    r = await staff.post(f"/api/ops/dead-letters/processing.images/{key}/discard")
    assert r.status_code == 200 and r.json()["action"] == "discarded"
    left = (await staff.get("/api/ops/dead-letters", params={"queue": "processing.images"})).json()
    assert key not in {x["key"] for x in left}
    assert len(left) == len(letters) - 1

    r = await staff.post(f"/api/ops/dead-letters/processing.images/{key}/discard")
    assert r.status_code == 404 and "discarded already" in r.json()["detail"]
    r = await staff.post("/api/ops/dead-letters/no.such.queue/purge")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "queue"]
    r = await staff.post("/api/ops/dead-letters/processing.images/purge")
    assert r.json() == {
        "queue": "processing.images",
        "action": "purged",
        "count": len(left),
        "key": None,
    }
    assert (await staff.get("/api/ops")).json()["dead_letters"] == []

    audit = (await staff.get("/api/audit")).json()
    done = {(a["action"], a["outcome"], a["target"]) for a in audit if a["username"] == "staff"}
    assert ("dlq-replay", "ok", f"processing.images/{key}") in done
    assert ("dlq-discard", "ok", f"processing.images/{key}") in done
    assert ("dlq-discard", "refused 404", f"processing.images/{key}") in done
    assert ("dlq-purge", "ok", "processing.images") in done


@pytest.mark.parametrize("system", [("memory", "sqlite")], indirect=True, ids=["memory-sqlite"])
async def test_a_worker_that_stopped_beating_is_stale(system: System) -> None:
    """Three missed intervals make a worker stale; a day without a beat forgets it."""
    now = datetime.now(UTC)

    def beat(instance: str, age: timedelta) -> m.WorkerHeartbeat:
        return m.WorkerHeartbeat(
            service="processing",
            instance=instance,
            host="node-7",
            pid=41,
            started_at=now - timedelta(days=3),
            interval_s=10,
            handled=12,
            sent_at=now - age,
        )

    for instance, age in (("hung", timedelta(seconds=31)), ("gone", timedelta(days=2))):
        await system.api.state.projector.event(beat(instance, age))
    await system.api.state.projector.event(beat("fine", timedelta(seconds=2)))
    workers = {
        w["instance"]: w for w in (await system.clients["staff"].get("/api/ops")).json()["workers"]
    }
    assert workers["hung"]["stale"] and workers["hung"]["age_s"] >= 31
    assert not workers["fine"]["stale"] and workers["fine"]["handled"] == 12
    assert "gone" not in workers


@pytest.mark.parametrize("system", [("memory", "sqlite")], indirect=True, ids=["memory-sqlite"])
async def test_gridpilot_dlq_lists_replays_discards_and_purges(system: System) -> None:
    import argparse
    import io

    from gridpilot import dlq
    from proto.topology import EVENTS, SESSION_API_EVENTS

    parser = argparse.ArgumentParser()
    dlq.add_parser(parser.add_subparsers(dest="command"))

    async def cli(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = await dlq.run(parser.parse_args(["dlq", *argv]), client, out)
        return code, out.getvalue()

    client = system.clients["anonymous"]
    await dlq.login(client, "staff", PASSWORD)
    await system.bus.publish_raw(
        EVENTS, "exposure.acquired", b"{not json", type="exposure.acquired"
    )
    await system.bus.drain()  # type: ignore[attr-defined]
    (images,) = await system.bus.dead_letters(PROCESSING_IMAGES)
    (events,) = await system.bus.dead_letters(SESSION_API_EVENTS)

    code, text = await cli("list")
    assert code == 0 and images.key in text and "not JSON" in text
    assert "processing.images" in text and "session-api.events" in text
    code, text = await cli("list", "--queue", "session-api.events", "--json")
    assert [x["key"] for x in json.loads(text)] == [events.key]

    code, text = await cli("replay", "processing.images", images.key)
    assert (code, text) == (0, f"{images.key}: replayed\n")
    await system.bus.drain()  # type: ignore[attr-defined]
    assert len(await system.bus.dead_letters(PROCESSING_IMAGES)) == 1  # still malformed

    code, text = await cli("discard", "processing.images", "no-such-key")
    assert code == 1 and "no dead letter no-such-key" in text
    code, text = await cli("discard", "session-api.events", "--all")
    assert (code, text) == (0, f"{events.key}: discarded\n")
    code, text = await cli("purge", "processing.images", "--yes")
    assert (code, text) == (0, "purged 1 letters from dlq.processing.images\n")
    assert (await cli("list")) == (0, "no dead letters\n")

    audit = (await system.clients["staff"].get("/api/audit")).json()
    assert {"dlq-replay", "dlq-discard", "dlq-purge"} <= {a["action"] for a in audit}
    operator = system.clients["operator"]
    r = await operator.post("/api/ops/dead-letters/processing.images/purge")
    assert r.status_code == 403
