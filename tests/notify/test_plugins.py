"""The registry: built-in notifiers and the example plugin, both found through entry points."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.notify import registry
from app.notify.base import NotifierContext
from tests.support.paging import add_contact_method, page_links, page_once, paging_context
from tests.support.receiver import Receiver

BUILT_INS = {
    "discord",
    "email",
    "log",
    "mattermost",
    "slack",
    "sms",
    "teams",
    "telegram",
    "webhook",
}


def test_built_ins_and_example_plugin_are_registered() -> None:
    kinds = set(registry.available_kinds())
    assert kinds >= BUILT_INS
    # make test installs examples/tocsin-notifier-example into the environment.
    assert "ntfy" in kinds
    assert registry.notifier_class("ntfy").__module__ == "tocsin_notifier_example"


@pytest.mark.asyncio
async def test_broken_plugin_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry.entry_points

    def with_broken(group: str) -> list[EntryPoint]:
        broken = EntryPoint(name="broken", value="no_such_module:Notifier", group=group)
        return [*real(group=group), broken]

    monkeypatch.setattr(registry, "entry_points", with_broken)
    async with httpx.AsyncClient() as http:
        notifiers = registry.load_notifiers(NotifierContext(http=http, user_agent="test"))
    assert "broken" not in notifiers
    assert set(notifiers) >= BUILT_INS


@pytest.mark.asyncio
async def test_misspelt_option_is_reported_at_load() -> None:
    async with httpx.AsyncClient() as http:
        notifiers = registry.load_notifiers(
            NotifierContext(http=http, user_agent="test"),
            {"telegram": {"bot_tokn": "123:abc"}},
        )

    [warning] = registry.misconfigured(notifiers)
    assert warning.startswith("telegram notifier is misconfigured: ")
    assert "TOCSIN_NOTIFIERS__TELEGRAM__BOT_TOKN" in warning


@pytest.mark.asyncio
async def test_example_plugin_delivers_a_page(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    user_id = demo["users"][0]["id"]
    rejected = await client.post(
        f"/v1/users/{user_id}/contact-methods",
        json={"kind": "ntfy", "address": "not a topic"},
        headers=auth,
    )
    assert rejected.status_code == 422
    assert rejected.json()["field"] == "address"

    await add_contact_method(client, auth, demo, kind="ntfy", address="oncall-demo")
    options = {"ntfy": {"server_url": receiver.base_url, "token": "tk_test"}}
    async with httpx.AsyncClient() as http:
        await page_once(client, alertmanager_path, raw_db, paging_context(app, http, options))

    [request] = receiver.requests
    assert request.headers["authorization"] == "Bearer tk_test"
    body = json.loads(request.body)
    assert body["topic"] == "oncall-demo"
    assert body["title"] == "[P1] Triggered: #1 Disk full on db-1"
    assert body["click"] == (await page_links(raw_db, "ntfy"))["view"]
    status = await raw_db.fetchval("SELECT status FROM notifications WHERE notifier = 'ntfy'")
    assert status == "sent"
