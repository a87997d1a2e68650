"""Bad ?cursor= values get 400 naming the field, never a 500."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.asyncio

PROBLEM_JSON = "application/problem+json"


def raw_cursor(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode().rstrip("=")


def json_cursor(value: Any) -> str:
    return raw_cursor(json.dumps(value).encode())


BAD_CURSORS = {
    "not base64": "%%%",
    "not json": raw_cursor(b"not json"),
    "time out of range in UTC": json_cursor(["9999-12-31T23:59:59-23:59", str(uuid.uuid4())]),
    "time before year 1 in UTC": json_cursor(["0001-01-01T00:00:00+23:59", str(uuid.uuid4())]),
    "time without offset": json_cursor(["2026-01-01T00:00:00", str(uuid.uuid4())]),
    "deep nesting": raw_cursor(b"[" * 10_000 + b"]" * 10_000),
    "object": json_cursor({"at": "2026-01-01T00:00:00Z", "id": str(uuid.uuid4())}),
    "two-letter string": json_cursor("ab"),
    "numbers": json_cursor([1, 2]),
    "three items": json_cursor(["2026-01-01T00:00:00+00:00", str(uuid.uuid4()), "x"]),
    "bad id": json_cursor(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CURSORS))
async def test_bad_cursor_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], case: str
) -> None:
    response = await client.get("/v1/incidents", params={"cursor": BAD_CURSORS[case]}, headers=auth)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["field"] == "cursor"
