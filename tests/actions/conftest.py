"""Fixtures for action tests: an incident that paged the demo responder, and its links."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from app.core.config import Settings
from app.incidents.paging import PagingContext
from tests.conftest import payload_bytes
from tests.support.jobs import drain_jobs

SLACK_SIGNING_SECRET = "slack-signing-secret-for-tests"
TWILIO_AUTH_TOKEN = "twilio-auth-token-for-tests"
SMS_NUMBER = "+1 (415) 555-0100"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "actions": settings.actions.model_copy(
                update={
                    "slack_signing_secret": SecretStr(SLACK_SIGNING_SECRET),
                    "twilio_auth_token": SecretStr(TWILIO_AUTH_TOKEN),
                    # Slack's response_url points at a local receiver in these tests.
                    "slack_response_url_prefix": "http://127.0.0.1:",
                }
            )
        }
    )


@dataclass
class PagedIncident:
    id: uuid.UUID
    number: int
    user_id: uuid.UUID
    links: dict[str, str]

    def path(self, action: str) -> str:
        match = re.match(r"https?://[^/]+(/a/[A-Za-z0-9_-]+)$", self.links[action])
        assert match, self.links[action]
        return match.group(1)


async def page_incident(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> PagedIncident:
    """Post an Alertmanager alert and run the jobs that page the demo responder."""
    response = await client.post(
        alertmanager_path, content=payload_bytes("alertmanager/firing-two-alerts.json")
    )
    assert response.status_code == 202, response.text
    await drain_jobs(raw_db, paging)
    row = await raw_db.fetchrow(
        "SELECT n.incident_id, n.user_id, n.message, i.number FROM notifications n "
        "JOIN incidents i ON i.id = n.incident_id "
        "WHERE n.event = 'incident.triggered' ORDER BY n.created_at LIMIT 1"
    )
    assert row is not None, "no page was created"
    message: dict[str, Any] = json.loads(row["message"])
    return PagedIncident(
        id=row["incident_id"], number=row["number"], user_id=row["user_id"], links=message["links"]
    )


@pytest_asyncio.fixture
async def paged(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
) -> PagedIncident:
    return await page_incident(client, alertmanager_path, raw_db, paging)


async def incident_status(raw_db: asyncpg.Connection, incident_id: uuid.UUID) -> str:
    status: str = await raw_db.fetchval("SELECT status FROM incidents WHERE id = $1", incident_id)
    return status
