"""Mapping of errors to problem responses."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from sqlalchemy.exc import DBAPIError

from app.core.errors import _is_unstorable_value


def test_unstorable_values_map_to_400() -> None:
    nul = asyncpg.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00')
    json_number = asyncpg.InvalidTextRepresentationError("invalid input syntax for type json")
    other_text = asyncpg.InvalidTextRepresentationError("invalid input syntax for type uuid")
    wrapped = DBAPIError("INSERT ...", {}, Exception("wrapper"))
    wrapped.orig.__cause__ = nul  # type: ignore[union-attr]

    assert _is_unstorable_value(nul) is True
    assert _is_unstorable_value(json_number) is True
    assert _is_unstorable_value(wrapped) is True
    assert _is_unstorable_value(other_text) is False
    assert _is_unstorable_value(ValueError("x")) is False


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("code", "status"),
    [("link_invalid", 403), ("link-expired", 410), ("link_user_gone", 410), ("in_use", 409)],
)
async def test_problem_types_are_described(
    client: httpx.AsyncClient, code: str, status: int
) -> None:
    response = await client.get(f"/problems/{code}")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
