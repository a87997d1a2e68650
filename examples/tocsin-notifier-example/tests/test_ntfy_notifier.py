"""The example notifier against a stand-in ntfy server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tocsin_notifier_example import NtfyNotifier

from app.notify.base import ContactInput, InvalidContact, Message, NotifierContext, Target

TOKEN = "tk_example_token"


class FakeNtfy:
    """Accepts JSON publishes at / with the bearer token, as ntfy does."""

    def __init__(self) -> None:
        self.published: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.status = 200

    async def publish(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        self.published.append((dict(request.headers), body))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"code": 40101, "error": "unauthorized"}, status_code=401)
        if self.status != 200:
            return JSONResponse({"error": "unavailable"}, status_code=self.status)
        return JSONResponse({"id": "abc123", "topic": body["topic"], "event": "message"})


@pytest_asyncio.fixture
async def ntfy() -> AsyncIterator[tuple[FakeNtfy, str]]:
    fake = FakeNtfy()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = Starlette(routes=[Route("/", fake.publish, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def page(priority: str = "P1") -> Message:
    return Message(
        notification_id="n-1",
        idempotency_key="k-1",
        event="incident.triggered",
        incident={
            "number": 7,
            "title": "Checkout errors",
            "status": "triggered",
            "priority": priority,
            "urgency": "high",
            "service": {"name": "checkout"},
        },
        recipient={"name": "Alice"},
        links={"acknowledge": "https://tocsin.test/a/1", "view": "https://tocsin.test/i/7"},
    )


@pytest.mark.asyncio
async def test_publishes_json_with_actions(ntfy: tuple[FakeNtfy, str]) -> None:
    fake, url = ntfy
    async with httpx.AsyncClient() as http:
        notifier = NtfyNotifier(
            NotifierContext(
                http=http, user_agent="test", options={"server_url": url, "token": TOKEN}
            )
        )
        result = await notifier.send(page(), Target(kind="ntfy", address="oncall-alice"))

    assert result.ok
    [(headers, body)] = fake.published
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert body["topic"] == "oncall-alice"
    assert body["title"] == "[P1] Triggered: #7 Checkout errors"
    assert body["priority"] == 5
    assert body["tags"] == ["rotating_light"]
    assert body["click"] == "https://tocsin.test/i/7"
    assert [action["label"] for action in body["actions"]] == ["Acknowledge", "View"]


@pytest.mark.asyncio
async def test_503_is_retryable_and_401_is_not(ntfy: tuple[FakeNtfy, str]) -> None:
    fake, url = ntfy
    fake.status = 503
    async with httpx.AsyncClient() as http:
        good = NtfyNotifier(
            NotifierContext(http=http, user_agent="t", options={"server_url": url, "token": TOKEN})
        )
        bad = NtfyNotifier(NotifierContext(http=http, user_agent="t", options={"server_url": url}))
        unavailable = await good.send(page(), Target(kind="ntfy", address="t"))
        unauthorized = await bad.send(page(), Target(kind="ntfy", address="t"))

    assert (unavailable.ok, unavailable.retryable, unavailable.status_code) == (False, True, 503)
    assert (unauthorized.ok, unauthorized.retryable, unauthorized.status_code) == (
        False,
        False,
        401,
    )


def test_topic_is_validated() -> None:
    with pytest.raises(InvalidContact) as error:
        NtfyNotifier.validate_contact(ContactInput(address="no spaces", secret=None, settings={}))
    assert error.value.field == "address"


@pytest.mark.asyncio
async def test_unknown_option_is_reported() -> None:
    async with httpx.AsyncClient() as http:
        notifier = NtfyNotifier(
            NotifierContext(http=http, user_agent="t", options={"sever_url": "x"})
        )
    assert notifier.options_error is not None
    assert "TOCSIN_NOTIFIERS__NTFY__SEVER_URL" in notifier.options_error
