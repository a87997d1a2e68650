from __future__ import annotations

import uuid

import asyncpg
import pytest

from app.rules.snapshot import bump_revision, current_snapshot, known_revision

pytestmark = pytest.mark.asyncio


async def test_known_revision_skips_token_read(
    raw_db: asyncpg.Connection, clean_database: None
) -> None:
    await bump_revision(raw_db)
    first = await current_snapshot(raw_db)
    await bump_revision(raw_db)

    with known_revision(first.token):
        reused = await current_snapshot(raw_db)
    fresh = await current_snapshot(raw_db)

    assert reused is first
    assert fresh.token != first.token
    assert fresh.token == await raw_db.fetchval("SELECT token FROM rule_revisions WHERE id = 1")


async def test_known_revision_resets_after_block(
    raw_db: asyncpg.Connection, clean_database: None
) -> None:
    await bump_revision(raw_db)

    with known_revision(uuid.uuid4()):
        pass
    snapshot = await current_snapshot(raw_db)

    assert snapshot.token == await raw_db.fetchval("SELECT token FROM rule_revisions WHERE id = 1")
