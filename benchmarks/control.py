"""Run control latency: request → state event projected by session-api (start, stop, pause,
decision), on RabbitMQ (runs as child processes) and, for comparison, on the memory bus.

Run ``uv run --frozen python benchmarks/control.py [--n N] [--quick] [--bus amqp,memory]``;
prints a table and writes ``benchmarks/results/control.json``. See ``benchmarks/README.md``
(section *control*) for what each row measures.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# benchmarks/ goes last on sys.path: its processing.py must not shadow the processing service
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.append(str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.fix_sys_path()

from proto import messages as m  # noqa: E402
from proto.bus.memory import MemoryBus  # noqa: E402
from proto.lease.memory import MemoryLeases  # noqa: E402
from proto.settings import AmqpSettings  # noqa: E402
from proto.states import RunState  # noqa: E402
from support.system import System, running_system  # noqa: E402

TARGET_MS = 150.0
GRIDS_MAX = 12  # SessionCreate allows at most 12 grids
SLOW_FILE_S = 0.2  # krios-1 writes files slowly, so a started run is still running when stopped
BUDGET_S = 900  # per bus: the whole measurement is abandoned after this long

log = logging.getLogger("bench.control")
Raw = dict[str, list[float]]


class Stamps:
    """When (perf_counter) session-api's projector finished each event, by message id.

    A projector listener runs right after the event's transaction committed and after
    session-api published ``StateProjected`` for it (the ui's cue to re-render the page)."""

    def __init__(self) -> None:
        self.at: dict[uuid.UUID, float] = {}

    async def __call__(self, message: m.Message) -> None:
        self.at.setdefault(message.message_id, time.perf_counter())

    def ms(self, message: m.Message, t0: float) -> float:
        return (self.at[message.message_id] - t0) * 1000


def is_state(run_id: uuid.UUID, state: RunState) -> Callable[[m.RunStateChanged], bool]:
    return lambda e: e.run_id == run_id and e.state == state


def of_run(run_id: uuid.UUID) -> Callable[[m.Message], bool]:
    return lambda e: e.run_id == run_id


def reprompt_of(run_id: uuid.UUID) -> Callable[[m.DecisionRequested], bool]:
    return lambda e: e.run_id == run_id and e.reprompt_reason is not None


def pause_of(run_id: uuid.UUID, enabled: bool) -> Callable[[m.PauseBetweenGridsChanged], bool]:
    return lambda e: e.run_id == run_id and e.enabled == enabled


async def settle(system: System, sid: str, run_id: uuid.UUID | None) -> None:
    """Make sure ``run_id`` has ended (stop, then force-kill), so nothing is left running."""
    if run_id is None:
        return
    run = (await system.clients["viewer"].get(f"/api/runs/{run_id}")).json()
    if run.get("state") == "ended":
        return
    await system.clients["operator"].post(f"/api/sessions/{sid}/stop")
    try:
        await system.ended(run_id, timeout=30)
    except TimeoutError:
        log.warning("run %s did not stop in 30 s; force-killing it", run_id)
        await system.clients["staff"].post(f"/api/sessions/{sid}/kill")
        await system.ended(run_id, timeout=30)


async def start_stop_pause(system: System, stamps: Stamps, n: int, raw: Raw) -> None:
    """n runs on krios-1: start, pause on, pause off, stop; each run ends before the next."""
    op = system.clients["operator"]
    sid = (await system.session("bench-control", microscope="krios-1", grids=3))["id"]
    run_id: uuid.UUID | None = None
    try:
        for _ in range(n):
            mark = system.mark()
            t0 = time.perf_counter()
            r = await op.post(f"/api/sessions/{sid}/start")
            t_ack = time.perf_counter()
            assert r.status_code == 202, r.text
            run_id = uuid.UUID(r.json()["run_id"])
            starting = await system.wait_for(
                m.RunStateChanged, is_state(run_id, RunState.STARTING), after=mark, timeout=60
            )
            running = await system.wait_for(
                m.RunStateChanged, is_state(run_id, RunState.RUNNING), after=mark, timeout=60
            )
            raw["start → 202 (run row `starting`)"].append((t_ack - t0) * 1000)
            raw["start → `starting` event"].append(stamps.ms(starting, t0))
            raw["start → `running` event"].append(stamps.ms(running, t0))

            for enabled in (True, False):
                mark = system.mark()
                t0 = time.perf_counter()
                r = await op.put(
                    f"/api/sessions/{sid}/pause-between-grids", json={"enabled": enabled}
                )
                t_http = time.perf_counter()
                assert r.status_code == 200, r.text
                changed = await system.wait_for(
                    m.PauseBetweenGridsChanged,
                    pause_of(run_id, enabled),
                    after=mark,
                )
                raw["pause toggle → PauseBetweenGridsChanged"].append(stamps.ms(changed, t0))
                raw["http: PUT pause-between-grids"].append((t_http - t0) * 1000)

            mark = system.mark()
            t0 = time.perf_counter()
            r = await op.post(f"/api/sessions/{sid}/stop")
            t_http = time.perf_counter()
            assert r.status_code == 202, r.text
            stopping = await system.wait_for(
                m.RunStateChanged, is_state(run_id, RunState.STOPPING), after=mark
            )
            ended = await system.ended(run_id, timeout=60)
            assert ended.exit_reason == "stopped", ended
            raw["stop → `stopping` event"].append(stamps.ms(stopping, t0))
            raw["http: POST stop"].append((t_http - t0) * 1000)
            raw["stop → `ended` event (soft stop)"].append(stamps.ms(ended, t0))
    finally:
        await settle(system, sid, run_id)


async def processing_idle(system: System, run_id: uuid.UUID, timeout: float = 20) -> None:
    """Wait until every exposure of ``run_id`` acquired so far has been processed (or failed).

    Gives up after ``timeout`` with a warning: an exposure whose processing message was
    dead-lettered never gets a result event, so "idle" cannot be told from the events."""
    try:
        await _processing_idle(system, run_id, timeout)
    except TimeoutError:
        log.warning("run %s: an exposure has no processing result after %s s", run_id, timeout)


async def _processing_idle(system: System, run_id: uuid.UUID, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            seen = system.mark()
            events = system.projected[:seen]
            acquired = {
                e.exposure_id
                for e in events
                if isinstance(e, m.ExposureAcquired) and e.run_id == run_id
            }
            done = {
                e.exposure_id
                for e in events
                if isinstance(e, m.ExposureProcessed) and e.run_id == run_id
            }
            done |= {
                e.image_id for e in events if isinstance(e, m.ImageFailed) and e.run_id == run_id
            }
            if acquired <= done:
                return
            await system.wait_for(
                m.Message,
                lambda e: isinstance(e, m.ExposureProcessed | m.ImageFailed) and e.run_id == run_id,
                after=seen,
                timeout=timeout,
            )


async def decisions(system: System, stamps: Stamps, n: int, raw: Raw) -> None:
    """Runs on krios-2 with pause between grids on: at each grid's prompt, one *continue*
    (nothing queued, so the run re-prompts at once) and then one *next grid* (→ running).

    Grids alternate: on even ones the decisions are sent as soon as the prompt is projected
    (processing still works on the grid's last movies, in this process, as in the demo); on
    odd ones only after processing has caught up (the control path alone)."""
    op = system.clients["operator"]
    sessions = math.ceil(n / GRIDS_MAX)
    taken = 0
    for k in range(sessions):
        grids = min(GRIDS_MAX, n - taken)
        sid = (await system.session(f"bench-decide-{k}", "krios-2", grids=grids, pause=True))["id"]
        mark = system.mark()
        run_id = await system.start(sid)
        try:
            for _ in range(grids):
                prompt = await system.wait_for(
                    m.DecisionRequested, of_run(run_id), after=mark, timeout=60
                )
                await system.wait_for(
                    m.RunStateChanged,
                    is_state(run_id, RunState.AWAITING_DECISION),
                    after=mark,
                    timeout=60,
                )
                assert prompt.reprompt_reason is None, prompt
                load = "busy" if taken % 2 == 0 else "idle"
                if load == "idle":
                    await processing_idle(system, run_id)

                mark = system.mark()
                t0 = time.perf_counter()
                r = await op.post(f"/api/sessions/{sid}/decision", json={"choice": "continue_grid"})
                t_http = time.perf_counter()
                assert r.status_code == 202, r.text
                took = await system.wait_for(m.DecisionTaken, of_run(run_id), after=mark)
                again = await system.wait_for(
                    m.DecisionRequested,
                    reprompt_of(run_id),
                    after=mark,
                )
                raw[f"decision → DecisionTaken ({load})"].append(stamps.ms(took, t0))
                raw[f"decision continue → re-prompt ({load})"].append(stamps.ms(again, t0))
                raw["http: POST decision"].append((t_http - t0) * 1000)

                mark = system.mark()
                t0 = time.perf_counter()
                r = await op.post(f"/api/sessions/{sid}/decision", json={"choice": "next_grid"})
                t_http = time.perf_counter()
                assert r.status_code == 202, r.text
                took = await system.wait_for(m.DecisionTaken, of_run(run_id), after=mark)
                running = await system.wait_for(
                    m.RunStateChanged, is_state(run_id, RunState.RUNNING), after=mark
                )
                raw[f"decision → DecisionTaken ({load})"].append(stamps.ms(took, t0))
                raw[f"decision next grid → `running` event ({load})"].append(stamps.ms(running, t0))
                raw["http: POST decision"].append((t_http - t0) * 1000)
                taken += 1
            ended = await system.ended(run_id, timeout=60)
            assert ended.exit_reason == "completed", ended
        finally:
            await settle(system, sid, run_id)


async def bench_bus(kind: str, n: int) -> Raw:
    raw: Raw = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix=f"gp-bench-{kind}-") as tmp:
        root = Path(tmp)
        url = f"sqlite+aiosqlite:///{root / 'gridpilot.db'}"
        if kind == "memory":
            bus: Any = MemoryBus()
            leases: Any = MemoryLeases()
            mode = "task"
        else:
            from proto.bus.amqp import AmqpBus
            from proto.lease.amqp import AmqpLeases

            ns = f"bench{uuid.uuid4().hex[:8]}"
            settings = AmqpSettings().model_copy(update={"namespace": ns})
            bus = AmqpBus(settings, service="bench", delete_on_exit=True)
            leases = AmqpLeases(settings)
            mode = "process"
        async with asyncio.timeout(BUDGET_S):
            async with running_system(
                bus, leases, root, url, mode=mode, slow_file_s=SLOW_FILE_S
            ) as system:
                stamps = Stamps()
                system.api.state.projector.listeners.append(stamps)
                t = time.perf_counter()
                await start_stop_pause(system, stamps, n, raw)
                log.info("%s: start/stop/pause done in %.1f s", kind, time.perf_counter() - t)
                t = time.perf_counter()
                await decisions(system, stamps, n, raw)
                log.info("%s: decisions done in %.1f s", kind, time.perf_counter() - t)
    return raw


ROWS: list[tuple[str, float | None]] = [
    ("start → 202 (run row `starting`)", TARGET_MS),
    ("start → `starting` event", None),
    ("start → `running` event", None),
    ("stop → `stopping` event", TARGET_MS),
    ("pause toggle → PauseBetweenGridsChanged", TARGET_MS),
    ("decision → DecisionTaken (busy)", TARGET_MS),
    ("decision → DecisionTaken (idle)", TARGET_MS),
    ("decision continue → re-prompt (busy)", TARGET_MS),
    ("decision continue → re-prompt (idle)", TARGET_MS),
    ("decision next grid → `running` event (busy)", TARGET_MS),
    ("decision next grid → `running` event (idle)", TARGET_MS),
    ("stop → `ended` event (soft stop)", None),
]


async def main() -> int:
    parser = common.base_parser(__doc__, default_n=30)
    parser.add_argument("--bus", default="amqp,memory", help="comma-separated: amqp, memory")
    args = parser.parse_args()
    n = args.n or (4 if args.quick else 30)
    system_log = common.redirect_stderr("control")
    common.quiet_logging(log)
    log.info("logs of the system under test (and its run processes) go to %s", system_log)
    raws: dict[str, Raw] = {}
    rows: list[common.Row] = []
    for kind in [k.strip() for k in args.bus.split(",") if k.strip()]:
        t = time.perf_counter()
        raws[kind] = await bench_bus(kind, n)
        log.info("%s bus measured in %.1f s", kind, time.perf_counter() - t)
        for name, target in ROWS:
            # the 150 ms target is for RabbitMQ; memory-bus rows are for comparison
            rows.append(
                common.row(f"[{kind}] {name}", raws[kind][name], target if kind == "amqp" else None)
            )
    common.print_table(f"control latency, n={n} per row (ms, perf_counter)", rows)
    http = {
        k: {name: v for name, v in r.items() if name.startswith("http:")} for k, r in raws.items()
    }
    for kind, parts in http.items():
        for name, values in parts.items():
            print(
                f"  [{kind}] {name}: p50 {common.percentile(values, 50):.1f} ms, "
                f"p95 {common.percentile(values, 95):.1f} ms"
            )
    path = common.write_json(
        "control",
        common.clean(rows),
        {k: dict(v) for k, v in raws.items()},
        {"n": n, "target_p95_ms": TARGET_MS, "slow_file_s": SLOW_FILE_S, "cpus": os.cpu_count()},
    )
    print(f"\nwrote {path}")
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    common.run_main(main, "control")
