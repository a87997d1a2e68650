from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select

from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep, SettingsDep
from app.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, fetch_page
from app.api.retry import TransactionRetryRoute
from app.core.errors import Unprocessable, problem_responses
from app.core.security import SecretBox
from app.incidents import service as incidents
from app.incidents.models import Event
from app.ingest.models import ChangeEvent
from app.ingest.schemas import ChangeRead, EventRead, SigningSecretCreated
from app.ingest.signatures import new_signing_secret
from app.services import service as services

router = APIRouter(route_class=TransactionRetryRoute)

IncidentReader = Annotated[Principal, Depends(require(Scope.incidents_read))]
ConfigWriter = Annotated[Principal, Depends(require(Scope.config_write))]

# How far before an incident's start its changes are listed, by default.
DEFAULT_CHANGE_WINDOW_HOURS = 24
MAX_CHANGE_WINDOW_HOURS = 24 * 14


@router.get(
    "/integrations/{integration_id}/events",
    response_model=Page[EventRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    tags=["services"],
)
async def list_integration_events(
    integration_id: uuid.UUID,
    session: SessionDep,
    _: IncidentReader,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[EventRead]:
    """List the events an integration received, newest first, with what each one did:
    the integration's event log. Resolves without an open alert appear here too."""
    await services.get_integration(session, integration_id)
    rows, next_cursor = await fetch_page(
        session,
        select(Event).where(Event.integration_id == integration_id),
        time_column=Event.received_at,
        id_column=Event.id,
        limit=limit,
        cursor=cursor,
        newest_first=True,
    )
    return Page(items=[EventRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/integrations/{integration_id}/signing-secret",
    status_code=status.HTTP_201_CREATED,
    response_model=SigningSecretCreated,
    responses=problem_responses(401, 403, 404, 422),
    tags=["services"],
)
async def create_signing_secret(
    integration_id: uuid.UUID, session: SessionDep, settings: SettingsDep, _: ConfigWriter
) -> SigningSecretCreated:
    """Set a new signing secret, replacing any earlier one. From now on the generic endpoint
    rejects requests without a valid X-Tocsin-Signature. The response shows the secret once."""
    integration = await services.get_integration(session, integration_id)
    if integration.kind != "generic":
        # Only Tocsin's own format has a signature header; another sender could not sign,
        # and a secret that is never checked would suggest a protection that is not there.
        raise Unprocessable(
            f"Integration {integration_id} is a {integration.kind} integration; only generic "
            "integrations verify signatures. Keep its key secret instead.",
            field="integration_id",
        )
    secret = new_signing_secret()
    integration.signing_secret_encrypted = SecretBox(settings.signing_key()).encrypt(secret)
    await session.flush()
    return SigningSecretCreated(signing_secret=secret)


@router.delete(
    "/integrations/{integration_id}/signing-secret",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422),
    tags=["services"],
)
async def delete_signing_secret(
    integration_id: uuid.UUID, session: SessionDep, _: ConfigWriter
) -> None:
    """Remove the signing secret; requests no longer need a signature."""
    integration = await services.get_integration(session, integration_id)
    integration.signing_secret_encrypted = None
    await session.flush()


@router.get(
    "/services/{service_id}/changes",
    response_model=Page[ChangeRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    tags=["services"],
)
async def list_service_changes(
    service_id: uuid.UUID,
    session: SessionDep,
    _: IncidentReader,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[ChangeRead]:
    """List the changes reported for a service (PagerDuty change events), newest first."""
    await services.get_service(session, service_id)
    rows, next_cursor = await fetch_page(
        session,
        select(ChangeEvent).where(ChangeEvent.service_id == service_id),
        time_column=ChangeEvent.at,
        id_column=ChangeEvent.id,
        limit=limit,
        cursor=cursor,
        newest_first=True,
    )
    return Page(items=[ChangeRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/incidents/{incident_id}/changes",
    response_model=list[ChangeRead],
    responses=problem_responses(401, 403, 404, 422),
    tags=["incidents"],
)
async def list_incident_changes(
    incident_id: uuid.UUID,
    session: SessionDep,
    _: IncidentReader,
    hours_before: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_CHANGE_WINDOW_HOURS,
            description="How many hours before the incident opened to look back",
        ),
    ] = DEFAULT_CHANGE_WINDOW_HOURS,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> list[ChangeRead]:
    """List the recent changes of the incident's service, newest first: those from
    `hours_before` hours before the incident opened until it resolved (or now)."""
    incident = await incidents.get_incident(session, incident_id)
    statement = (
        select(ChangeEvent)
        .where(
            ChangeEvent.service_id == incident.service_id,
            ChangeEvent.at >= incident.created_at - timedelta(hours=hours_before),
        )
        .order_by(ChangeEvent.at.desc(), ChangeEvent.id.desc())
        .limit(limit)
    )
    if incident.resolved_at is not None:
        statement = statement.where(ChangeEvent.at <= incident.resolved_at)
    rows = (await session.scalars(statement)).all()
    return [ChangeRead.model_validate(row) for row in rows]
