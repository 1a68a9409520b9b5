"""scripts/ensure-deploy-tools.sh: valid bash, and a no-op once the tools are installed."""

from __future__ import annotations

import os

from deploy_support import ENSURE_SCRIPT, REPO, describe, require_tool, run


def test_script_is_valid_bash() -> None:
    script = REPO / ENSURE_SCRIPT
    assert os.access(script, os.X_OK), f"{ENSURE_SCRIPT} must be executable"
    proc = run(["bash", "-n", str(script)])
    assert proc.returncode == 0, describe(proc)


def test_script_is_idempotent() -> None:
    """With promtool and docker-compose present, it installs nothing and says so."""
    require_tool("promtool")
    require_tool("docker-compose")
    proc = run([str(REPO / ENSURE_SCRIPT)], timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert "nothing to install" in proc.stdout, describe(proc)
    assert "apt-get" not in proc.stdout, describe(proc)
