from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.asyncio


async def test_new_request_id_in_header(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_caller_request_id_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "trace-42"})

    assert response.headers["x-request-id"] == "trace-42"


async def test_long_request_id_truncated(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "a" * 100})

    assert response.headers["x-request-id"] == "a" * 64


async def test_problem_carries_request_id(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/ingest/alertmanager/no-such-key",
        content=b'{"alerts": []}',
        headers={"X-Request-ID": "trace-43"},
    )

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["x-request-id"] == "trace-43"
    assert response.json()["request_id"] == "trace-43"
