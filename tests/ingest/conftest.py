from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def keys(demo: dict[str, Any]) -> dict[str, str]:
    """The demo service's integration key of each format."""
    integrations = demo["services"][0]["integrations"]
    return {kind: integration["key"] for kind, integration in integrations.items()}


def pagerduty_body(fixture: dict[str, Any], key: str, **changes: Any) -> bytes:
    return json.dumps({**fixture, "routing_key": key, **changes}).encode()


async def count(raw_db: asyncpg.Connection, table: str, where: str = "true") -> int:
    value: int = await raw_db.fetchval(f"SELECT count(*) FROM {table} WHERE {where}")
    return value


async def integration_id(raw_db: asyncpg.Connection, kind: str) -> str:
    return str(await raw_db.fetchval("SELECT id FROM integrations WHERE kind = $1", kind))
