"""Grafana provisioning and dashboards: JSON parses, every panel queries, only known metrics,
and every query is valid PromQL (checked by promtool through a generated rule file)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    DEPLOY,
    describe,
    grafana_to_promql,
    iter_panels,
    known_series,
    promql_metric_names,
    require_tool,
    run,
)

GRAFANA = DEPLOY / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
EXPECTED_UIDS = {
    "gridpilot-facility-overview",
    "gridpilot-microscope-run",
    "gridpilot-processing",
    "gridpilot-rabbitmq",
}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def datasource_uid() -> str:
    provisioning = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (ds,) = provisioning["datasources"]
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"
    return str(ds["uid"])


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) for every panel target and every query variable."""
    out = []
    for panel in iter_panels(board["panels"]):
        for target in panel.get("targets", []):
            out.append((f"{board['uid']} / {panel['title']} / {target['refId']}", target["expr"]))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out.append((f"{board['uid']} / ${var['name']}", q))
    return out


def test_expected_dashboards() -> None:
    uids = [load(f)["uid"] for f in DASHBOARD_FILES]
    assert len(uids) == len(set(uids))
    assert set(uids) == EXPECTED_UIDS
    for f in DASHBOARD_FILES:
        assert f.stem == load(f)["uid"], f


def test_provisioning_points_at_the_dashboards() -> None:
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "gridpilot.yml").read_text()
    )
    (p,) = provider["providers"]
    assert p["type"] == "file"
    # docker-compose.yml mounts deploy/grafana/dashboards here.
    assert p["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_panel_has_a_query_on_our_datasource(path: Path) -> None:
    board = load(path)
    uid = datasource_uid()
    panels = [p for p in iter_panels(board["panels"]) if p["type"] != "row"]
    assert panels
    ids = [p["id"] for p in iter_panels(board["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel.get("title"), panel
        assert panel["datasource"]["uid"] == uid, panel["title"]
        targets = panel.get("targets", [])
        assert targets, f"{panel['title']} has no query"
        for target in targets:
            assert target.get("expr", "").strip(), (panel["title"], target)
            assert target["datasource"]["uid"] == uid, panel["title"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_only_known_metric_names(path: Path) -> None:
    known = known_series()
    for where, expr in queries(load(path)):
        m = re.match(r"label_values\((\w+)", expr)
        names = {m.group(1)} if m else promql_metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        assert names <= known, f"{where}: unknown metric(s) {names - known} in {expr!r}"


def test_microscope_dashboard_is_templated() -> None:
    board = load(GRAFANA / "dashboards" / "gridpilot-microscope-run.json")
    (var,) = [v for v in board["templating"]["list"] if v["name"] == "microscope"]
    assert var["type"] == "query"
    per_run = [e for _, e in queries(board) if "gridpilot_session_api" in e]
    assert per_run and all(
        'microscope="$microscope"' in e for e in per_run if "label_values" not in e
    )


def test_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every dashboard query (Grafana variables substituted)."""
    exprs = [
        (where, grafana_to_promql(expr))
        for f in DASHBOARD_FILES
        for where, expr in queries(load(f))
        if not expr.startswith("label_values(")
    ]
    rules = [{"record": f"dashboard:query:{i}", "expr": expr} for i, (_, expr) in enumerate(exprs)]
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = run([require_tool("promtool"), "check", "rules", str(rule_file)])
    assert proc.returncode == 0, (
        describe(proc) + "\n" + "\n".join(f"{i}: {w}" for i, (w, _) in enumerate(exprs))
    )
    assert f"{len(rules)} rules found" in proc.stdout
