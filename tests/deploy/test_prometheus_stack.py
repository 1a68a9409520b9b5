"""A real Prometheus scrapes `gridpilot up` while a simulated session runs, and every panel
query of every dashboard in deploy/grafana/dashboards returns data through its HTTP API.

The Prometheus config is deploy/prometheus/prometheus.yml with each job pointed at the
stack's loopback ports (same job names, paths, params and rule files; 2 s scrapes). The stack
runs on a unique `AMQP_NAMESPACE`, so the broker's queues are `<ns>.processing.images` and
so on: the scrape config keeps only this namespace's queues and strips the prefix from the
`queue` label (what a production broker, namespace empty, reports), so the dashboards' own
queue selectors run unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import yaml
from deploy_support import DEPLOY, iter_panels, require_tool

from support.broker import delete_namespace, require_rabbitmq

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(300)]

PROM = DEPLOY / "prometheus"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RABBITMQ_METRICS = "127.0.0.1:15692"
SCRAPE_S = 2
RANGE_S = 300  # the dashboards' time range: the last 5 minutes hold the whole test
# Grafana's $__rate_interval is max($__interval + scrape, 4 × scrape); a little more here so a
# scrape missed on a busy machine does not empty a rate.
GRAFANA_BUILTINS = {
    "__rate_interval": "20s",
    "__interval": f"{SCRAPE_S}s",
    "__interval_ms": str(SCRAPE_S * 1000),
    "__range": f"{RANGE_S}s",
    "__range_s": str(RANGE_S),
    "__range_ms": str(RANGE_S * 1000),
}
PASSWORD = "prometheus-stack-password"
SCOPE = {
    "id": "krios-prom",
    "name": "Krios (prometheus)",
    "speed": 2000,
    "atlas_px": 1024,
    "square_px": 768,
    "movie_px": 256,
    "frames": 4,
}
GRIDS = 8  # enough that the run is still exposing while the queries are checked


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(
    what: str,
    timeout: float,
    check: Callable[[], Awaitable[bool]],
    interval: float = 0.5,
    detail: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """Poll ``check`` (another process's HTTP state) until it is true; fail with ``detail``."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(interval)
    except TimeoutError:
        more = f":\n{await detail()}" if detail else ""
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{more}", pytrace=False)


# --- the stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    namespace: str
    ui: str
    api: str
    ports: dict[str, int]
    """job name → loopback port of the four services"""


async def _run(*args: str, env: dict[str, str], stdin: bytes = b"") -> None:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate(stdin)
    assert proc.returncode == 0, out.decode()


async def require_rabbitmq_metrics() -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            r = await client.get(f"http://{RABBITMQ_METRICS}/metrics")
        except httpx.HTTPError as exc:
            r = None
            error = repr(exc)
        if r is None or r.status_code != 200:
            pytest.fail(
                f"RabbitMQ's prometheus plugin does not answer on {RABBITMQ_METRICS} "
                f"({error if r is None else r.status_code}): run scripts/ensure-rabbitmq.sh",
                pytrace=False,
            )


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """`gridpilot up` on a fresh namespace, database and data folder; an operator exists."""
    require_rabbitmq()
    await require_rabbitmq_metrics()
    ns = f"prom{uuid4().hex[:8]}"
    ports = {job: free_port() for job in ("acquisition", "processing", "session-api", "ui")}
    env = {
        **os.environ,
        "AMQP_NAMESPACE": ns,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gp.db'}",
        "ACQUISITION_MICROSCOPES": json.dumps([SCOPE]),
        "ACQUISITION_SQUARES_PER_GRID": "1",
        "ACQUISITION_HOLES_PER_SQUARE": "3",
        "ACQUISITION_REPORT_INTERVAL_S": "1",
        "ACQUISITION_METRICS_PORT": str(ports["acquisition"]),
        "PROCESSING_METRICS_PORT": str(ports["processing"]),
    }
    gridpilot = str(Path(sys.executable).parent / "gridpilot")
    await _run(
        gridpilot, "users", "add", "operator", "--role", "operator",
        env=env, stdin=f"{PASSWORD}\n".encode(),
    )  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        gridpilot, "up", "--root", str(tmp_path),
        "--ui-port", str(ports["ui"]), "--api-port", str(ports["session-api"]),
        env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(90):
            while b"Gridpilot is up" not in await proc.stdout.readline():
                assert proc.returncode is None, "gridpilot up exited"
        yield Stack(
            ns,
            f"http://127.0.0.1:{ports['ui']}",
            f"http://127.0.0.1:{ports['session-api']}",
            ports,
        )
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(30):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        delete_namespace(ns)
        shutil.rmtree(tmp_path / "data", ignore_errors=True)  # the movies and images


# --- Prometheus ---------------------------------------------------------------------------------


def prometheus_config(stack: Stack, own_port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with every job pointed at this machine's stack."""
    deploy = yaml.safe_load((PROM / "prometheus.yml").read_text())
    targets = {job: f"127.0.0.1:{port}" for job, port in stack.ports.items()}
    targets |= {
        "rabbitmq": RABBITMQ_METRICS,
        "rabbitmq-detailed": RABBITMQ_METRICS,
        "prometheus": f"127.0.0.1:{own_port}",
    }
    ns = re.escape(stack.namespace)
    strip = {
        "source_labels": ["queue"],
        "regex": rf"{ns}\.(.+)",
        "target_label": "queue",
        "replacement": "$1",
    }
    jobs = []
    for job in deploy["scrape_configs"]:
        name = job["job_name"]
        assert name in targets, f"prometheus.yml job {name!r}: this test has no target for it"
        local = {k: v for k, v in job.items() if not k.endswith("_sd_configs")}
        local["static_configs"] = [{"targets": [targets.pop(name)]}]
        if name == "rabbitmq-detailed":
            # The broker is shared with other tests: only this stack's queues, named as a
            # production broker names them.
            keep = {"source_labels": ["queue"], "regex": rf"{ns}\..+", "action": "keep"}
            local["metric_relabel_configs"] = [keep, strip]
        elif name in stack.ports:
            local["metric_relabel_configs"] = [strip]  # no-op for unprefixed queue labels
        jobs.append(local)
    assert not targets, f"prometheus.yml lacks the jobs {sorted(targets)}"
    return {
        "global": {
            **deploy["global"],
            "scrape_interval": f"{SCRAPE_S}s",
            "scrape_timeout": f"{SCRAPE_S}s",
            "evaluation_interval": f"{SCRAPE_S}s",
        },
        "rule_files": [str(PROM / pattern) for pattern in deploy["rule_files"]],
        "scrape_configs": jobs,
    }


@pytest.fixture
def prometheus_binary() -> str:
    return require_tool("prometheus")


@pytest.fixture
async def prometheus(
    prometheus_binary: str, stack: Stack, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """Our own Prometheus server on a free loopback port (stopped by PID, its TSDB removed)."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(stack, port)))
    tsdb = tmp_path / "tsdb"
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            prometheus_binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=log_file,
            stderr=log_file,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def ready() -> bool:
                assert proc.returncode is None, f"prometheus exited:\n{log_path.read_text()}"
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get("/-/ready")).status_code == 200
                return False

            await until("prometheus to be ready", 30, ready)
            yield client
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        shutil.rmtree(tsdb, ignore_errors=True)


async def query(prom: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    r = await prom.get("/api/v1/query", params={"query": expr})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr}: {r.text}"
    result: list[dict[str, Any]] = body["data"]["result"]
    if body["data"]["resultType"] == "scalar":
        result = [{"metric": {}, "value": result}]
    return result


async def targets_up(prom: httpx.AsyncClient, jobs: set[str]) -> bool:
    up = {s["metric"]["job"]: s["value"][1] for s in await query(prom, "up")}
    return set(up) == jobs and all(v == "1" for v in up.values())


async def unhealthy_rules(prom: httpx.AsyncClient) -> list[str]:
    """Alert rules of deploy/prometheus/rules not loaded, not yet evaluated or failing."""
    expected = {
        (group["name"], rule.get("alert") or rule.get("record"))
        for f in sorted((PROM / "rules").glob("*.rules.yml"))
        for group in yaml.safe_load(f.read_text())["groups"]
        for rule in group["rules"]
    }
    groups = (await prom.get("/api/v1/rules")).json()["data"]["groups"]
    loaded = [(g["name"], r) for g in groups for r in g["rules"]]
    missing = expected - {(g, r["name"]) for g, r in loaded}
    return [f"{g} / {n}: not loaded" for g, n in sorted(missing)] + [
        f"{g} / {r['name']}: {r['health']} {r.get('lastError', '')}"
        for g, r in loaded
        if r["health"] != "ok"
    ]


async def describe_targets(prom: httpx.AsyncClient) -> str:
    body = (await prom.get("/api/v1/targets")).json()
    return "\n".join(
        f"  {t['labels']['job']} {t['scrapeUrl']}: {t['health']} {t['lastError']}"
        for t in body["data"]["activeTargets"]
    )


# --- the dashboards -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    where: str
    expr: str


def panel_queries(board: dict[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(f"{board['title']} / {panel['title']} / {target['refId']}", target["expr"])
        for panel in iter_panels(board["panels"])
        for target in panel.get("targets", [])
    ]


async def resolve_variables(
    prom: httpx.AsyncClient, board: dict[str, Any], preferred: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Each template variable's value (as Grafana would offer it), and what failed."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for var in board.get("templating", {}).get("list", []):
        where = f"{board['title']} / ${var['name']}"
        if var["type"] != "query":
            pytest.fail(f"{where}: variables of type {var['type']!r} are not handled here")
        q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"\s*label_values\((?:\s*(.+?)\s*,)?\s*(\w+)\s*\)\s*", q)
        assert m, f"{where}: only label_values(...) variables are handled, not {q!r}"
        metric, label = m.groups()
        params = {"match[]": metric} if metric else {}
        found = (await prom.get(f"/api/v1/label/{label}/values", params=params)).json()["data"]
        want = preferred.get(label)
        if not found or (want is not None and want not in found):
            problems.append(f"{where}: {q} offers {found}, expected {want or 'some value'}")
        else:
            values[var["name"]] = want or found[0]
    return values, problems


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Grafana's `$name`, `${name}`, `${name:format}` and `[[name]]`, built-ins included."""

    def value(m: re.Match[str]) -> str:
        name = next(g for g in m.groups() if g)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        assert name in variables, f"unknown Grafana variable ${name} in {expr!r}"
        return variables[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", value, expr)


async def no_data(prom: httpx.AsyncClient, expr: str) -> str | None:
    """Why a panel showing ``expr`` would be empty, or ``None`` when it has data.

    A query may answer NaN now (a quantile of a rate over a quiet window) and still be a
    fine panel: then some point over the dashboard's range must be a number, as Grafana
    draws it."""
    result = await query(prom, expr)
    if not result:
        return "no series"
    if any(not math.isnan(float(s["value"][1])) for s in result):
        return None
    now = time.time()
    r = await prom.get(
        "/api/v1/query_range",
        params={"query": expr, "start": now - RANGE_S, "end": now, "step": SCRAPE_S},
    )
    assert r.status_code == 200, f"{expr}: {r.text}"
    points = [v for s in r.json()["data"]["result"] for _, v in s["values"]]
    if any(not math.isnan(float(v)) for v in points):
        return None
    return f"only NaN over the last {RANGE_S} s"


async def empty_panels(
    prom: httpx.AsyncClient, boards: list[dict[str, Any]], preferred: dict[str, str]
) -> list[str]:
    empty: list[str] = []
    for board in boards:
        variables, problems = await resolve_variables(prom, board, preferred)
        empty += problems
        for q in panel_queries(board):
            if problems and re.search(r"\$|\[\[", q.expr):
                continue  # its variable is already reported
            expr = substitute(q.expr, variables)
            if why := await no_data(prom, expr):
                empty.append(f"{q.where}: {why}: {expr}")
    return empty


# --- the session --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def operator_client(api: str) -> AsyncIterator[httpx.AsyncClient]:
    """session-api with the operator's bearer token."""
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        r = await client.post(
            "/api/auth/token", json={"username": "operator", "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield client


@contextlib.asynccontextmanager
async def live_page(ui: str, session_id: str) -> AsyncIterator[None]:
    """An operator logged in to the ui with the session page's live stream open."""
    async with httpx.AsyncClient(base_url=ui, timeout=10) as client:
        r = await client.post("/login", data={"username": "operator", "password": PASSWORD})
        assert r.status_code == 303, r.text
        opened = asyncio.Event()

        async def follow() -> None:
            async with client.stream(
                "GET", f"/sessions/{session_id}/stream", timeout=None
            ) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    assert "gp-login" not in line, "the stream asks to log in again"
                    opened.set()

        task = asyncio.create_task(follow())
        waiter = asyncio.create_task(opened.wait())
        try:
            done, _ = await asyncio.wait(
                [task, waiter], timeout=30, return_when=asyncio.FIRST_COMPLETED
            )
            if task in done:
                task.result()  # raises what ended the stream
                pytest.fail("the session page's stream ended at once", pytrace=False)
            assert waiter in done, "the session page's stream did not open within 30 s"
            yield
        finally:
            for t in (task, waiter):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t


@contextlib.asynccontextmanager
async def running_session(client: httpx.AsyncClient) -> AsyncIterator[str]:
    """A started session on the simulated scope; soft-stopped and ended on the way out."""

    async def scope_reported() -> bool:
        return any(s["id"] == SCOPE["id"] for s in (await client.get("/api/microscopes")).json())

    await until("acquisition to report its microscope", 30, scope_reported)
    r = await client.post(
        "/api/sessions",
        json={
            "name": "prometheus stack",
            "microscope_id": SCOPE["id"],
            "grids": [f"g{i}" for i in range(1, GRIDS + 1)],
        },
    )
    assert r.status_code == 201, r.text
    sid: str = r.json()["id"]
    r = await client.post(f"/api/sessions/{sid}/start")
    assert r.status_code == 202, r.text

    async def run_state() -> str:
        run = (await client.get(f"/api/sessions/{sid}")).json()["run"]
        return str(run["state"]) if run else ""

    try:
        yield sid
    finally:
        if await run_state() != "ended":
            await client.post(f"/api/sessions/{sid}/stop")

        async def ended() -> bool:
            return await run_state() == "ended"

        await until("the run to end", 60, ended)


# --- the test -----------------------------------------------------------------------------------


async def test_every_dashboard_panel_returns_data(
    prometheus: httpx.AsyncClient, stack: Stack
) -> None:
    jobs = {job["job_name"] for job in prometheus_config(stack, 0)["scrape_configs"]}

    async def all_up() -> bool:
        return await targets_up(prometheus, jobs)

    await until("every scrape target up", 60, all_up, detail=lambda: describe_targets(prometheus))

    boards = [json.loads(f.read_text()) for f in DASHBOARDS]
    assert boards
    async with (
        operator_client(stack.api) as client,
        running_session(client) as sid,
        live_page(stack.ui, sid),
    ):

        async def processed() -> bool:
            exposures = (await client.get(f"/api/sessions/{sid}/exposures")).json()
            return sum(e["status"] == "processed" for e in exposures) >= 3

        await until("three processed exposures", 120, processed)
        # A second command to acquisition while the run is live. Its handler series were
        # created by the start command, so Prometheus first saw them at 1 and no rate shows
        # that delivery; this one it does (acquisition handles nothing else meanwhile).
        r = await client.put(f"/api/sessions/{sid}/pause-between-grids", json={"enabled": False})
        assert r.status_code == 200, r.text
        empty: list[str] = []

        async def all_have_data() -> bool:
            nonlocal empty
            empty = await empty_panels(prometheus, boards, {"microscope": str(SCOPE["id"])})
            return not empty

        async def report() -> str:
            return f"{len(empty)} dashboard queries return no data:\n" + "\n".join(empty)

        # rates need two scrapes, and each series appears one scrape after its first event
        await until("every panel query to return data", 60, all_have_data, 2, report)

    bad_rules: list[str] = []

    async def rules_ok() -> bool:
        nonlocal bad_rules
        bad_rules = await unhealthy_rules(prometheus)
        return not bad_rules

    async def rules_report() -> str:
        return "\n".join(bad_rules)

    # the alert rules evaluate on the same real series without errors (e.g. many-to-many matches)
    await until("every alert rule to evaluate", 30, rules_ok, 1, rules_report)
