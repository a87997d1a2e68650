"""Opsgenie's Alert API paths, so Opsgenie senders only change the host they post to.

Opsgenie processes requests asynchronously and responds 202 with a request id. Tocsin
commits before it responds, so its 202 already means the event is stored.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Annotated, Literal
from urllib.parse import unquote_to_bytes

import asyncpg
from fastapi import APIRouter, Header, Query, Request, status

from app.api.deps import RawConnectionDep, SettingsDep, read_body
from app.core.db import run_in_transaction
from app.core.errors import BadRequest, Unauthorized, problem_responses
from app.core.time import utcnow
from app.incidents.events import EventAction
from app.incidents.ingest import ingest_events
from app.ingest.alert_notes import add_note, dedup_key_of_alert
from app.ingest.handling import (
    EVENT_BODY_ADVICE,
    BatcherDep,
    accept_events,
    documented_body,
    parse_or_reject,
)
from app.ingest.integrations import find_integration
from app.ingest.parsers import opsgenie
from app.ingest.parsers.common import ParseError
from app.ingest.schemas import OpsgenieAccepted, OpsgenieAlertAction, OpsgenieCreateAlert

router = APIRouter(prefix="/v2/alerts", tags=["ingest"])

ERRORS = problem_responses(400, 401, 404, 413, 422, 503)
AuthorizationHeader = Annotated[
    str | None,
    Header(description="GenieKey <integration key> (Opsgenie's scheme) or Bearer <key>"),
]
IdentifierType = Annotated[
    Literal["id", "alias", "tiny"],
    Query(
        alias="identifierType",
        description="alias: the identifier is the alert's alias (its dedup key). "
        "id (the default): Tocsin's alert id; an identifier that is no alert id is "
        "taken as an alias. tiny is not supported.",
    ),
]


def genie_key(authorization: str | None) -> str:
    """Read the integration key from ``Authorization: GenieKey <key>`` (or ``Bearer <key>``)."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    if scheme.lower() not in ("geniekey", "bearer") or not key.strip():
        raise Unauthorized(
            "Missing integration key. Send Authorization: GenieKey <integration key>.",
            field="Authorization",
        )
    return key.strip()


def request_accepted(started: float) -> OpsgenieAccepted:
    return OpsgenieAccepted(took=round(time.monotonic() - started, 3), requestId=str(uuid.uuid4()))


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OpsgenieAccepted,
    responses=ERRORS,
    openapi_extra=documented_body(OpsgenieCreateAlert),
    summary="Create an alert (Opsgenie Alert API)",
)
async def create_alert(
    request: Request,
    batcher: BatcherDep,
    settings: SettingsDep,
    authorization: AuthorizationHeader = None,
) -> OpsgenieAccepted:
    """`alias` is the dedup key: creating an alert whose alias is open updates it. An alert
    without alias gets a key of its own."""
    started = time.monotonic()
    key = genie_key(authorization)
    body = await read_body(request, settings.ingest_max_body_bytes, advice=EVENT_BODY_ADVICE)
    events = parse_or_reject(opsgenie.parse, body, settings)
    await accept_events(batcher, key, "opsgenie", events)
    return request_accepted(started)


async def _alert_action(
    action: EventAction,
    identifier: str,
    identifier_type: str,
    request: Request,
    connection: asyncpg.Connection,
    settings: SettingsDep,
    authorization: str | None,
) -> OpsgenieAccepted:
    started = time.monotonic()
    key = genie_key(authorization)
    _check_identifier(request, identifier, identifier_type)
    body = await read_body(request, settings.ingest_max_body_bytes, advice=EVENT_BODY_ADVICE)
    try:
        event = opsgenie.parse_action(body, action, identifier)
    except ParseError as exc:
        raise BadRequest(f"{exc.field}: {exc.message}", field=exc.field) from exc

    async def work(conn: asyncpg.Connection) -> None:
        integration = await find_integration(conn, key, kind="opsgenie")
        dedup_key = identifier
        if identifier_type == "id":
            dedup_key = (
                await dedup_key_of_alert(conn, integration.context, identifier) or identifier
            )
        named = dataclasses.replace(event, dedup_key=dedup_key)
        await ingest_events(conn, integration.context, [named], utcnow())

    await run_in_transaction(connection, work)
    return request_accepted(started)


def _check_identifier(request: Request, identifier: str, identifier_type: str) -> None:
    if "\x00" in identifier:
        raise BadRequest(
            "The identifier contains a NUL character (%00), which no alert id or alias has.",
            field="identifier",
        )
    # Starlette decodes the path leniently, turning invalid UTF-8 into U+FFFD, so the
    # raw path is checked to tell a sender's broken encoding from a real U+FFFD.
    try:
        unquote_to_bytes(request.scope.get("raw_path", b"").decode("latin-1")).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            "The identifier is not valid UTF-8 once percent-decoded; encode it as UTF-8.",
            field="identifier",
        ) from exc
    if identifier_type == "tiny":
        raise BadRequest(
            "identifierType=tiny is not supported; use identifierType=alias or id.",
            field="identifierType",
        )


@router.post(
    "/{identifier}/close",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OpsgenieAccepted,
    responses=ERRORS,
    openapi_extra=documented_body(OpsgenieAlertAction, required=False),
    summary="Close an alert (Opsgenie Alert API)",
)
async def close_alert(
    identifier: str,
    request: Request,
    connection: RawConnectionDep,
    settings: SettingsDep,
    identifier_type: IdentifierType = "id",
    authorization: AuthorizationHeader = None,
) -> OpsgenieAccepted:
    """Resolve the alert. Closing an alert that is not open succeeds and changes nothing."""
    return await _alert_action(
        EventAction.resolve,
        identifier,
        identifier_type,
        request,
        connection,
        settings,
        authorization,
    )


@router.post(
    "/{identifier}/acknowledge",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OpsgenieAccepted,
    responses=ERRORS,
    openapi_extra=documented_body(OpsgenieAlertAction, required=False),
    summary="Acknowledge an alert (Opsgenie Alert API)",
)
async def acknowledge_alert(
    identifier: str,
    request: Request,
    connection: RawConnectionDep,
    settings: SettingsDep,
    identifier_type: IdentifierType = "id",
    authorization: AuthorizationHeader = None,
) -> OpsgenieAccepted:
    """Acknowledge the alert's incident, which stops its escalation."""
    return await _alert_action(
        EventAction.acknowledge,
        identifier,
        identifier_type,
        request,
        connection,
        settings,
        authorization,
    )


@router.post(
    "/{identifier}/notes",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OpsgenieAccepted,
    responses=ERRORS,
    openapi_extra=documented_body(OpsgenieAlertAction),
    summary="Add a note to an alert (Opsgenie Alert API)",
)
async def add_alert_note(
    identifier: str,
    request: Request,
    connection: RawConnectionDep,
    settings: SettingsDep,
    identifier_type: IdentifierType = "id",
    authorization: AuthorizationHeader = None,
) -> OpsgenieAccepted:
    """Add the note to the timeline of the alert's incident."""
    started = time.monotonic()
    key = genie_key(authorization)
    _check_identifier(request, identifier, identifier_type)
    body = await read_body(request, settings.ingest_max_body_bytes, advice=EVENT_BODY_ADVICE)
    try:
        note = opsgenie.parse_note(body)
    except ParseError as exc:
        raise BadRequest(f"{exc.field}: {exc.message}", field=exc.field) from exc

    async def work(conn: asyncpg.Connection) -> None:
        integration = await find_integration(conn, key, kind="opsgenie")
        dedup_key = identifier
        if identifier_type == "id":
            dedup_key = (
                await dedup_key_of_alert(conn, integration.context, identifier) or identifier
            )
        await add_note(conn, integration.context, dedup_key=dedup_key, note=note, now=utcnow())

    await run_in_transaction(connection, work)
    return request_accepted(started)
