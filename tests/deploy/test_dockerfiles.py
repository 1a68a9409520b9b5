"""services/*/Dockerfile: hadolint, then the runtime contract (base, uv, user, probe, port, CMD)."""

from __future__ import annotations

import re
import tomllib

import pytest
from deploy_support import REPO, SERVICES, describe, require_tool, run


def dockerfile(slug: str) -> str:
    return (REPO / "services" / slug / "Dockerfile").read_text()


@pytest.mark.parametrize("slug", SERVICES)
def test_hadolint(slug: str) -> None:
    exe = require_tool("hadolint")
    proc = run([exe, "--no-color", "--failure-threshold", "warning", f"services/{slug}/Dockerfile"])
    assert proc.returncode == 0, describe(proc)


@pytest.mark.parametrize("slug", SERVICES)
def test_runtime_contract(slug: str) -> None:
    pkg, port, _env = SERVICES[slug]
    text = dockerfile(slug)
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert froms and all(f == "python:3.11-slim" for f in froms), froms
    assert re.search(r"pip install --no-cache-dir uv==\d+\.\d+\.\d+", text)
    assert f"uv sync --frozen --no-dev --no-editable --package gridpilot-{slug}" in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert re.search(rf"^EXPOSE {port}$", text, flags=re.MULTILINE)
    healthcheck = re.search(r"^HEALTHCHECK .*?\n(?:\s+.*\n)*", text, flags=re.MULTILINE)
    assert healthcheck and "/healthz" in healthcheck.group(0) and str(port) in healthcheck.group(0)
    assert text.rstrip().endswith(f'CMD ["python", "-m", "{pkg}"]')


@pytest.mark.parametrize("slug", SERVICES)
def test_installed_package_is_a_workspace_member(slug: str) -> None:
    """`uv sync --frozen --package X` fails at build time when X is not in uv.lock."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    members = set(lock["manifest"]["members"])
    assert f"gridpilot-{slug}" in members, members
    # Every member's pyproject.toml is copied before the first sync (uv reads the workspace).
    text = dockerfile(slug)
    for member_dir in ("proto", *(f"services/{s}" for s in SERVICES), "launcher"):
        assert f"COPY {member_dir}/pyproject.toml {member_dir}/pyproject.toml" in text, member_dir


def test_dockerignore_keeps_the_context_small() -> None:
    lines = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in ("**/.git", "**/.venv", "**/__pycache__", "tests", "deploy", "**/.env"):
        assert pattern in lines, pattern
    # What the Dockerfiles COPY must not be ignored.
    for needed in ("pyproject.toml", "uv.lock", ".python-version", "proto", "services"):
        assert needed not in lines, needed
