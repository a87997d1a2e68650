"""Helpers for notifier tests: a contact method on the demo user, an incident, a worker context."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from app.core.security import SecretBox
from app.incidents.paging import PagingContext
from app.notify.base import NotifierContext
from app.notify.registry import load_notifiers
from tests.support.jobs import drain_jobs


def paging_context(
    app: FastAPI,
    http: httpx.AsyncClient,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    max_attempts: int | None = None,
    smtp_factory: Any = None,
) -> PagingContext:
    """The job handlers' context with notifier options, as a worker would build it."""
    settings = app.state.settings
    if options is not None:
        settings = settings.model_copy(update={"notifiers": dict(options)})
    if max_attempts is not None:
        settings = settings.model_copy(update={"delivery_max_attempts": max_attempts})
    notifier_context = NotifierContext(
        http=http, user_agent="Tocsin/test", smtp_factory=smtp_factory
    )
    return PagingContext(
        sessionmaker=app.state.sessionmaker,
        settings=settings,
        notifiers=load_notifiers(notifier_context, settings.notifiers),
        box=SecretBox(settings.signing_key()),
    )


async def add_contact_method(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    *,
    kind: str,
    address: str,
    settings: dict[str, Any] | None = None,
    secret: str | None = None,
    only: bool = True,
) -> dict[str, Any]:
    """Add a contact method to the demo responder through the API.

    With ``only``, the demo's console (log) contact method is disabled so pages go to the
    new one alone.
    """
    user_id = demo["users"][0]["id"]
    if only:
        methods = await client.get(f"/v1/users/{user_id}/contact-methods", headers=auth)
        for method in methods.json()["items"]:
            await client.patch(
                f"/v1/contact-methods/{method['id']}", json={"enabled": False}, headers=auth
            )
    body: dict[str, Any] = {"kind": kind, "name": f"test {kind}", "address": address}
    if settings is not None:
        body["settings"] = settings
    if secret is not None:
        body["secret"] = secret
    response = await client.post(f"/v1/users/{user_id}/contact-methods", json=body, headers=auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def alertmanager_payload(group: str, summary: str, *, status: str = "firing") -> bytes:
    fingerprint = hashlib.sha1(group.encode()).hexdigest()[:16]
    labels = {"alertname": group, "service": "checkout", "severity": "critical"}
    payload = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{group}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "tocsin",
        "groupLabels": {"alertname": group},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": summary},
                "startsAt": "2026-11-30T08:12:41.512Z",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-30T09:00:00Z",
                "generatorURL": "http://prometheus.test:9090/graph",
                "fingerprint": fingerprint,
            }
        ],
    }
    return json.dumps(payload).encode()


async def trigger(
    client: httpx.AsyncClient, alertmanager_path: str, group: str, summary: str
) -> str:
    """Post one firing alert; return the id of the incident it opened."""
    response = await client.post(alertmanager_path, content=alertmanager_payload(group, summary))
    assert response.status_code == 202, response.text
    opened = response.json()["incidents_opened"]
    assert len(opened) == 1, response.text
    return str(opened[0])


async def page_once(
    client: httpx.AsyncClient,
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    context: PagingContext,
    *,
    summary: str = "Disk full on db-1",
    group: str = "DiskFull",
) -> str:
    """Trigger an incident and run every job it queues, retries included."""
    incident_id = await trigger(client, alertmanager_path, group, summary)
    await drain_jobs(raw_db, context, include_delayed=True)
    return incident_id


async def notification_rows(raw_db: asyncpg.Connection, notifier: str) -> list[asyncpg.Record]:
    return list(
        await raw_db.fetch(
            "SELECT * FROM notifications WHERE notifier = $1 ORDER BY created_at, id", notifier
        )
    )


async def attempt_rows(raw_db: asyncpg.Connection, notification_id: Any) -> list[asyncpg.Record]:
    return list(
        await raw_db.fetch(
            "SELECT * FROM delivery_attempts WHERE notification_id = $1 ORDER BY attempt",
            notification_id,
        )
    )


async def page_links(raw_db: asyncpg.Connection, notifier: str) -> dict[str, str]:
    """The action links carried by the first page sent through ``notifier``."""
    row = (await notification_rows(raw_db, notifier))[0]
    message = row["message"]
    if isinstance(message, str):
        message = json.loads(message)
    links: dict[str, str] = message["links"]
    return links
