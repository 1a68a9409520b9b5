"""docker-compose.yml: validated by docker-compose itself (no daemon here), then inspected."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import REPO, SERVICES, describe, require_tool, run

SECRETS = (
    "RABBITMQ_DEFAULT_PASS",
    "POSTGRES_PASSWORD",
    "GRIDPILOT_SECRET_KEY",
    "GRAFANA_ADMIN_PASSWORD",
)


def compose_env(tmp_path: Path, *, without: str | None = None) -> tuple[dict[str, str], Path]:
    """A clean environment with the secrets set, and an empty --env-file.

    The empty env file makes sure a developer's `.env` cannot satisfy `${VAR:?}` behind our back.
    """
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("COMPOSE_")}
    env.update({name: f"test-{name.lower()}" for name in SECRETS if name != without})
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return env, env_file


def compose(tmp_path: Path, *args: str, without: str | None = None) -> Any:
    env, env_file = compose_env(tmp_path, without=without)
    exe = require_tool("docker-compose")
    return run([exe, "--env-file", str(env_file), "-f", "docker-compose.yml", *args], env=env)


def mounts(svc: dict[str, Any]) -> dict[str, str]:
    """target -> source for a service's volumes (compose v1 prints the short syntax)."""
    out: dict[str, str] = {}
    for m in svc.get("volumes", []):
        if isinstance(m, str):
            source, target = m.split(":")[:2]
        else:
            source, target = m["source"], m["target"]
        out[target] = source
    return out


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    proc = compose(tmp_path_factory.mktemp("compose"), "config")
    assert proc.returncode == 0, describe(proc)
    return yaml.safe_load(proc.stdout)


def test_config_is_valid_with_all_secrets(tmp_path: Path) -> None:
    proc = compose(tmp_path, "config", "-q")
    assert proc.returncode == 0, describe(proc)


@pytest.mark.parametrize("secret", SECRETS)
def test_missing_secret_fails(tmp_path: Path, secret: str) -> None:
    proc = compose(tmp_path, "config", "-q", without=secret)
    assert proc.returncode != 0, describe(proc)
    assert secret in proc.stderr, describe(proc)


def test_secrets_have_no_defaults() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    for secret in SECRETS:
        assert f"${{{secret}:?" in text, f"{secret} must be required with ${{{secret}:?...}}"
        assert f"${{{secret}:-" not in text and f"${{{secret}-" not in text, secret


def test_all_services_present(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {
        "rabbitmq",
        "postgres",
        *SERVICES,
        "prometheus",
        "grafana",
    }


def test_every_service_is_healthchecked(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        assert "healthcheck" in svc, f"{name} has no healthcheck"
        assert svc["healthcheck"].get("test"), name


def test_gridpilot_services_wait_for_healthy_dependencies(config: dict[str, Any]) -> None:
    for slug in SERVICES:
        deps = config["services"][slug]["depends_on"]
        assert "rabbitmq" in deps, slug
        for dep, cond in deps.items():
            assert cond == {"condition": "service_healthy"}, (slug, dep)
    assert "postgres" in config["services"]["session-api"]["depends_on"]
    assert "session-api" in config["services"]["ui"]["depends_on"]


def test_gridpilot_services_follow_the_runtime_contract(config: dict[str, Any]) -> None:
    for slug, (_pkg, port, env_names) in SERVICES.items():
        svc = config["services"][slug]
        assert svc["build"]["dockerfile"] == f"services/{slug}/Dockerfile", slug
        assert Path(svc["build"]["context"]).resolve() == REPO, slug
        assert set(env_names) <= set(svc["environment"]), (
            slug,
            set(env_names) - set(svc["environment"]),
        )
        assert f"127.0.0.1:{port}/healthz" in " ".join(svc["healthcheck"]["test"]), slug
    session_env = config["services"]["session-api"]["environment"]
    assert session_env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert config["services"]["ui"]["environment"]["SESSION_API_URL"] == "http://session-api:8001"


def test_processing_can_scale(config: dict[str, Any]) -> None:
    """`docker-compose up --scale processing=4` needs no fixed name and no host port."""
    svc = config["services"]["processing"]
    assert "container_name" not in svc
    assert "ports" not in svc
    for slug in SERVICES:
        assert "container_name" not in config["services"][slug], slug


def test_shared_data_volume(config: dict[str, Any]) -> None:
    assert "gridpilot-data" in config["volumes"]
    for slug in ("acquisition", "processing"):
        assert mounts(config["services"][slug]).get("/data") == "gridpilot-data", slug


def test_rabbitmq_enables_management_and_prometheus(config: dict[str, Any]) -> None:
    svc = config["services"]["rabbitmq"]
    assert svc["image"].startswith("rabbitmq:3.10-management")
    plugins = Path(mounts(svc)["/etc/rabbitmq/enabled_plugins"]).read_text()
    assert plugins.strip().endswith("].")
    assert "rabbitmq_management" in plugins and "rabbitmq_prometheus" in plugins


def test_monitoring_mounts_repo_config(config: dict[str, Any]) -> None:
    prom = mounts(config["services"]["prometheus"])
    assert Path(prom["/etc/prometheus"]) == REPO / "deploy" / "prometheus"
    graf = mounts(config["services"]["grafana"])
    assert Path(graf["/etc/grafana/provisioning"]) == REPO / "deploy" / "grafana" / "provisioning"
    assert Path(graf["/var/lib/grafana/dashboards"]) == REPO / "deploy" / "grafana" / "dashboards"


def test_acquisition_reads_the_microscopes_file(config: dict[str, Any]) -> None:
    svc = config["services"]["acquisition"]
    path = "/etc/gridpilot/microscopes.toml"
    assert svc["environment"]["ACQUISITION_MICROSCOPES_FILE"] == path
    assert Path(mounts(svc)[path]) == REPO / "deploy" / "microscopes.example.toml"
