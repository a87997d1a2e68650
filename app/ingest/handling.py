"""Steps every ingest endpoint shares: find the key, read and parse the body, commit events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from app.core.config import Settings
from app.core.db import run_in_transaction
from app.core.errors import BadRequest, Unauthorized
from app.core.logging import get_logger
from app.core.time import utcnow
from app.incidents.events import AlertEvent
from app.incidents.ingest import IngestResult, ingest_events
from app.ingest.integrations import ResolvedIntegration, find_integration
from app.ingest.parsers.common import IngestLimits, ParseError
from app.ingest.schemas import IngestAccepted
from app.rules.snapshot import known_revision

log = get_logger(__name__)

Parser = Callable[[bytes, IngestLimits], list[AlertEvent]]
# Runs after the integration is found and before its events are applied; raises to reject.
IntegrationCheck = Callable[[ResolvedIntegration], None]

integration_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="IntegrationKey",
    description="An integration key, for senders that cannot put it in the URL",
)


def limits_from(settings: Settings) -> IngestLimits:
    return IngestLimits(
        max_alerts=settings.ingest_max_alerts,
        max_labels=settings.ingest_max_labels,
        max_label_length=settings.ingest_max_label_length,
        max_summary_length=settings.ingest_max_summary_length,
    )


def documented_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """Describe a body that the endpoint reads as raw bytes, for the OpenAPI document."""
    return {
        "requestBody": {
            "required": required,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


def key_from_bearer(credentials: HTTPAuthorizationCredentials | None, path: str) -> str:
    """Return the integration key of an ``Authorization: Bearer`` header, or raise 401."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized(
            f"Missing integration key. Put it in the URL ({path}/<key>) or send "
            "Authorization: Bearer <key>.",
            field="integration_key",
        )
    return credentials.credentials


def parse_or_reject(parser: Parser, body: bytes, settings: Settings) -> list[AlertEvent]:
    try:
        return parser(body, limits_from(settings))
    except ParseError as exc:
        raise BadRequest(f"{exc.field}: {exc.message}", field=exc.field) from exc


async def accept_events(
    connection: asyncpg.Connection,
    key: str,
    kind: str,
    events: list[AlertEvent],
    *,
    check: IntegrationCheck | None = None,
) -> IngestResult:
    """Resolve the integration and apply the events in one committed transaction."""

    async def work(conn: asyncpg.Connection) -> IngestResult:
        integration = await find_integration(conn, key, kind=kind)
        if check is not None:
            check(integration)
        with known_revision(integration.rule_revision):
            return await ingest_events(conn, integration.context, events, utcnow())

    result = await run_in_transaction(connection, work)
    log.info(
        "ingest.accepted",
        kind=kind,
        events=len(events),
        alerts_created=result.alerts_created,
        alerts_resolved=result.alerts_resolved,
        incidents_opened=len(result.incidents_opened),
    )
    return result


def accepted(events: list[AlertEvent], result: IngestResult) -> IngestAccepted:
    return IngestAccepted(
        events_received=len(events),
        events_ignored=result.events_ignored,
        alerts_created=result.alerts_created,
        alerts_updated=result.alerts_updated,
        alerts_resolved=result.alerts_resolved,
        incidents=result.incidents,
        incidents_opened=result.incidents_opened,
        incidents_resolved=result.incidents_resolved,
        dedup_keys=list(dict.fromkeys(event.dedup_key for event in events)),
    )
