from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.notify.limits import Limit, limits_for, next_free_at, parse_limits
from tests.support import fakes
from tests.support.jobs import drain_jobs, queued_jobs
from tests.support.paging import add_contact_method, alertmanager_payload, paging_context
from tests.support.receiver import Receiver
from tests.support.verification import code_from_receiver, verify_contact_method

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "storm-test-token"
STORM_SIZE = 500


def test_parse_limits_sorts_by_window() -> None:
    assert parse_limits("11/1h, 5/15m") == (
        Limit(5, timedelta(minutes=15)),
        Limit(11, timedelta(hours=1)),
    )


@pytest.mark.parametrize("value", ["off", "", "none"])
def test_parse_limits_off(value: str) -> None:
    assert parse_limits(value) == ()


@pytest.mark.parametrize("value", ["5", "5/15", "0/1m", "5/0m", "5/8d", "five/1m"])
def test_parse_limits_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="invalid throttle"):
        parse_limits(value)


def test_limits_for_prefers_contact_then_instance_then_default() -> None:
    assert limits_for("sms", {}, {}) == parse_limits("5/15m,11/1h")
    assert limits_for("sms", {}, {"sms": {"throttle": "2/1m"}}) == parse_limits("2/1m")
    assert limits_for("sms", {"throttle": "off"}, {"sms": {"throttle": "2/1m"}}) == ()
    assert limits_for("voice", {}, {}) == parse_limits("3/15m")
    assert limits_for("slack", {}, {}) == ()


def test_next_free_at_is_none_below_the_limit() -> None:
    slots = [NOW - timedelta(minutes=minute) for minute in (1, 2, 3, 4)]
    assert next_free_at(slots, NOW, parse_limits("5/15m")) is None


def test_next_free_at_waits_for_the_oldest_slot() -> None:
    slots = [NOW - timedelta(minutes=minute) for minute in (1, 2, 3, 4, 10)]
    assert next_free_at(slots, NOW, parse_limits("5/15m")) == NOW + timedelta(minutes=5)


def test_next_free_at_two_limits() -> None:
    # Eleven slots in the last hour, none in the last 15 minutes: the hourly limit binds.
    slots = [NOW - timedelta(minutes=16 + 4 * index) for index in range(11)]
    free_at = next_free_at(slots, NOW, parse_limits("5/15m,11/1h"))
    assert free_at == max(slots) - timedelta(minutes=40) + timedelta(hours=1)


def test_slots_outside_the_window_do_not_count() -> None:
    slots = [NOW - timedelta(minutes=15), NOW - timedelta(hours=2)]
    assert next_free_at(slots, NOW, parse_limits("1/15m")) is None


@pytest.mark.asyncio
async def test_sms_storm_sends_throttle_plus_digest(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    receiver.respond = fakes.twilio_api(TWILIO_SID, TWILIO_TOKEN)
    method = await add_contact_method(client, auth, demo, kind="sms", address="+14155550123")
    options = {
        "sms": {
            "api_base_url": receiver.base_url,
            "account_sid": TWILIO_SID,
            "auth_token": TWILIO_TOKEN,
            "from_number": "+14155550100",
        }
    }
    await verify_contact_method(
        app,
        client,
        auth,
        raw_db,
        method["id"],
        options=options,
        read_code=code_from_receiver(receiver),
    )
    for index in range(STORM_SIZE):
        response = await client.post(
            alertmanager_path, content=alertmanager_payload(f"Storm{index}", f"Storm {index}")
        )
        assert response.status_code == 202
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, options)
        await drain_jobs(raw_db, context, limit=4 * STORM_SIZE)
        sent_before_digest = len(receiver.requests)
        digest_jobs = [
            job for job in await queued_jobs(raw_db) if job["entrypoint"] == "notification.digest"
        ]
        assert len(digest_jobs) == 1
        # The digest waits until the 15-minute window has room again.
        assert timedelta(minutes=14) < digest_jobs[0]["due_in"] <= timedelta(minutes=15)
        await drain_jobs(raw_db, context, include_delayed=True, limit=4 * STORM_SIZE)

    assert sent_before_digest == 5
    assert len(receiver.requests) == 6
    digest = receiver.requests[-1].form()["Body"]
    assert digest.startswith(f"Tocsin: {STORM_SIZE - 5} notifications held back")
    # The link opens the responder pages, which a phone can show.
    assert digest.rstrip().endswith("/oncall")
    statuses = await raw_db.fetch(
        "SELECT status, event, count(*) AS n FROM notifications "
        "WHERE contact_method_id = $1 GROUP BY status, event ORDER BY status, event",
        method["id"],
    )
    assert [(row["status"], row["event"], row["n"]) for row in statuses] == [
        ("sent", "incident.triggered", 5),
        ("sent", "notification.digest", 1),
        ("throttled", "incident.triggered", STORM_SIZE - 5),
    ]
    summarised = await raw_db.fetchval(
        "SELECT count(*) FROM notifications WHERE digest_id IS NOT NULL"
    )
    assert summarised == STORM_SIZE - 5
    message = json.loads(
        await raw_db.fetchval(
            "SELECT message FROM notifications WHERE event = 'notification.digest'"
        )
    )
    assert len(message["digest"]) == STORM_SIZE - 5
    held_timeline = await raw_db.fetchval(
        "SELECT count(*) FROM timeline_entries WHERE kind = 'notification.throttled'"
    )
    assert held_timeline == STORM_SIZE - 5


@pytest.mark.asyncio
async def test_throttle_can_be_set_per_contact_method(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    await add_contact_method(
        client, auth, demo, kind="webhook", address=receiver.url, settings={"throttle": "2/1h"}
    )
    for index in range(4):
        response = await client.post(
            alertmanager_path, content=alertmanager_payload(f"Hook{index}", f"Hook {index}")
        )
        assert response.status_code == 202
    async with httpx.AsyncClient() as http:
        await drain_jobs(raw_db, paging_context(app, http), include_delayed=True)

    events = [json.loads(request.body)["event"] for request in receiver.requests]
    assert events == ["incident.triggered", "incident.triggered", "notification.digest"]
    digest = json.loads(receiver.requests[-1].body)["digest"]
    assert [item["title"] for item in digest] == ["Hook 2", "Hook 3"]
    assert [item["status"] for item in digest] == ["triggered", "triggered"]


@pytest.mark.asyncio
async def test_invalid_throttle_is_rejected(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any]
) -> None:
    user_id = demo["users"][0]["id"]
    response = await client.post(
        f"/v1/users/{user_id}/contact-methods",
        json={"kind": "sms", "address": "+14155550123", "settings": {"throttle": "5 per hour"}},
        headers=auth,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "settings.throttle"
    assert "COUNT/WINDOW" in response.json()["detail"]
