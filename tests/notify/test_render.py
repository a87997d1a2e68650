"""Payload limits per channel, checked on the rendered payloads (no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from app.core.text import utf16_length
from app.notify.adapters.discord import DiscordNotifier
from app.notify.adapters.slack import HEADER_MAX_CHARS, SlackNotifier
from app.notify.adapters.telegram import TEXT_MAX_UNITS, TelegramNotifier
from app.notify.adapters.webhook import WebhookNotifier
from app.notify.base import Message, NotifierContext, Target
from app.notify.render import DIGEST_LISTED, digest_lines
from tests.support.receiver import free_port

# 🔥 is two UTF-16 units; a family emoji is one grapheme of five code points.
FIRE = "\U0001f525"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"


@pytest_asyncio.fixture
async def context() -> AsyncIterator[NotifierContext]:
    async with httpx.AsyncClient(timeout=0.5) as http:
        yield NotifierContext(http=http, user_agent="test")


def page(title: str) -> Message:
    return Message(
        notification_id="n",
        idempotency_key="k",
        event="incident.triggered",
        incident={
            "id": "i",
            "number": 3,
            "title": title,
            "status": "triggered",
            "priority": "P2",
            "urgency": "high",
            "service": {"name": "api"},
        },
        recipient={"name": "Alice"},
        links={"view": "https://tocsin.test/i/3"},
    )


@pytest.mark.asyncio
async def test_slack_header_is_cut_on_graphemes(context: NotifierContext) -> None:
    payload = SlackNotifier(context).render(page(FAMILY * 100), Target("slack", "C1"))
    header = payload["blocks"][0]["text"]["text"]
    assert len(header) <= HEADER_MAX_CHARS
    assert header.endswith(FAMILY + "\u2026")


@pytest.mark.asyncio
async def test_telegram_text_fits_in_utf16_units(context: NotifierContext) -> None:
    message = page("x")
    long_digest = Message.from_dict(
        {
            **message.to_dict(),
            "event": "notification.digest",
            "digest": [
                {"event": "incident.triggered", "number": n, "title": FIRE * 200} for n in range(40)
            ],
        }
    )
    payload = TelegramNotifier(context).render(long_digest, Target("telegram", "1"))
    visible = payload["text"].replace("<b>", "").replace("</b>", "")
    assert utf16_length(visible) <= TEXT_MAX_UNITS


@pytest.mark.asyncio
async def test_discord_embed_title_limit(context: NotifierContext) -> None:
    payload = DiscordNotifier(context).render(page("t" * 1000), Target("discord", "x"))
    assert len(payload["embeds"][0]["title"]) == 256
    assert len(payload["content"]) <= 2000


def test_digest_lists_the_first_incidents() -> None:
    message = Message(
        notification_id="d",
        idempotency_key="d",
        event="notification.digest",
        incident={},
        recipient={},
        digest=[
            {"event": "incident.triggered", "number": n, "title": f"T{n}", "priority": "P1"}
            for n in range(1, DIGEST_LISTED + 6)
        ],
    )
    message.digest[1]["status"] = "resolved"
    lines = digest_lines(message)
    assert lines[0] == "Triggered: #1 T1 [P1]"
    assert lines[1] == "Triggered: #2 T2 [P1] (now resolved)"
    assert lines[-1] == "... and 5 more"
    assert len(lines) == DIGEST_LISTED + 1


@pytest.mark.asyncio
async def test_refused_connection_is_retryable(context: NotifierContext) -> None:
    target = Target("webhook", f"http://127.0.0.1:{free_port()}/hook", secret="s" * 16)
    result = await WebhookNotifier(context).send(page("x"), target)
    assert result.ok is False
    assert result.retryable is True
    assert result.error is not None
    assert result.error.startswith("connection failed")


@pytest.mark.asyncio
async def test_timeout_is_retryable(context: NotifierContext) -> None:
    accepted = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        # Read until the client gives up and closes the connection; never respond.
        await reader.read()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        target = Target("webhook", f"http://127.0.0.1:{port}/hook")
        result = await WebhookNotifier(context).send(page("x"), target)
    finally:
        server.close()
    assert accepted.is_set()
    assert result.ok is False
    assert result.retryable is True
    assert result.error == "timed out"


@pytest.mark.asyncio
async def test_unsupported_scheme_is_permanent(context: NotifierContext) -> None:
    result = await WebhookNotifier(context).send(page("x"), Target("webhook", "ftp://h/x"))
    assert result.ok is False
    assert result.retryable is False
