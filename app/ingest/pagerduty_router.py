"""PagerDuty's Events API v2 paths, so PagerDuty senders only change the host they post to.

Invalid events get PagerDuty's own 400 body, which PagerDuty's client libraries read. Key
errors (unknown, disabled, another format) and 413 stay problem+json like every other path.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from app.api.deps import RawConnectionDep, SettingsDep, read_body
from app.core.db import run_in_transaction
from app.core.errors import problem_responses
from app.core.logging import get_logger
from app.core.time import utcnow
from app.incidents.events import AlertEvent
from app.ingest.changes import record_change
from app.ingest.handling import (
    EVENT_BODY_ADVICE,
    BatcherDep,
    accept_events,
    documented_body,
    limits_from,
)
from app.ingest.integrations import find_integration
from app.ingest.parsers import pagerduty
from app.ingest.parsers.common import ParseError, load_json_object
from app.ingest.schemas import (
    PagerDutyAccepted,
    PagerDutyChangeEvent,
    PagerDutyEvent,
    PagerDutyInvalidEvent,
)

router = APIRouter()
log = get_logger(__name__)

INVALID_EVENT: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Invalid event, in PagerDuty's shape",
        "content": {
            "application/json": {
                "schema": {"$ref": f"#/components/schemas/{PagerDutyInvalidEvent.__name__}"}
            }
        },
    }
}
KEY_ERRORS = problem_responses(401, 404, 413, 503)


def invalid_event(error: ParseError) -> JSONResponse:
    log.info("ingest.rejected", kind="pagerduty", field=error.field, error=error.message)
    body = PagerDutyInvalidEvent(errors=[f"{error.field}: {error.message}"])
    return JSONResponse(body.model_dump(), status_code=status.HTTP_400_BAD_REQUEST)


def _read(body: bytes) -> tuple[dict[str, Any], str]:
    payload = load_json_object(body)
    return payload, pagerduty.read_routing_key(payload)


@router.post(
    "/v2/enqueue",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PagerDutyAccepted,
    responses={**INVALID_EVENT, **KEY_ERRORS},
    openapi_extra=documented_body(PagerDutyEvent),
    tags=["ingest"],
    summary="Receive a PagerDuty Events API v2 event",
)
async def enqueue_event(request: Request, batcher: BatcherDep, settings: SettingsDep) -> Any:
    """Send events here exactly as to PagerDuty, with the integration key as `routing_key`.
    A trigger without `dedup_key` gets a new one, returned in the response. An acknowledge or
    resolve for a key with no open alert succeeds and changes nothing, as in PagerDuty."""
    body = await read_body(request, settings.ingest_max_body_bytes, advice=EVENT_BODY_ADVICE)
    try:
        payload, key = _read(body)
        event: AlertEvent = pagerduty.parse_event(payload, limits_from(settings))
    except ParseError as exc:
        return invalid_event(exc)
    await accept_events(batcher, key, "pagerduty", [event])
    return PagerDutyAccepted(dedup_key=event.dedup_key)


@router.post(
    "/v2/change/enqueue",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PagerDutyAccepted,
    response_model_exclude_none=True,
    responses={**INVALID_EVENT, **KEY_ERRORS},
    openapi_extra=documented_body(PagerDutyChangeEvent),
    tags=["ingest"],
    summary="Receive a PagerDuty change event",
)
async def enqueue_change(
    request: Request, connection: RawConnectionDep, settings: SettingsDep
) -> Any:
    """Record a change (a deploy, a configuration push) on the integration's service. It pages
    no one, and `GET /v1/incidents/{id}/changes` lists the changes before an incident."""
    body = await read_body(request, settings.ingest_max_body_bytes, advice=EVENT_BODY_ADVICE)
    try:
        payload, key = _read(body)
        change = pagerduty.parse_change_payload(payload, limits_from(settings))
    except ParseError as exc:
        return invalid_event(exc)

    async def work(conn: asyncpg.Connection) -> None:
        integration = await find_integration(conn, key, kind="pagerduty")
        await record_change(conn, integration.context, change, utcnow())

    await run_in_transaction(connection, work)
    return PagerDutyAccepted(message="Change event processed")
