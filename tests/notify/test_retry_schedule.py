"""The delivery retry schedule: how long a page keeps trying when its receiver is down."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.notify.delivery import (
    BACKOFF_JITTER,
    BACKOFF_MAX_SECONDS,
    backoff_seconds,
    retry_delay,
    retry_schedule,
)
from tests.support.jobs import advance_clock, drain_jobs, queued_jobs
from tests.support.paging import (
    add_contact_method,
    attempt_rows,
    notification_rows,
    paging_context,
    trigger,
)
from tests.support.receiver import Receiver

# The attempt times listed in docs/notifiers.md, in seconds after the first attempt.
DOCUMENTED_SCHEDULE = [0, 2, 6, 14, 30, 62, 126, 254, 510, 810, 1110, 1410, 1710, 2010]


def test_default_schedule_spans_half_hour() -> None:
    schedule = retry_schedule(Settings().delivery_max_attempts)
    assert schedule == DOCUMENTED_SCHEDULE
    assert len(schedule) == Settings().delivery_max_attempts
    assert timedelta(minutes=30) <= timedelta(seconds=schedule[-1]) <= timedelta(minutes=35)


def test_backoff_doubles_then_caps() -> None:
    waits = [backoff_seconds(attempt) for attempt in range(1, 14)]
    assert waits[:8] == [2, 4, 8, 16, 32, 64, 128, 256]
    assert waits[8:] == [BACKOFF_MAX_SECONDS] * 5


def test_retry_delay_jitter_bounds() -> None:
    for attempt in (1, 5, 12):
        nominal = backoff_seconds(attempt)
        for _ in range(50):
            seconds = retry_delay(attempt, None).total_seconds()
            assert nominal * (1 - BACKOFF_JITTER) <= seconds
            assert seconds <= nominal * (1 + BACKOFF_JITTER)


def test_retry_after_replaces_backoff() -> None:
    assert retry_delay(3, 120.0) == timedelta(seconds=120)
    assert retry_delay(13, 0.0) == timedelta(0)


@pytest.mark.asyncio
async def test_page_outlasts_half_hour_outage(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    attempts = app.state.settings.delivery_max_attempts
    await add_contact_method(client, auth, demo, kind="webhook", address=receiver.url)
    receiver.statuses.extend([503] * (attempts - 1))
    waited = timedelta(0)
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http)
        await trigger(client, alertmanager_path, "ReceiverDown", "Receiver down")
        await drain_jobs(raw_db, context)
        for _ in range(attempts - 1):
            [retry] = [
                job
                for job in await queued_jobs(raw_db)
                if job["entrypoint"] == "notification.deliver"
            ]
            waited += retry["due_in"]
            await advance_clock(raw_db, retry["due_in"] + timedelta(seconds=1))
            await drain_jobs(raw_db, context)

    assert len(receiver.requests) == attempts
    [notification] = await notification_rows(raw_db, "webhook")
    assert notification["status"] == "sent"
    outcomes = [row["outcome"] for row in await attempt_rows(raw_db, notification["id"])]
    assert outcomes == ["retry"] * (attempts - 1) + ["success"]
    # The waits follow the documented schedule, each shortened by at most the jitter.
    assert waited >= timedelta(seconds=DOCUMENTED_SCHEDULE[-1] * (1 - BACKOFF_JITTER))
