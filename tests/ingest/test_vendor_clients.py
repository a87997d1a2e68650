"""PagerDuty's and Opsgenie's official Python clients, pointed at a Tocsin on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import opsgenie_sdk
import pagerduty
import pytest
import pytest_asyncio
from fastapi import FastAPI

from tests.support.server import ServedApp, self_signed_certificate

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def tocsin_url(app: FastAPI) -> AsyncIterator[str]:
    async with ServedApp(app) as served:
        yield served.url


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


@pytest_asyncio.fixture
async def tocsin_https_url(app: FastAPI, certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    # The pagerduty client accepts only https:// base URLs.
    async with ServedApp(app, tls=certificate) as served:
        yield served.url


def pagerduty_client(
    url: str, key: str, certificate: tuple[Path, Path]
) -> pagerduty.EventsApiV2Client:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    return pagerduty.EventsApiV2Client(key, base_url=url, verify=trust)


async def incident_status(raw_db: asyncpg.Connection) -> str:
    status: str = await raw_db.fetchval("SELECT status FROM incidents")
    return status


async def test_pagerduty_client_trigger_acknowledge_resolve(
    tocsin_https_url: str,
    keys: dict[str, str],
    raw_db: asyncpg.Connection,
    certificate: tuple[Path, Path],
) -> None:
    client = pagerduty_client(tocsin_https_url, keys["pagerduty"], certificate)
    try:
        dedup_key = await asyncio.to_thread(
            client.trigger,
            "Disk usage on host-db-01 at 93%",
            "host-db-01",
            severity="error",
            custom_details={"used_percent": 93.4},
            links=[{"href": "https://monitoring.example.com/disk", "text": "Disk graph"}],
        )
        assert len(dedup_key) == 32
        assert await incident_status(raw_db) == "triggered"
        assert await raw_db.fetchval("SELECT severity FROM alerts") == "error"

        assert await asyncio.to_thread(client.acknowledge, dedup_key) == dedup_key
        assert await incident_status(raw_db) == "acknowledged"

        assert await asyncio.to_thread(client.resolve, dedup_key) == dedup_key
        assert await incident_status(raw_db) == "resolved"

        await asyncio.to_thread(
            client.send_change_event,
            payload={"summary": "Deployed v2.14.0", "source": "ci", "custom_details": {}},
        )
        assert await raw_db.fetchval("SELECT summary FROM change_events") == "Deployed v2.14.0"
    finally:
        client.close()


async def test_pagerduty_client_reads_invalid_event(
    tocsin_https_url: str, keys: dict[str, str], certificate: tuple[Path, Path]
) -> None:
    client = pagerduty_client(tocsin_https_url, keys["pagerduty"], certificate)
    try:
        with pytest.raises(pagerduty.HttpError) as error:
            await asyncio.to_thread(client.trigger, "x", "y", severity="apocalyptic")
        assert error.value.response.status_code == 400
        assert error.value.response.json()["status"] == "invalid event"
    finally:
        client.close()


def opsgenie_alerts(url: str, key: str) -> opsgenie_sdk.AlertApi:
    configuration = opsgenie_sdk.configuration.Configuration()
    configuration.host = url
    configuration.api_key["Authorization"] = key
    configuration.retry_enabled = False
    return opsgenie_sdk.AlertApi(api_client=opsgenie_sdk.api_client.ApiClient(configuration))


async def test_opsgenie_sdk_create_and_close_by_alias(
    tocsin_url: str, keys: dict[str, str], raw_db: asyncpg.Connection
) -> None:
    alerts = opsgenie_alerts(tocsin_url, keys["opsgenie"])
    payload = opsgenie_sdk.CreateAlertPayload(
        message="Queue depth of orders-consumer above 10000",
        alias="orders-consumer-queue-depth",
        description="Consumer lag keeps growing.",
        tags=["orders", "prod"],
        details={"queue": "orders.created"},
        entity="orders-consumer",
        source="queue-monitor",
        priority="P1",
    )
    created = await asyncio.to_thread(alerts.create_alert, create_alert_payload=payload)
    assert created.result == "Request will be processed"
    assert created.request_id
    assert await incident_status(raw_db) == "triggered"
    assert await raw_db.fetchval("SELECT priority FROM incidents") == "P1"

    closed = await asyncio.to_thread(
        alerts.close_alert,
        identifier="orders-consumer-queue-depth",
        identifier_type="alias",
        close_alert_payload=opsgenie_sdk.CloseAlertPayload(note="Lag back to normal"),
    )
    assert closed.request_id
    assert await incident_status(raw_db) == "resolved"
