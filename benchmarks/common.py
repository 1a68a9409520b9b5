"""Shared helpers of the latency benchmarks (``control.py``, ``logs.py``): import paths,
percentiles, the result table and the JSON file.

A benchmark script puts the workspace's ``tests`` folder on ``sys.path`` (for
``support.system`` and ``browser.helpers``) and keeps ``benchmarks/`` itself at the *end*:
``benchmarks/processing.py`` would otherwise shadow the ``processing`` service package.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def fix_sys_path() -> None:
    """``tests`` first (harness imports), ``benchmarks`` last (no shadowing of services)."""
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    sys.path.append(str(HERE))


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Row:
    """One line of the table: a latency metric in milliseconds."""

    metric: str
    n: int
    p50: float
    p95: float
    max: float
    target: str
    passed: bool | None
    """``None`` for informational rows (no target)."""

    @property
    def verdict(self) -> str:
        return "-" if self.passed is None else ("yes" if self.passed else "NO")


def row(metric: str, values_ms: list[float], target_p95_ms: float | None) -> Row:
    p95 = percentile(values_ms, 95)
    passed = None if target_p95_ms is None else (bool(values_ms) and p95 <= target_p95_ms)
    return Row(
        metric=metric,
        n=len(values_ms),
        p50=percentile(values_ms, 50),
        p95=p95,
        max=max(values_ms) if values_ms else math.nan,
        target="-" if target_p95_ms is None else f"p95 ≤ {target_p95_ms:g} ms",
        passed=passed,
    )


def print_table(title: str, rows: list[Row]) -> None:
    head = ("metric", "n", "p50 ms", "p95 ms", "max ms", "target", "pass")
    cells = [
        (r.metric, str(r.n), f"{r.p50:.1f}", f"{r.p95:.1f}", f"{r.max:.1f}", r.target, r.verdict)
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    print(f"\n{title}\n{line}\n{'-' * len(line)}")
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def write_json(name: str, rows: list[Row], raw: dict[str, Any], meta: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {
        "benchmark": name,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        **meta,
        "table": [{**asdict(r), "pass": r.passed} for r in rows],
        "raw_ms": raw,
    }
    for entry in body["table"]:
        entry.pop("passed")
    path.write_text(json.dumps(body, indent=1, allow_nan=False, default=_nan_safe) + "\n")
    return path


def _nan_safe(value: object) -> object:
    return str(value)


def base_parser(doc: str | None, default_n: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help=f"repetitions (default {default_n})")
    parser.add_argument("--quick", action="store_true", help="small n: a smoke run")
    return parser


def clean(rows: list[Row]) -> list[Row]:
    """NaN is not JSON: empty metrics get -1 (and n = 0 says why)."""
    for r in rows:
        for name in ("p50", "p95", "max"):
            if math.isnan(getattr(r, name)):
                setattr(r, name, -1.0)
    return rows


def quiet_logging(bench: logging.Logger) -> None:
    """Warnings of the system under test on stderr; the benchmark's own progress at INFO."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)
    own = logging.StreamHandler(sys.stdout)
    own.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    bench.addHandler(own)
    bench.setLevel(logging.INFO)
    bench.propagate = False


def redirect_stderr(name: str) -> Path:
    """Send file descriptor 2 (this process and the children it spawns) to a log file, so the
    services' and run processes' logs do not bury the table; returns the file's path."""
    path = system_log_path(name)
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    return path


def system_log_path(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"gridpilot-bench-{name}.log"


def run_main(main: Callable[[], Coroutine[Any, Any, int]], name: str) -> None:
    """Run a benchmark's ``main`` and exit: 0 all targets met, 1 a target missed, 2 it could
    not run (the system's logs are named), 130 interrupted."""
    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        logging.getLogger(f"bench.{name}").exception(
            "benchmark aborted; the system's logs: %s", system_log_path(name)
        )
        code = 2
    sys.exit(code)
