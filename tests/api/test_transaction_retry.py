"""The /v1 route class that runs an endpoint again after a deadlock or serialization failure."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError

from app.api.retry import ENDPOINT_ATTEMPTS, TransactionRetryRoute, retryable_sqlstate
from app.api.router import api_router
from app.core.errors import PROBLEM_JSON, Conflict, install_error_handlers


def app_failing(times: int, error: Exception) -> tuple[FastAPI, list[int]]:
    """An app whose endpoint raises ``error`` on its first ``times`` calls."""
    calls: list[int] = []

    router = APIRouter(route_class=TransactionRetryRoute)

    @router.post("/v1/things")
    async def create_thing(body: dict[str, int]) -> dict[str, int]:
        calls.append(body["n"])
        if len(calls) <= times:
            raise error
        return {"calls": len(calls)}

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return app, calls


async def post(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as client:
        return await client.post("/v1/things", json={"n": 7})


@pytest.mark.asyncio
async def test_retry_succeeds_after_deadlock() -> None:
    app, calls = app_failing(ENDPOINT_ATTEMPTS - 1, asyncpg.DeadlockDetectedError("deadlock"))
    response = await post(app)
    assert response.status_code == 200
    assert response.json() == {"calls": ENDPOINT_ATTEMPTS}
    # Each attempt reads the same request body again.
    assert calls == [7] * ENDPOINT_ATTEMPTS


@pytest.mark.asyncio
async def test_retry_exhausted_gives_503() -> None:
    app, calls = app_failing(ENDPOINT_ATTEMPTS, asyncpg.SerializationError("conflict"))
    response = await post(app)
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "5"
    assert response.json()["code"] == "transaction_conflict"
    assert "40001" in response.json()["detail"]
    assert len(calls) == ENDPOINT_ATTEMPTS


@pytest.mark.asyncio
async def test_other_errors_are_not_retried() -> None:
    app, calls = app_failing(1, Conflict("The thing exists.", field="n"))
    response = await post(app)
    assert response.status_code == 409
    assert len(calls) == 1


def test_sqlstate_found_inside_sqlalchemy_error() -> None:
    wrapped = DBAPIError("SELECT 1", None, asyncpg.DeadlockDetectedError("deadlock"))
    assert retryable_sqlstate(wrapped) == "40P01"
    assert retryable_sqlstate(DBAPIError("SELECT 1", None, ValueError("x"))) is None


def routes_of(router: APIRouter) -> list[APIRoute]:
    routes: list[APIRoute] = []
    for route in router.routes:
        included = getattr(route, "original_router", None)
        if isinstance(included, APIRouter):
            routes += routes_of(included)
        elif isinstance(route, APIRoute):
            routes.append(route)
    return routes


def test_every_v1_route_retries() -> None:
    routes = routes_of(api_router)
    assert len(routes) > 50
    plain = [
        f"{sorted(route.methods)} {route.path}"
        for route in routes
        if not isinstance(route, TransactionRetryRoute)
    ]
    assert plain == [], "add route_class=TransactionRetryRoute to the router of these routes"
