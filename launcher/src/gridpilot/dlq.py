"""``gridpilot dlq``: the dead-letter queues from a terminal, through session-api (staff).

The same operations as the operations page, audited the same way: ``list``, ``replay``,
``discard`` and ``purge``. Authenticates with ``GRIDPILOT_TOKEN`` (a bearer token) or with
``--user`` and a password read from the terminal or stdin.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

import httpx

from proto.api import DeadLetterView, WorkQueue

QUEUES: tuple[str, ...] = WorkQueue.__args__  # type: ignore[attr-defined]
DEFAULT_API = "http://127.0.0.1:8001"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dlq", help="list, replay, discard or purge dead letters (staff)")
    p.add_argument(
        "--api",
        default=os.environ.get("GRIDPILOT_API_URL", DEFAULT_API),
        help="session-api URL (GRIDPILOT_API_URL; default %(default)s)",
    )
    p.add_argument("--user", help="log in as this staff user (else GRIDPILOT_TOKEN)")
    dlq = p.add_subparsers(dest="dlq_command", required=True)
    ls = dlq.add_parser("list", help="the dead letters, oldest first per queue")
    ls.add_argument("--queue", choices=QUEUES)
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    for name, text in (("replay", "put letters back on their queue"), ("discard", "drop letters")):
        cmd = dlq.add_parser(name, help=text)
        cmd.add_argument("queue", choices=QUEUES)
        cmd.add_argument("keys", nargs="*", metavar="KEY", help="letters, as `list` names them")
        cmd.add_argument("--all", action="store_true", help="every letter of the queue")
    purge = dlq.add_parser("purge", help="drop every letter of a queue")
    purge.add_argument("queue", choices=QUEUES)
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")


async def run(args: argparse.Namespace, client: httpx.AsyncClient, out: TextIO) -> int:
    """Carry out ``args`` with ``client`` (authenticated, base URL set); the exit status."""
    command = args.dlq_command
    if command == "list":
        letters = await _letters(client, args.queue)
        if args.json:
            out.write(json.dumps([x.model_dump(mode="json") for x in letters], indent=2) + "\n")
        else:
            _table(letters, out)
        return 0
    if command == "purge":
        r = await client.post(f"/api/ops/dead-letters/{args.queue}/purge")
        _check(r)
        out.write(f"purged {r.json()['count']} letters from dlq.{args.queue}\n")
        return 0
    keys = list(args.keys)
    if args.all:
        keys = [x.key for x in await _letters(client, args.queue)]
    elif not keys:
        out.write(f"gridpilot dlq {command}: name letters (KEY …) or give --all\n")
        return 2
    failed = 0
    for key in keys:
        r = await client.post(f"/api/ops/dead-letters/{args.queue}/{key}/{command}")
        if r.status_code == 404:
            out.write(f"{key}: {_detail(r)}\n")
            failed += 1
            continue
        _check(r)
        out.write(f"{key}: {r.json()['action']}\n")
    return 1 if failed else 0


async def login(client: httpx.AsyncClient, user: str | None, password: str | None) -> None:
    """Set the bearer token: from ``GRIDPILOT_TOKEN``, or by logging ``user`` in."""
    token = os.environ.get("GRIDPILOT_TOKEN")
    if user:
        r = await client.post("/api/auth/token", json={"username": user, "password": password})
        _check(r)
        token = r.json()["access_token"]
    if not token:
        raise SystemExit("gridpilot dlq: give --user NAME or set GRIDPILOT_TOKEN")
    client.headers["Authorization"] = f"Bearer {token}"


async def _letters(client: httpx.AsyncClient, queue: str | None) -> list[DeadLetterView]:
    r = await client.get("/api/ops/dead-letters", params={"queue": queue} if queue else None)
    _check(r)
    return [DeadLetterView.model_validate(x) for x in r.json()]


def _table(letters: list[DeadLetterView], out: TextIO) -> None:
    if not letters:
        out.write("no dead letters\n")
        return
    out.write(f"{'QUEUE':<22}{'KEY':<38}{'TYPE':<20}{'TRIES':>5}  {'DEAD AT':<20}REASON\n")
    for x in letters:
        when = x.dead_at.strftime("%Y-%m-%d %H:%M:%S") if x.dead_at else "?"
        reason = x.reason if len(x.reason) <= 100 else x.reason[:99] + "…"
        out.write(
            f"{x.queue:<22}{x.key:<38}{x.type or '?':<20}{x.attempts:>5}  {when:<20}{reason}\n"
        )


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail", r.text))
    except ValueError:
        return r.text


def _check(r: httpx.Response) -> None:
    if r.status_code >= 400:
        raise SystemExit(f"gridpilot dlq: {r.status_code} {_detail(r)}")


def confirm_purge(args: argparse.Namespace) -> bool:
    if args.dlq_command != "purge" or args.yes:
        return True
    if not sys.stdin.isatty():
        raise SystemExit("gridpilot dlq purge: give --yes (no terminal to ask on)")
    answer = input(f"drop every dead letter of {args.queue}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


async def main(args: argparse.Namespace, password: str | None) -> int:
    if not confirm_purge(args):
        print("nothing purged")  # noqa: T201
        return 1
    async with httpx.AsyncClient(base_url=args.api, timeout=30) as client:
        try:
            await login(client, args.user, password)
            return await run(args, client, sys.stdout)
        except httpx.HTTPError as exc:
            raise SystemExit(
                f"gridpilot dlq: cannot reach session-api at {args.api}: {exc}"
            ) from exc
