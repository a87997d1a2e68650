"""Steps every ingest endpoint shares: find the key, read and parse the body, commit events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from app.core.config import Settings
from app.core.errors import BadRequest, Unauthorized
from app.core.logging import get_logger
from app.incidents.events import AlertEvent
from app.incidents.ingest import IngestResult
from app.ingest.batcher import IngestBatcher, IntegrationCheck
from app.ingest.parsers.common import IngestLimits, ParseError
from app.ingest.schemas import IngestAccepted

log = get_logger(__name__)

Parser = Callable[[bytes, IngestLimits], list[AlertEvent]]

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


# Advice in the 413 response of ingest endpoints. Batch formats can split their alerts,
# while formats of one event per request can only send shorter fields.
BATCH_BODY_ADVICE = "Send fewer alerts per request, or raise TOCSIN_INGEST_MAX_BODY_BYTES."
EVENT_BODY_ADVICE = "Shorten the event's fields, or raise TOCSIN_INGEST_MAX_BODY_BYTES."


def parse_or_reject(parser: Parser, body: bytes, settings: Settings) -> list[AlertEvent]:
    try:
        return parser(body, limits_from(settings))
    except ParseError as exc:
        raise BadRequest(f"{exc.field}: {exc.message}", field=exc.field) from exc


def get_batcher(request: Request) -> IngestBatcher:
    batcher: IngestBatcher = request.app.state.ingest_batcher
    return batcher


BatcherDep = Annotated[IngestBatcher, Depends(get_batcher)]


async def accept_events(
    batcher: IngestBatcher,
    key: str,
    kind: str,
    events: list[AlertEvent],
    *,
    check: IntegrationCheck | None = None,
) -> IngestResult:
    """Resolve the integration and apply the events; return once they are committed.

    Concurrent requests for one integration share a transaction (see ``IngestBatcher``).
    """
    result = await batcher.submit(key, kind, events, check)
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
