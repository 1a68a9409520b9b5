"""``gridpilot scope check NAME``: check a SerialEM-driven microscope before its first run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "skip"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scope = sub.add_parser("scope", help="check a microscope's SerialEM connection")
    scope_sub = scope.add_subparsers(dest="scope_command", required=True)
    check = scope_sub.add_parser(
        "check",
        help="connect to SerialEM, report the scope, check the path mapping (moves nothing)",
    )
    check.add_argument("name", help="the microscope's id (or name) in the configuration")
    check.add_argument(
        "--file",
        type=Path,
        help="the microscope configuration (default: ACQUISITION_MICROSCOPES_FILE)",
    )
    check.add_argument("--move", action="store_true", help="also move the stage a little and back")


def main(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """0 when every check passed, 1 when one failed, 2 when the command cannot run."""
    import asyncio

    from acquisition.config import ConfigError, MicroscopeConfig, load_microscopes
    from acquisition.serialem.check import Check, Step
    from acquisition.settings import AcquisitionSettings

    try:
        scopes = load_microscopes(args.file) if args.file else AcquisitionSettings().microscopes
    except ConfigError as exc:
        print(f"gridpilot scope check: {exc}", file=out)
        return 2
    found: list[MicroscopeConfig] = [s for s in scopes if args.name in (s.id, s.name)]
    if not found:
        known = ", ".join(s.id for s in scopes)
        print(f"gridpilot scope check: no microscope {args.name!r} (configured: {known})", file=out)
        return 2
    config = found[0]
    if config.driver != "serialem" or config.serialem is None:
        print(
            f"gridpilot scope check: {config.id} uses the {config.driver} driver; "
            "only SerialEM-driven microscopes are checked",
            file=out,
        )
        return 2
    print(
        f"checking {config.id} ({config.name}): SerialEM at "
        f"{config.serialem.host}:{config.serialem.port}"
        + ("" if args.move else "; dry run, nothing is moved or loaded"),
        file=out,
    )

    def report(step: Step) -> None:
        print(f"  {MARKS[step.status]}  {step.name:<14} {step.detail}", file=out, flush=True)

    passed = asyncio.run(Check(config, move=args.move, report=report).run())
    print("all checks passed" if passed else "some checks FAILED", file=out)
    return 0 if passed else 1
