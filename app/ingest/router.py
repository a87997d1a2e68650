from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Header, Request, status
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from app.api.deps import RawConnectionDep, SettingsDep, read_body
from app.core.config import Settings
from app.core.db import run_in_transaction
from app.core.errors import AppError, is_connection_error, problem_responses
from app.core.security import SecretBox
from app.core.time import utcnow
from app.incidents.events import AlertEvent
from app.ingest import heartbeats
from app.ingest.batcher import IngestBatcher, IntegrationCheck
from app.ingest.handling import (
    BATCH_BODY_ADVICE,
    EVENT_BODY_ADVICE,
    BatcherDep,
    Parser,
    accept_events,
    accepted,
    documented_body,
    integration_bearer,
    key_from_bearer,
    parse_or_reject,
)
from app.ingest.integrations import ResolvedIntegration, find_integration
from app.ingest.opsgenie_router import router as opsgenie_router
from app.ingest.pagerduty_router import router as pagerduty_router
from app.ingest.parsers import alertmanager, generic, grafana, heartbeat
from app.ingest.schemas import (
    AlertmanagerWebhook,
    GenericAlert,
    GrafanaWebhook,
    HeartbeatAccepted,
    IngestAccepted,
)
from app.ingest.signatures import SIGNATURE_HEADER, verify_signature

router = APIRouter(tags=["ingest"])
router.include_router(pagerduty_router)
router.include_router(opsgenie_router)

INGEST_ERRORS = problem_responses(400, 401, 404, 413, 422, 503)

BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(integration_bearer)]


def add_format_routes(
    kind: str, parser: Parser, body_model: type[BaseModel], *, summary: str, description: str
) -> None:
    """Register ``POST /ingest/{kind}/{integration_key}`` and ``POST /ingest/{kind}``."""

    async def with_key_in_path(
        integration_key: str, request: Request, batcher: BatcherDep, settings: SettingsDep
    ) -> IngestAccepted:
        body = await read_body(request, settings.ingest_max_body_bytes, advice=BATCH_BODY_ADVICE)
        events = await parse_events(batcher, integration_key, kind, parser, body, settings)
        return accepted(events, await accept_events(batcher, integration_key, kind, events))

    async def with_bearer_key(
        request: Request, batcher: BatcherDep, settings: SettingsDep, bearer: BearerDep
    ) -> IngestAccepted:
        key = key_from_bearer(bearer, f"/ingest/{kind}")
        body = await read_body(request, settings.ingest_max_body_bytes, advice=BATCH_BODY_ADVICE)
        events = await parse_events(batcher, key, kind, parser, body, settings)
        return accepted(events, await accept_events(batcher, key, kind, events))

    for path, endpoint in (
        (f"/ingest/{kind}/{{integration_key}}", with_key_in_path),
        (f"/ingest/{kind}", with_bearer_key),
    ):
        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            status_code=status.HTTP_202_ACCEPTED,
            response_model=IngestAccepted,
            responses=INGEST_ERRORS,
            openapi_extra=documented_body(body_model),
            summary=summary,
            description=description,
        )


add_format_routes(
    "alertmanager",
    alertmanager.parse,
    AlertmanagerWebhook,
    summary="Receive a Prometheus Alertmanager webhook",
    description="Point an Alertmanager `webhook_configs` receiver at this URL. Each alert's "
    "fingerprint is its dedup key and the alerts of one `groupKey` form one incident. "
    "Answers 202 once the events are committed.",
)
add_format_routes(
    "grafana",
    grafana.parse,
    GrafanaWebhook,
    summary="Receive a Grafana alerting webhook",
    description="Point a Grafana webhook contact point at this URL. Labels, annotations and "
    "values are kept; dashboard, panel, silence and image URLs become links. Answers 202 "
    "once the events are committed.",
)


SignatureHeader = Annotated[
    str | None,
    Header(
        alias=SIGNATURE_HEADER,
        description="sha256=<hex HMAC-SHA256 of the raw body under the integration's signing "
        "secret>; required once the integration has a signing secret",
    ),
]


async def parse_events(
    batcher: IngestBatcher,
    key: str,
    kind: str,
    parser: Parser,
    body: bytes,
    settings: Settings,
    check: IntegrationCheck | None = None,
) -> list[AlertEvent]:
    """Parse the body; when it is invalid, report a problem with the key first.

    A wrong key (unknown, disabled, of another format) or a missing signature is what the
    sender must fix first, and an unsigned request should learn nothing about the format.
    A valid body meets those checks in the commit's own lookup, so only an invalid one
    costs this extra query. If the database is down, the body's error is reported.
    """
    try:
        return parse_or_reject(parser, body, settings)
    except AppError as body_error:
        try:
            async with batcher.engine.connect() as connection:
                raw = await connection.get_raw_connection()
                integration = await find_integration(raw.driver_connection, key, kind=kind)
        except AppError:
            raise
        except Exception as exc:
            if is_connection_error(exc):
                raise body_error from None
            raise
        if check is not None:
            check(integration)
        raise


def signature_check(settings: Settings, body: bytes, signature: str | None) -> IntegrationCheck:
    """Build the check that verifies the body's signature when the integration has a secret."""

    def check(integration: ResolvedIntegration) -> None:
        if integration.signing_secret_encrypted is None:
            return
        secret = SecretBox(settings.signing_key()).decrypt(integration.signing_secret_encrypted)
        verify_signature(secret, body, signature)

    return check


async def _ingest_generic(
    key: str,
    request: Request,
    batcher: IngestBatcher,
    settings: Settings,
    signature: str | None,
) -> IngestAccepted:
    body = await read_body(request, settings.ingest_max_body_bytes, advice=EVENT_BODY_ADVICE)
    check = signature_check(settings, body, signature)
    events = await parse_events(batcher, key, "generic", generic.parse, body, settings, check)
    return accepted(events, await accept_events(batcher, key, "generic", events, check=check))


GENERIC_DESCRIPTION = (
    "Tocsin's own format for senders without one of their own (scripts, cron jobs, CI). "
    "`status` firing opens or updates the alert `dedup_key`; resolved and acknowledged end or "
    "acknowledge it. When the integration has a signing secret, every request needs "
    f"`{SIGNATURE_HEADER}: sha256=<hex>`, the HMAC-SHA256 of the raw body. Answers 202 once "
    "the event is committed."
)


@router.post(
    "/ingest/generic/{integration_key}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestAccepted,
    responses=INGEST_ERRORS,
    openapi_extra=documented_body(GenericAlert),
    summary="Receive an alert in Tocsin's generic JSON format",
    description=GENERIC_DESCRIPTION,
)
async def ingest_generic(
    integration_key: str,
    request: Request,
    batcher: BatcherDep,
    settings: SettingsDep,
    signature: SignatureHeader = None,
) -> IngestAccepted:
    return await _ingest_generic(integration_key, request, batcher, settings, signature)


@router.post(
    "/ingest/generic",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestAccepted,
    responses=INGEST_ERRORS,
    openapi_extra=documented_body(GenericAlert),
    summary="Receive an alert in Tocsin's generic JSON format (key in Authorization)",
    description=GENERIC_DESCRIPTION,
)
async def ingest_generic_bearer(
    request: Request,
    batcher: BatcherDep,
    settings: SettingsDep,
    bearer: BearerDep,
    signature: SignatureHeader = None,
) -> IngestAccepted:
    key = key_from_bearer(bearer, "/ingest/generic")
    return await _ingest_generic(key, request, batcher, settings, signature)


async def _ping(
    key: str, request: Request, connection: RawConnectionDep, settings: Settings
) -> HeartbeatAccepted:
    body = await read_body(request, settings.ingest_max_body_bytes, advice=EVENT_BODY_ADVICE)
    events = parse_or_reject(heartbeat.parse, body, settings)

    async def work(conn: asyncpg.Connection) -> heartbeats.PingResult:
        integration = await find_integration(conn, key, kind="heartbeat")
        return await heartbeats.record_ping(conn, integration, events, utcnow())

    result = await run_in_transaction(connection, work)
    return HeartbeatAccepted(
        next_deadline_at=result.deadline_at, incidents_resolved=result.incidents_resolved
    )


HEARTBEAT_DESCRIPTION = (
    "Ping at least once per the integration's `interval_seconds` (plus `grace_seconds`). "
    "When no ping arrives in time Tocsin opens an incident; the next ping resolves it. A "
    "heartbeat that never pinged does not alarm. The body is optional; a JSON object may "
    "carry a `message`."
)


async def heartbeat_ping(
    integration_key: str, request: Request, connection: RawConnectionDep, settings: SettingsDep
) -> HeartbeatAccepted:
    return await _ping(integration_key, request, connection, settings)


async def heartbeat_ping_bearer(
    request: Request, connection: RawConnectionDep, settings: SettingsDep, bearer: BearerDep
) -> HeartbeatAccepted:
    return await _ping(key_from_bearer(bearer, "/ingest/heartbeat"), request, connection, settings)


for _path, _endpoint in (
    ("/ingest/heartbeat/{integration_key}", heartbeat_ping),
    ("/ingest/heartbeat", heartbeat_ping_bearer),
):
    for _method in ("POST", "GET"):
        router.add_api_route(
            _path,
            _endpoint,
            methods=[_method],
            response_model=HeartbeatAccepted,
            responses=INGEST_ERRORS,
            summary="Ping a heartbeat",
            description=HEARTBEAT_DESCRIPTION,
        )
