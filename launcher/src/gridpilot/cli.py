"""The ``gridpilot`` command: demo, up, serve, users, dlq, scope check, archive."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import runpy
import sys
from pathlib import Path

from gridpilot import archive, dlq, scope

SERVE = {
    "acquisition": "acquisition",
    "processing": "processing",
    "session-api": "session_api",
    "ui": "ui",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gridpilot", description="Run control for cryo-EM grid screening."
    )
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="everything in one process: in-memory bus, SQLite, simulated scopes"
    )
    up = sub.add_parser(
        "up", help="the four services as processes against AMQP_URL and DATABASE_URL"
    )
    for cmd in (demo, up):
        cmd.add_argument("--root", type=Path, default=Path("var"), help="data and database folder")
        cmd.add_argument("--ui-port", type=int, default=8000)
        cmd.add_argument("--api-port", type=int, default=8001)
    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=sorted(SERVE))
    users = sub.add_parser("users", help="manage users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser(
        "add", help="add a user (or reset one); the password is read from stdin"
    )
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["viewer", "operator", "staff"])
    dlq.add_parser(sub)
    scope.add_parser(sub)
    archive.add_parser(sub)
    return p


async def _add_user(name: str, role: str, password: str) -> None:
    from session_api.auth import add_user
    from session_api.db.engine import make_engine, migrate, sessionmaker
    from session_api.settings import ApiSettings

    engine = make_engine(ApiSettings().database_url)
    await migrate(engine)
    async with sessionmaker(engine)() as db:
        await add_user(db, name, role, password)  # type: ignore[arg-type]
        await db.commit()
    await engine.dispose()


def _read_password(confirm: bool = True) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if confirm and getpass.getpass("again: ") != first:
            raise SystemExit("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from gridpilot.demo import run_demo

        asyncio.run(run_demo(args.root, args.ui_port, args.api_port))
    elif args.command == "up":
        from gridpilot.up import run_up

        asyncio.run(run_up(args.root, args.ui_port, args.api_port))
    elif args.command == "serve":
        sys.argv = [SERVE[args.service]]
        runpy.run_module(SERVE[args.service], run_name="__main__", alter_sys=True)
    elif args.command == "users":
        try:
            asyncio.run(_add_user(args.name, args.role, _read_password()))
        except ValueError as exc:
            raise SystemExit(f"gridpilot users add: {exc}") from exc
        print(f"user {args.name} is {args.role}")
    elif args.command == "dlq":
        password = _read_password(confirm=False) if args.user else None
        raise SystemExit(asyncio.run(dlq.main(args, password)))
    elif args.command == "scope":
        raise SystemExit(scope.main(args))
    elif args.command == "archive":
        raise SystemExit(archive.main(args))
