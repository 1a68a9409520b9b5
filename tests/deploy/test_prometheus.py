"""Prometheus config, alert rules and their unit tests, all through promtool."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    ALERTS,
    DEPLOY,
    REPO,
    describe,
    known_series,
    promql_metric_names,
    require_tool,
    run,
)

PROM = DEPLOY / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.rules.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.test.yml"))


def rules() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in RULE_FILES:
        for group in yaml.safe_load(f.read_text())["groups"]:
            out.extend(group["rules"])
    return out


def test_promtool_check_config() -> None:
    proc = run([require_tool("promtool"), "check", "config", "prometheus.yml"], cwd=PROM)
    assert proc.returncode == 0, describe(proc)
    assert f"{len(RULE_FILES)} rule files found" in proc.stdout, describe(proc)


def test_promtool_check_rules() -> None:
    assert RULE_FILES
    proc = run([require_tool("promtool"), "check", "rules", *map(str, RULE_FILES)])
    assert proc.returncode == 0, describe(proc)


def test_promtool_test_rules() -> None:
    assert TEST_FILES
    proc = run([require_tool("promtool"), "test", "rules", *map(str, TEST_FILES)])
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.count("SUCCESS") == len(TEST_FILES), describe(proc)


def test_required_alerts_exist() -> None:
    names = {r["alert"] for r in rules() if "alert" in r}
    assert set(ALERTS) <= names, set(ALERTS) - names


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_is_tested_firing_and_silent(alert: str) -> None:
    firing = silent = False
    for f in TEST_FILES:
        for case in yaml.safe_load(f.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["alertname"] != alert:
                    continue
                if check.get("exp_alerts"):
                    firing = True
                else:
                    silent = True
    assert firing, f"no promtool test expects {alert} to fire"
    assert silent, f"no promtool test expects {alert} to stay silent"


def test_alerts_are_documented() -> None:
    ops = (REPO / "docs" / "operations.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9]+", "", h.lower())
        for h in re.findall(r"^#+\s+(.+)$", ops, flags=re.MULTILINE)
    }
    for rule in rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), (rule["alert"], key)
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert anchor in headings, f"docs/operations.md has no heading for {rule['alert']}"


def test_rules_use_known_metrics() -> None:
    known = known_series()
    for rule in rules():
        unknown = promql_metric_names(rule["expr"]) - known
        assert not unknown, (rule.get("alert") or rule.get("record"), unknown)


def test_scrape_targets() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    ports = {"acquisition": 9101, "processing": 9102, "session-api": 8001, "ui": 8000}
    for slug, port in ports.items():
        sd = jobs[slug]["dns_sd_configs"][0]
        # DNS discovery: one target per replica under `--scale`.
        assert sd == {"names": [slug], "type": "A", "port": port, "refresh_interval": "15s"}
    detailed = jobs["rabbitmq-detailed"]
    assert detailed["metrics_path"] == "/metrics/detailed"
    assert set(detailed["params"]["family"]) == {"queue_coarse_metrics", "queue_consumer_count"}
    assert detailed["static_configs"][0]["targets"] == ["rabbitmq:15692"]
    assert jobs["rabbitmq"]["static_configs"][0]["targets"] == ["rabbitmq:15692"]


def test_rule_files_are_loaded_relative_to_the_config() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    for pattern in config["rule_files"]:
        assert not Path(pattern).is_absolute()
        assert sorted(PROM.glob(pattern)) == RULE_FILES
