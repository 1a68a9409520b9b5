"""Archive files: rows retention takes out of the database, as gzip-compressed JSON lines.

A file is ``<archive dir>/<kind>/<YYYY-MM-DD>/<name>.jsonl.gz``: one header line
(``{"gridpilot_archive": 1, "kind": …, "table": …, "written_at": …}``) and then one JSON
object per row, its columns by name (ids and times as text). A file is written under
a temporary name, flushed to the disk and then renamed, before any of its rows is deleted: a
crash leaves either no file or a whole one (and at worst the same rows in two files).

Read them with ``gridpilot archive list`` and ``gridpilot archive show FILE`` (or ``zcat``).
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

FORMAT = 1
SUFFIX = ".jsonl.gz"


def _plain(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in an archived row")


class ArchiveFile:
    """One archive file being written: rows are added batch by batch (off the event loop:
    call :meth:`add` and :meth:`close` through ``asyncio.to_thread``), and the file appears
    under its name only when :meth:`close` has made it durable."""

    def __init__(self, root: Path, kind: str, table: str) -> None:
        self._dir = root / kind
        self._dir.mkdir(parents=True, exist_ok=True)
        self._tmp = self._dir / f".{uuid.uuid4().hex}.tmp"
        self._raw: IO[bytes] = open(self._tmp, "wb")  # noqa: SIM115 - closed in close/abort
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6)
        self.rows = 0
        header = {
            "gridpilot_archive": FORMAT,
            "kind": kind,
            "table": table,
            "written_at": datetime.now(UTC).isoformat(),
        }
        self._gz.write(json.dumps(header).encode() + b"\n")

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            line = json.dumps(row, default=_plain, separators=(",", ":"))
            self._gz.write(line.encode() + b"\n")
        self.rows += len(rows)

    def close(self, day: date, name: str) -> Path:
        """Make the file durable as ``<kind>/<day>/<name>.jsonl.gz`` (its rows may be deleted
        after this returns)."""
        self._gz.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        path = self._dir / day.isoformat() / f"{name}{SUFFIX}"
        path.parent.mkdir(exist_ok=True)
        os.replace(self._tmp, path)
        for folder in (path.parent, self._dir):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return path

    def abort(self) -> None:
        self._gz.close()
        self._raw.close()
        self._tmp.unlink(missing_ok=True)


def read(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """The header of an archive file and an iterator over its rows.

    Raises:
        ValueError: if ``path`` is not a Gridpilot archive file.
    """
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            header = json.loads(f.readline())
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a Gridpilot archive file ({exc})") from exc
    if not isinstance(header, dict) or header.get("gridpilot_archive") != FORMAT:
        raise ValueError(f"{path}: not a Gridpilot archive file (no header)")

    def rows() -> Iterator[dict[str, Any]]:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            f.readline()
            for line in f:
                yield json.loads(line)

    return header, rows()


def files(root: Path, kind: str | None = None) -> list[Path]:
    """Every archive file under ``root`` (of one ``kind``), oldest day first."""
    base = root / kind if kind else root
    return sorted(base.rglob(f"*{SUFFIX}"), key=lambda p: (p.parent.name, p.name))


def log_text(row: Mapping[str, Any]) -> str:
    """An archived log line as the text download writes it."""
    return f"{row['sent_at']} {str(row['level']).upper():8} {row['service']}: {row['text']}"
