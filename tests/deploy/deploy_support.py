"""Shared helpers for the deployment tests (compose, Dockerfiles, Prometheus, Grafana, k8s).

External tools that are not in the Python environment (promtool, docker-compose) come from
`scripts/ensure-deploy-tools.sh`. A missing tool fails the test with that hint; nothing here
skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ENSURE_SCRIPT = "scripts/ensure-deploy-tools.sh"

# slug -> (python package, port, env names of the runtime contract)
SERVICES: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "acquisition": (
        "acquisition",
        9101,
        ("AMQP_URL", "AMQP_MANAGEMENT_URL", "ACQUISITION_DATA_ROOT", "ACQUISITION_METRICS_PORT"),
    ),
    "processing": (
        "processing",
        9102,
        ("AMQP_URL", "PROCESSING_DATA_ROOT", "PROCESSING_FFT_THREADS", "PROCESSING_METRICS_PORT"),
    ),
    "session-api": (
        "session_api",
        8001,
        (
            "AMQP_URL",
            "AMQP_MANAGEMENT_URL",
            "DATABASE_URL",
            "GRIDPILOT_SECRET_KEY",
            "SESSION_API_HOST",
            "SESSION_API_PORT",
        ),
    ),
    "ui": (
        "ui",
        8000,
        ("AMQP_URL", "SESSION_API_URL", "GRIDPILOT_SECRET_KEY", "UI_HOST", "UI_PORT"),
    ),
}

METRIC_SERVICES = ("acquisition", "processing", "session_api", "ui")

# The metric contract as the lead wrote it down. docs/metrics.md must list all of these; the
# dashboards and rules may use only what docs/metrics.md lists.
CONTRACT_METRICS: frozenset[str] = frozenset(
    [
        f"gridpilot_{s}_{m}"
        for s in METRIC_SERVICES
        for m in (
            "bus_published_total",
            "bus_handled_total",
            "bus_handler_seconds",
            "process_cpu_seconds_total",
            "process_memory_bytes",
            "process_open_files",
            "heartbeat_timestamp_seconds",
        )
    ]
    + [
        "gridpilot_acquisition_disk_free_bytes",
        "gridpilot_acquisition_disk_used_bytes",
        "gridpilot_acquisition_disk_size_bytes",
        "gridpilot_acquisition_exposures_total",
        "gridpilot_acquisition_lease_held",
        "gridpilot_processing_images_total",
        "gridpilot_processing_latency_seconds",
        "gridpilot_processing_backlog_messages",
        "gridpilot_session_api_run_state",
        "gridpilot_session_api_exposures_per_hour",
        "gridpilot_session_api_lease_held",
        "gridpilot_session_api_heartbeat_age_seconds",
        "gridpilot_session_api_queue_messages",
        "gridpilot_session_api_queue_consumers",
        "gridpilot_session_api_dead_letters",
        "gridpilot_session_api_last_exposure_timestamp_seconds",
        "gridpilot_ui_sse_streams",
    ]
)
HISTOGRAMS = frozenset(
    [f"gridpilot_{s}_bus_handler_seconds" for s in METRIC_SERVICES]
    + ["gridpilot_processing_latency_seconds"]
)

# RabbitMQ 3.10 rabbitmq_prometheus names the dashboards may use, read from the plugin shipped in
# Debian's rabbitmq-server 3.10.8 (prometheus_rabbitmq_core_metrics_collector: totals and
# queue_coarse_metrics / queue_consumer_count, "rabbitmq_detailed_" prefix on /metrics/detailed;
# prometheus_rabbitmq_global_metrics_collector: "rabbitmq_global_" + rabbit_global_counters).
RABBITMQ_METRICS: frozenset[str] = frozenset(
    [
        "rabbitmq_connections",
        "rabbitmq_channels",
        "rabbitmq_consumers",
        "rabbitmq_queues",
        "rabbitmq_queue_messages",
        "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_messages_unacked",
        "rabbitmq_global_messages_received_total",
        "rabbitmq_global_messages_delivered_total",
        "rabbitmq_global_messages_redelivered_total",
        "rabbitmq_global_messages_acknowledged_total",
        "rabbitmq_global_messages_dead_lettered_delivery_limit_total",
        "rabbitmq_global_messages_dead_lettered_rejected_total",
        "rabbitmq_detailed_queue_messages",
        "rabbitmq_detailed_queue_messages_ready",
        "rabbitmq_detailed_queue_messages_unacked",
        "rabbitmq_detailed_queue_consumers",
    ]
)
# Prometheus' own synthetic series.
PROMETHEUS_METRICS = frozenset(["up", "scrape_duration_seconds", "scrape_samples_scraped"])

ALERTS = (
    "DiskWarning",
    "DiskCritical",
    "ProcessingBacklogGrowing",
    "NoExposureWhileRunning",
    "HeartbeatStale",
    "DeadLettersPresent",
    "TargetDown",
)


def require_tool(name: str) -> str:
    """Path of an external tool; fail (never skip) with the fix when it is missing."""
    found = shutil.which(name)
    if found is None:
        venv_bin = Path(sys.executable).parent / name
        if venv_bin.exists():
            return str(venv_bin)
        pytest.fail(
            f"{name} not found on PATH: run {ENSURE_SCRIPT} (installs prometheus, promtool "
            "and docker-compose from Debian) and `uv sync` (hadolint, kubernetes-validate)",
            pytrace=False,
        )
    return found


def run(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path = REPO, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"$ {' '.join(proc.args)}\nexit {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


# --- metric names ------------------------------------------------------------------------------


def documented_metrics() -> frozenset[str]:
    """Every `gridpilot_*` name in the tables of docs/metrics.md, `<service>` expanded."""
    text = (REPO / "docs" / "metrics.md").read_text()
    names: set[str] = set()
    for cell in re.findall(r"^\|\s*`(gridpilot_[a-z_<>]+)`\s*\|", text, flags=re.MULTILINE):
        if "<service>" in cell:
            names.update(cell.replace("<service>", s) for s in METRIC_SERVICES)
        else:
            names.add(cell)
    return frozenset(names)


def known_series() -> frozenset[str]:
    """Series names a query may select: documented metrics (+ histogram parts) and RabbitMQ's."""
    docs = documented_metrics()
    hist = {f"{h}{suffix}" for h in HISTOGRAMS & docs for suffix in ("_bucket", "_sum", "_count")}
    return frozenset(docs | hist | RABBITMQ_METRICS | PROMETHEUS_METRICS)


_PROMQL_KEYWORDS = frozenset(
    "by without on ignoring group_left group_right bool and or unless offset inf nan".split()
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (a lexer good enough for our queries)."""
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    e = re.sub(r"'(?:\\.|[^'\\])*'", "''", e)
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range / subquery selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", "", e)  # Grafana variables
    e = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?[smhdwy]?\b", "", e)  # numbers, durations
    names: set[str] = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        token = m.group(0)
        if token.lower() in _PROMQL_KEYWORDS:
            continue
        if re.match(r"\s*\(", e[m.end() :]):  # function or aggregation call
            continue
        names.add(token)
    return names


def grafana_to_promql(expr: str) -> str:
    """Substitute Grafana's variables so that promtool can parse a dashboard query."""
    e = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    e = e.replace("${microscope}", "krios1").replace("$microscope", "krios1")
    return e


def iter_panels(panels: Iterable[dict]) -> Iterable[dict]:
    for p in panels:
        yield p
        yield from iter_panels(p.get("panels", []))
