"""The Alembic migrations build exactly the schema the models describe (SQLite and
PostgreSQL), partial indexes and 64-bit ids included."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from session_api.db.engine import make_engine, migrate
from session_api.db.models import Base
from support.database import fresh_database

DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("kind", DATABASES)
async def test_migrations_match_the_models(kind: str, tmp_path: Path) -> None:
    async with fresh_database(kind, tmp_path) as url:
        engine = make_engine(url)
        await migrate(engine)

        def diff(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        def predicates(connection: Connection) -> dict[str, str | None]:
            key = f"{connection.dialect.name}_where"
            out: dict[str, str | None] = {}
            for table in Base.metadata.sorted_tables:
                for ix in inspect(connection).get_indexes(table.name):
                    where = ix.get("dialect_options", {}).get(key)
                    out[str(ix["name"])] = None if where is None else str(where)
            return out

        async with engine.connect() as conn:
            changes = await conn.run_sync(diff)
            found = await conn.run_sync(predicates)
            if kind == "postgres":
                big = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_sequences WHERE data_type = 'bigint'::regtype"
                        " AND sequencename IN ('log_lines_id_seq', 'audit_id_seq')"
                    )
                )
                assert big == 2, "the log and audit id sequences must be 64-bit"
        await engine.dispose()
    assert changes == [], "models and migrations differ; add a migration:\n" + "\n".join(
        map(str, changes)
    )
    for table in Base.metadata.sorted_tables:  # compare_metadata ignores index predicates
        for index in table.indexes:
            where = index.dialect_options["postgresql"].get("where")
            if where is not None and kind == "postgres":
                assert found[str(index.name)] is not None, f"{index.name} lost its WHERE"
