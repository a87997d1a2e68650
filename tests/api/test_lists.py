"""List endpoints share one shape, {items, next_cursor}, and API keys have a detail route."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.asyncio

PROBLEM_JSON = "application/problem+json"


async def page_through(
    client: httpx.AsyncClient, path: str, auth: dict[str, str], limit: int
) -> list[dict[str, Any]]:
    """Follow next_cursor to the end; return every item in order."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(50):
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(path, params=params, headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError(f"{path} kept returning a next_cursor")


async def test_api_keys_page(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = []
    for name in ("one", "two", "three"):
        response = await client.post(
            "/v1/api-keys", json={"name": name, "scopes": ["incidents:read"]}, headers=auth
        )
        assert response.status_code == 201
        created.append(response.json()["id"])
    items = await page_through(client, "/v1/api-keys", auth, limit=2)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))
    assert ids[-3:] == created
    assert all("key" not in item for item in items)


async def test_api_key_location_resolves(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = await client.post(
        "/v1/api-keys", json={"name": "reader", "scopes": ["incidents:read"]}, headers=auth
    )
    assert created.status_code == 201
    fetched = await client.get(created.headers["location"], headers=auth)
    assert fetched.status_code == 200
    assert fetched.json()["id"] == created.json()["id"]
    assert fetched.json()["key_hint"] == created.json()["key"][-4:]
    assert "key" not in fetched.json()


async def test_missing_api_key_is_404(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.get(f"/v1/api-keys/{uuid.uuid4()}", headers=auth)
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["field"] == "api_key_id"


async def test_integrations_page(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any]
) -> None:
    service_id = demo["services"][0]["id"]
    path = f"/v1/services/{service_id}/integrations"
    created = await client.post(path, json={"name": "extra", "kind": "generic"}, headers=auth)
    assert created.status_code == 201
    items = await page_through(client, path, auth, limit=2)
    kinds = sorted(item["kind"] for item in items)
    assert kinds == sorted([*demo["services"][0]["integrations"], "generic"])
    assert items[-1]["id"] == created.json()["id"]


async def test_contact_methods_page(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any]
) -> None:
    user_id = demo["users"][0]["id"]
    path = f"/v1/users/{user_id}/contact-methods"
    before = await page_through(client, path, auth, limit=1)
    created = await client.post(path, json={"kind": "log", "name": "second console"}, headers=auth)
    assert created.status_code == 201
    after = await page_through(client, path, auth, limit=1)
    assert [item["id"] for item in after] == [item["id"] for item in before] + [
        created.json()["id"]
    ]
