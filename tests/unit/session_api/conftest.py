"""A migrated SQLite database for session-api's unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from session_api.db.engine import make_engine, migrate, sessionmaker


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'unit.db'}")
    await migrate(engine)
    yield sessionmaker(engine)
    await engine.dispose()
