"""Request bodies of the /v1 API reject fields they do not define."""

from __future__ import annotations

import types
import typing
import uuid
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from app.api.router import api_router
from app.core.errors import PROBLEM_JSON
from tests.api.test_transaction_retry import routes_of


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Return the Pydantic models an annotation names, through lists, unions and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is None:
        return []
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        arguments = arguments[:1]
    elif origin not in (list, tuple, set, frozenset, dict, typing.Union, types.UnionType):
        return []
    return [model for argument in arguments for model in _models_in(argument)]


def request_models() -> dict[type[BaseModel], str]:
    """Map every model a /v1 request body contains, nested ones too, to one route using it."""
    found: dict[type[BaseModel], str] = {}
    for route in routes_of(api_router):
        where = f"{sorted(route.methods)[0]} {route.path}"
        pending = [
            model
            for parameter in route.dependant.body_params
            for model in _models_in(parameter.field_info.annotation)
        ]
        while pending:
            model = pending.pop()
            if model in found:
                continue
            found[model] = where
            for field in model.model_fields.values():
                pending.extend(_models_in(field.annotation))
    return found


def test_every_request_model_forbids_unknown_fields() -> None:
    models = request_models()
    assert len(models) > 50
    lenient = {
        model.__qualname__: where
        for model, where in models.items()
        if model.model_config.get("extra") != "forbid"
    }
    assert lenient == {}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("patch", "/v1/incidents/{incident}", {"status": "resolved"}, "body.status"),
        (
            "post",
            "/v1/users",
            {"name": "Ann", "email": "ann@example.com", "team": "x"},
            "body.team",
        ),
        (
            "post",
            "/v1/escalation-policies",
            {
                "name": "P",
                "levels": [{"targets": [{"type": "user", "id": str(uuid.uuid4())}], "delay": 5}],
            },
            "body.levels.0.delay",
        ),
    ],
)
async def test_unknown_field_is_422_naming_it(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    incident = "00000000-0000-0000-0000-000000000000"
    if "{incident}" in path:
        fired = await client.post(
            alertmanager_path,
            json={
                "version": "4",
                "groupKey": "unknown-field",
                "status": "firing",
                "alerts": [{"status": "firing", "labels": {"alertname": "Unknown field"}}],
            },
        )
        assert fired.status_code == 202, fired.text
        incident = fired.json()["incidents_opened"][0]
    response = await client.request(method, path.format(incident=incident), headers=auth, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["field"] == field
    assert "unknown field" in problem["detail"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/services", {"name": "a\u0000b"}, "body.name"),
        (
            "/v1/users",
            {"name": "Ann", "email": "ann@example.com", "time_zone": "UTC\u0000"},
            "body.time_zone",
        ),
        ("/v1/rules", {"name": "r", "actions": {"title": "a\u0000"}}, "body.actions.title"),
        (
            "/v1/rules",
            {"name": "r", "conditions": {"cel": "summary == '\u0000'"}},
            "body.conditions.cel",
        ),
    ],
)
async def test_nul_character_is_422_naming_it(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    response = await client.post(path, headers=auth, json=body)

    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert "NUL character" in response.json()["detail"]


@pytest.mark.asyncio
async def test_nul_in_free_form_settings_is_422(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any]
) -> None:
    user = demo["users"][0]["id"]
    response = await client.post(
        f"/v1/users/{user}/contact-methods",
        headers=auth,
        json={"kind": "log", "address": "x", "settings": {"k\u0000": 1}},
    )

    assert response.status_code == 422, response.text
    assert response.json()["field"] == "body.settings"


@pytest.mark.asyncio
async def test_lone_surrogate_key_is_4xx(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any]
) -> None:
    user = demo["users"][0]["id"]
    response = await client.post(
        f"/v1/users/{user}/contact-methods",
        headers={**auth, "content-type": "application/json"},
        content=b'{"kind": "log", "address": "x", "settings": {"\\ud800": 1}}',
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["field"] == "body.settings"
    assert "unpaired surrogate (\\ud800)" in response.json()["detail"]


@pytest.mark.asyncio
async def test_body_without_json_content_type_says_so(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/services",
        headers={**auth, "content-type": "application/x-www-form-urlencoded"},
        content=b'{"name": "x"}',
    )

    assert response.status_code == 422, response.text
    assert response.json()["field"] == "body"
    assert "Content-Type: application/json" in response.json()["detail"]
    assert "application/x-www-form-urlencoded" in response.json()["detail"]


@pytest.mark.asyncio
async def test_huge_integer_in_v1_body_is_named(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/services",
        headers={**auth, "content-type": "application/json"},
        content=b'{"name": "x", "reopen_window_seconds": ' + b"9" * 5000 + b"}",
    )

    assert response.status_code == 400, response.text
    assert response.json()["field"] == "body"
    assert "more than 4,300 digits" in response.json()["detail"]
