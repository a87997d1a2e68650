"""GET /problems/{code} describes each problem type with an integer status."""

from __future__ import annotations

import httpx
import pytest

from app.core.errors import problem_catalog

pytestmark = pytest.mark.asyncio


async def test_problem_status_is_integer(client: httpx.AsyncClient) -> None:
    response = await client.get("/problems/not-found")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == 404
    assert isinstance(body["status"], int)
    assert body["code"] == "not_found"


async def test_every_problem_type_described(client: httpx.AsyncClient) -> None:
    for code, entry in problem_catalog().items():
        response = await client.get(f"/problems/{code.replace('_', '-')}")
        assert response.status_code == 200, code
        body = response.json()
        assert body["status"] == entry.status, code
        assert 400 <= body["status"] <= 599, code
        assert body["description"] != body["title"], f"{code} repeats its title"


async def test_unknown_problem_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/problems/no-such-problem")
    assert response.status_code == 404
    assert response.json()["field"] == "code"
