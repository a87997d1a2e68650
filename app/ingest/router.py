from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi import APIRouter, Request, status
from pydantic import BaseModel

from app.api.deps import RawConnectionDep, SettingsDep, read_body
from app.core.config import Settings
from app.core.db import run_in_transaction
from app.core.errors import BadRequest, problem_responses
from app.core.logging import get_logger
from app.core.time import utcnow
from app.incidents.events import AlertEvent
from app.incidents.ingest import IngestResult, ingest_events
from app.ingest.integrations import resolve_integration
from app.ingest.parsers import alertmanager
from app.ingest.parsers.common import IngestLimits, ParseError
from app.ingest.schemas import AlertmanagerWebhook, IngestAccepted

router = APIRouter(
    prefix="/ingest", tags=["ingest"], responses=problem_responses(400, 404, 413, 422, 503)
)
log = get_logger(__name__)

INGEST_ERRORS = problem_responses(400, 401, 404, 413, 422, 503)

Parser = Callable[[bytes, IngestLimits], list[AlertEvent]]


def limits_from(settings: Settings) -> IngestLimits:
    return IngestLimits(
        max_alerts=settings.ingest_max_alerts,
        max_labels=settings.ingest_max_labels,
        max_label_length=settings.ingest_max_label_length,
        max_summary_length=settings.ingest_max_summary_length,
    )


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """Describe a body that the endpoint reads as raw bytes, for the OpenAPI document."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


def parse_or_reject(parser: Parser, body: bytes, settings: Settings) -> list[AlertEvent]:
    try:
        return parser(body, limits_from(settings))
    except ParseError as exc:
        raise BadRequest(f"{exc.field}: {exc.message}", field=exc.field) from exc


async def accept_events(
    connection: asyncpg.Connection, key: str, kind: str, events: list[AlertEvent]
) -> IngestResult:
    """Resolve the integration and apply the events in one committed transaction."""

    async def work(conn: asyncpg.Connection) -> IngestResult:
        context = await resolve_integration(conn, key, kind=kind)
        return await ingest_events(conn, context, events, utcnow())

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
    )


@router.post(
    "/alertmanager/{integration_key}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestAccepted,
    responses=INGEST_ERRORS,
    openapi_extra=documented_body(AlertmanagerWebhook),
    summary="Receive a Prometheus Alertmanager webhook",
)
async def ingest_alertmanager(
    integration_key: str,
    request: Request,
    connection: RawConnectionDep,
    settings: SettingsDep,
) -> IngestAccepted:
    """Point an Alertmanager `webhook_configs` receiver at this URL. Each alert's fingerprint is
    its dedup key and the alerts of one `groupKey` form one incident. Returns 202 once the
    events are committed."""
    body = await read_body(request, settings.ingest_max_body_bytes)
    events = parse_or_reject(alertmanager.parse, body, settings)
    result = await accept_events(connection, integration_key, "alertmanager", events)
    return accepted(events, result)
