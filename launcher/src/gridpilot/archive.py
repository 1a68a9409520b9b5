"""``gridpilot archive``: read what retention took out of the database.

``list`` names the archive files (kind, day, rows) under ``SESSION_API_ARCHIVE_DIR`` (or
``--dir``); ``show FILE`` prints one: log lines as the log download writes them, every other
kind (and ``--json``) as one JSON object per row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from session_api import archive


def add_parser(sub: Any) -> None:
    p = sub.add_parser("archive", help="list or show the archive files retention wrote")
    cmds = p.add_subparsers(dest="archive_command", required=True)
    ls = cmds.add_parser("list", help="the archive files, oldest day first")
    ls.add_argument("--dir", type=Path, help="archive folder (default SESSION_API_ARCHIVE_DIR)")
    ls.add_argument("--kind", choices=["log_lines", "processed", "targets", "audit", "exposures"])
    show = cmds.add_parser("show", help="print the rows of one archive file")
    show.add_argument("file", type=Path)
    show.add_argument("--json", action="store_true", help="JSON lines, also for log lines")


def main(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    if args.archive_command == "list":
        root = args.dir or _default_dir()
        if not root.is_dir():
            sys.stderr.write(f"no archive folder {root}\n")
            return 1
        for path in archive.files(root, args.kind):
            out.write(f"{path}\n")
        return 0
    try:
        header, rows = archive.read(args.file)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"gridpilot archive show: {exc}\n")
        return 1
    text = header["kind"] == "log_lines" and not args.json
    for row in rows:
        out.write((archive.log_text(row) if text else json.dumps(row)) + "\n")
    return 0


def _default_dir() -> Path:
    from session_api.settings import ApiSettings

    return ApiSettings().archive_dir
