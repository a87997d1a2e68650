"""Migrations apply, match the models, and roll back cleanly."""

from __future__ import annotations

import asyncpg
from alembic import command

from app.core.migrate import alembic_config, downgrade, upgrade
from tests.support import database


def test_upgrade_check_downgrade_upgrade(server_url: str) -> None:
    name = database.database_name("_migrations")
    database.run_in_thread(lambda: database.recreate_database(server_url, name))
    url = database.url_for(server_url, name).replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        database.call_in_thread(lambda: upgrade(url))
        # Fails when the models and the migrations disagree (Alembic's autogenerate diff).
        database.call_in_thread(lambda: command.check(alembic_config(url)))
        database.call_in_thread(lambda: downgrade(url, "base"))
        tables = database.run_in_thread(lambda: _tables(url))
        assert tables == ["alembic_version"]
        database.call_in_thread(lambda: upgrade(url))
        tables = database.run_in_thread(lambda: _tables(url))
        assert {"incidents", "alerts", "pgqueuer", "timeline_entries"} <= set(tables)
    finally:
        database.run_in_thread(lambda: database.drop_database(server_url, name))


async def _tables(url: str) -> list[str]:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        rows = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
    finally:
        await connection.close()
    return [row["tablename"] for row in rows]
