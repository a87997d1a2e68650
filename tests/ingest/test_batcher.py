"""Group commit: concurrent requests for one integration share a transaction."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from app.core.errors import Unauthorized
from app.incidents.events import AlertEvent, EventAction
from app.incidents.ingest import IngestResult
from app.ingest import batcher as batcher_module
from app.ingest.batcher import IngestBatcher, split_result

pytestmark = pytest.mark.asyncio


def trigger(key: str, group: str | None = None) -> AlertEvent:
    return AlertEvent(
        action=EventAction.trigger, dedup_key=key, summary=f"alert {key}", group_key=group
    )


def resolve(key: str) -> AlertEvent:
    return AlertEvent(action=EventAction.resolve, dedup_key=key, summary=f"alert {key}")


def alertmanager_key(demo: dict[str, Any]) -> str:
    key: str = demo["services"][0]["integrations"]["alertmanager"]["key"]
    return key


async def test_split_result_credits_first_request() -> None:
    opened, other = uuid.uuid4(), uuid.uuid4()
    result = IngestResult(incidents_opened=[opened])
    result.count(
        [
            ("alert.created", uuid.uuid4(), opened),
            ("alert.created", uuid.uuid4(), opened),
            ("alert.updated", uuid.uuid4(), other),
            ("ignored.no_open_alert", None, None),
        ]
    )
    first, second, third = split_result(result, [1, 2, 1])
    assert first.incidents_opened == [opened]
    assert first.alerts_created == 1
    assert second.incidents_opened == []
    assert second.incidents_updated == [opened, other]
    assert second.alerts_created == 1
    assert second.alerts_updated == 1
    assert third.events_ignored == 1
    assert third.incidents == []


async def test_concurrent_requests_share_commits(
    app: FastAPI, demo: dict[str, Any], raw_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = 0
    real = batcher_module.ingest_events

    async def counting(*args: Any, **kwargs: Any) -> IngestResult:
        nonlocal commits
        commits += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(batcher_module, "ingest_events", counting)
    batcher: IngestBatcher = app.state.ingest_batcher
    key = alertmanager_key(demo)
    results = await asyncio.gather(
        *(
            batcher.submit(key, "alertmanager", [trigger(f"k{index}", "shared")])
            for index in range(40)
        )
    )
    # The first request commits alone; the others queue behind it and commit together.
    assert commits < 40
    assert sum(result.alerts_created for result in results) == 40
    assert sum(len(result.incidents_opened) for result in results) == 1
    incident_ids = {incident for result in results for incident in result.incidents}
    assert len(incident_ids) == 1
    assert await raw_db.fetchval("SELECT alert_count FROM incidents") == 40


async def test_hot_key_repeats_are_counted(
    app: FastAPI, demo: dict[str, Any], raw_db: asyncpg.Connection
) -> None:
    batcher: IngestBatcher = app.state.ingest_batcher
    key = alertmanager_key(demo)
    results = await asyncio.gather(
        *(batcher.submit(key, "alertmanager", [trigger("hot")]) for _ in range(30))
    )
    assert sum(result.alerts_created for result in results) == 1
    assert sum(result.alerts_updated for result in results) == 29
    assert await raw_db.fetchval("SELECT event_count FROM alerts") == 30
    assert await raw_db.fetchval("SELECT count(*) FROM events") == 30


async def test_trigger_then_resolve_in_one_group_keeps_order(
    app: FastAPI, demo: dict[str, Any], raw_db: asyncpg.Connection
) -> None:
    batcher: IngestBatcher = app.state.ingest_batcher
    key = alertmanager_key(demo)
    first, second = await asyncio.gather(
        batcher.submit(key, "alertmanager", [trigger("k")]),
        batcher.submit(key, "alertmanager", [resolve("k")]),
    )
    assert first.alerts_created == 1
    assert second.alerts_resolved == 1
    assert await raw_db.fetchval("SELECT status FROM alerts") == "resolved"


async def test_failing_request_does_not_fail_its_group(
    app: FastAPI, demo: dict[str, Any], raw_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batcher_module.ingest_events

    async def poisoned(connection: Any, context: Any, events: Any, now: Any) -> IngestResult:
        if any(event.dedup_key == "poison" for event in events):
            raise RuntimeError("poisoned batch")
        return await real(connection, context, events, now)

    monkeypatch.setattr(batcher_module, "ingest_events", poisoned)
    batcher: IngestBatcher = app.state.ingest_batcher
    key = alertmanager_key(demo)
    outcomes = await asyncio.gather(
        batcher.submit(key, "alertmanager", [trigger("a")]),
        batcher.submit(key, "alertmanager", [trigger("poison")]),
        batcher.submit(key, "alertmanager", [trigger("b")]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], RuntimeError)
    assert isinstance(outcomes[0], IngestResult)
    assert isinstance(outcomes[2], IngestResult)
    keys = await raw_db.fetch("SELECT dedup_key FROM alerts ORDER BY dedup_key")
    assert [row["dedup_key"] for row in keys] == ["a", "b"]


async def test_rejected_check_fails_only_its_request(
    app: FastAPI, demo: dict[str, Any], raw_db: asyncpg.Connection
) -> None:
    def reject(integration: Any) -> None:
        raise Unauthorized("bad signature", field="X-Tocsin-Signature")

    batcher: IngestBatcher = app.state.ingest_batcher
    key = alertmanager_key(demo)
    outcomes = await asyncio.gather(
        batcher.submit(key, "alertmanager", [trigger("a")]),
        batcher.submit(key, "alertmanager", [trigger("b")], reject),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], IngestResult)
    assert isinstance(outcomes[1], Unauthorized)
    assert await raw_db.fetchval("SELECT count(*) FROM alerts") == 1


async def test_unknown_key_fails_every_request(app: FastAPI, demo: dict[str, Any]) -> None:
    batcher: IngestBatcher = app.state.ingest_batcher
    outcomes = await asyncio.gather(
        *(batcher.submit("0" * 32, "alertmanager", [trigger(f"k{i}")]) for i in range(3)),
        return_exceptions=True,
    )
    assert all(type(outcome).__name__ == "NotFound" for outcome in outcomes)
