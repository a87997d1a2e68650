from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep
from app.api.pagination import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    Page,
    fetch_page,
)
from app.core.errors import BadRequest, problem_responses
from app.escalation.schemas import EscalateIn, ReassignIn
from app.incidents import escalation_actions, service
from app.incidents.models import Incident, IncidentStatus
from app.incidents.schemas import (
    AlertRead,
    IncidentDetail,
    IncidentRead,
    TimelineEntryRead,
)

router = APIRouter(prefix="/incidents", tags=["incidents"])

Reader = Annotated[Principal, Depends(require(Scope.incidents_read))]
Writer = Annotated[Principal, Depends(require(Scope.incidents_write))]

STATUS_VALUES = ", ".join(status.value for status in IncidentStatus)


@router.get("", response_model=Page[IncidentRead], responses=problem_responses(400, 401, 403, 422))
async def list_incidents(
    session: SessionDep,
    _: Reader,
    status: Annotated[
        list[str] | None,
        Query(description=f"Repeat to match several: {STATUS_VALUES}"),
    ] = None,
    service_id: uuid.UUID | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[IncidentRead]:
    """List incidents, newest first."""
    statuses = tuple(status or ())
    unknown = [value for value in statuses if value not in IncidentStatus.__members__]
    if unknown:
        raise BadRequest(
            f"Unknown status {unknown[0]!r}; use one of {STATUS_VALUES}.", field="status"
        )
    incidents, next_cursor = await fetch_page(
        session,
        service.incidents_query(service.IncidentFilter(statuses=statuses, service_id=service_id)),
        time_column=Incident.created_at,
        id_column=Incident.id,
        limit=limit,
        cursor=cursor,
        newest_first=True,
    )
    return Page(
        items=[IncidentRead.model_validate(incident) for incident in incidents],
        next_cursor=next_cursor,
    )


@router.get(
    "/{incident_id}", response_model=IncidentDetail, responses=problem_responses(401, 403, 404, 422)
)
async def get_incident(incident_id: uuid.UUID, session: SessionDep, _: Reader) -> IncidentDetail:
    """Get an incident with its alerts and timeline."""
    incident = await service.get_incident(session, incident_id)
    alerts = await service.list_alerts(session, incident_id, service.DETAIL_ITEMS)
    timeline = await service.list_timeline(session, incident_id, service.DETAIL_ITEMS)
    return IncidentDetail(
        **IncidentRead.model_validate(incident).model_dump(),
        alerts=[AlertRead.model_validate(alert) for alert in alerts],
        timeline=[TimelineEntryRead.model_validate(entry) for entry in timeline],
    )


@router.post(
    "/{incident_id}/acknowledge",
    response_model=IncidentRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def acknowledge_incident(
    incident_id: uuid.UUID, session: SessionDep, principal: Writer
) -> IncidentRead:
    """Acknowledge a triggered incident: escalation and further pages stop."""
    incident = await service.acknowledge(session, incident_id, actor=principal.as_actor())
    return IncidentRead.model_validate(incident)


@router.post(
    "/{incident_id}/resolve",
    response_model=IncidentRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def resolve_incident(
    incident_id: uuid.UUID, session: SessionDep, principal: Writer
) -> IncidentRead:
    """Resolve an incident and its alerts; responders already paged get a resolved notice."""
    incident = await service.resolve(session, incident_id, actor=principal.as_actor())
    return IncidentRead.model_validate(incident)


@router.post(
    "/{incident_id}/escalate",
    response_model=IncidentRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def escalate_incident(
    incident_id: uuid.UUID, body: EscalateIn, session: SessionDep, principal: Writer
) -> IncidentRead:
    """Page a level of the incident's escalation policy now; escalation goes on from there."""
    incident = await escalation_actions.escalate(
        session, incident_id, level=body.level, actor=principal.as_actor()
    )
    return IncidentRead.model_validate(incident)


@router.post(
    "/{incident_id}/reassign",
    response_model=IncidentRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def reassign_incident(
    incident_id: uuid.UUID, body: ReassignIn, session: SessionDep, principal: Writer
) -> IncidentRead:
    """Page a user now in place of those paged so far; the policy goes on behind them."""
    incident = await escalation_actions.reassign(
        session, incident_id, user_id=body.user_id, actor=principal.as_actor()
    )
    return IncidentRead.model_validate(incident)
