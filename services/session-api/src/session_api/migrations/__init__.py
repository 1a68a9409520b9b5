"""Alembic migrations of the session-api database."""
