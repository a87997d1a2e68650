from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import PlainTextResponse
from sqlalchemy import select

from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep
from app.api.pagination import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    Page,
    fetch_page,
)
from app.api.retry import TransactionRetryRoute
from app.core.errors import BadRequest, problem_responses
from app.core.time import utcnow
from app.escalation.schemas import EscalateIn, ReassignIn
from app.incidents import escalation_actions, service
from app.incidents.models import Incident, IncidentStatus, TimelineEntry
from app.incidents.postmortem import render_markdown
from app.incidents.schemas import (
    AlertRead,
    IncidentDetail,
    IncidentRead,
    IncidentUpdate,
    MergeRequest,
    NoteCreate,
    PostmortemRead,
    PostmortemWrite,
    SnoozeRequest,
    SubscriberCreate,
    SubscriberRead,
    TimelineEntryRead,
)
from app.notify import service as notify_service
from app.notify.models import Notification
from app.notify.schemas import NotificationRead
from app.services.models import Service

router = APIRouter(prefix="/incidents", tags=["incidents"], route_class=TransactionRetryRoute)

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
    number: Annotated[
        int | None,
        Query(ge=1, description="The number that pages show as #42: lists that one incident"),
    ] = None,
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
        service.incidents_query(
            service.IncidentFilter(statuses=statuses, service_id=service_id, number=number)
        ),
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


@router.patch(
    "/{incident_id}",
    response_model=IncidentRead,
    responses=problem_responses(404, 409),
)
async def update_incident(
    incident_id: uuid.UUID, body: IncidentUpdate, session: SessionDep, principal: Writer
) -> IncidentRead:
    """Change the title, priority or urgency; each change is recorded in the timeline."""
    incident = await service.update_incident(
        session,
        incident_id,
        changes=body.model_dump(exclude_unset=True, exclude_none=True),
        actor=principal.as_actor(),
    )
    return IncidentRead.model_validate(incident)


@router.post(
    "/{incident_id}/snooze",
    response_model=IncidentRead,
    responses=problem_responses(404, 409),
)
async def snooze_incident(
    incident_id: uuid.UUID, body: SnoozeRequest, session: SessionDep, principal: Writer
) -> IncidentRead:
    """Silence an open incident until a time; then it triggers again and escalation restarts."""
    until = body.until or utcnow() + timedelta(minutes=body.minutes or 0)
    incident = await service.snooze(
        session, incident_id, until=until.astimezone(UTC), actor=principal.as_actor()
    )
    return IncidentRead.model_validate(incident)


@router.post(
    "/{incident_id}/merge",
    response_model=IncidentRead,
    responses=problem_responses(404, 409),
)
async def merge_incidents(
    incident_id: uuid.UUID, body: MergeRequest, session: SessionDep, principal: Writer
) -> IncidentRead:
    """Merge other incidents into this one: their alerts move here and they resolve as merged."""
    incident = await service.merge(
        session, incident_id, source_ids=body.incident_ids, actor=principal.as_actor()
    )
    return IncidentRead.model_validate(incident)


@router.get(
    "/{incident_id}/timeline",
    response_model=Page[TimelineEntryRead],
    responses=problem_responses(400, 404),
)
async def get_timeline(
    incident_id: uuid.UUID,
    session: SessionDep,
    _: Reader,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[TimelineEntryRead]:
    """List the incident's timeline entries, oldest first."""
    await service.get_incident(session, incident_id)
    entries, next_cursor = await fetch_page(
        session,
        select(TimelineEntry).where(TimelineEntry.incident_id == incident_id),
        time_column=TimelineEntry.at,
        id_column=TimelineEntry.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(
        items=[TimelineEntryRead.model_validate(entry) for entry in entries],
        next_cursor=next_cursor,
    )


@router.post(
    "/{incident_id}/notes",
    status_code=status.HTTP_201_CREATED,
    response_model=TimelineEntryRead,
    responses=problem_responses(404),
)
async def add_note(
    incident_id: uuid.UUID, body: NoteCreate, session: SessionDep, principal: Writer
) -> TimelineEntryRead:
    """Add a note to the timeline."""
    entry = await service.add_note(session, incident_id, text=body.text, actor=principal.as_actor())
    return TimelineEntryRead.model_validate(entry)


@router.get(
    "/{incident_id}/subscribers",
    response_model=list[SubscriberRead],
    responses=problem_responses(404),
)
async def list_subscribers(
    incident_id: uuid.UUID, session: SessionDep, _: Reader
) -> list[SubscriberRead]:
    """Stakeholders who get the incident's state changes."""
    users = await service.list_subscribers(session, incident_id)
    return [SubscriberRead.model_validate(user) for user in users]


@router.post(
    "/{incident_id}/subscribers",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def subscribe(
    incident_id: uuid.UUID, body: SubscriberCreate, session: SessionDep, principal: Writer
) -> None:
    """Subscribe a user: they get acknowledged and resolved notices without being paged."""
    await service.subscribe(session, incident_id, user_id=body.user_id, actor=principal.as_actor())


@router.delete(
    "/{incident_id}/subscribers/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
)
async def unsubscribe(
    incident_id: uuid.UUID, user_id: uuid.UUID, session: SessionDep, _: Writer
) -> None:
    """Remove a subscriber."""
    await service.unsubscribe(session, incident_id, user_id=user_id)


@router.put(
    "/{incident_id}/postmortem",
    response_model=PostmortemRead,
    responses=problem_responses(404, 409),
)
async def save_postmortem(
    incident_id: uuid.UUID, body: PostmortemWrite, session: SessionDep, principal: Writer
) -> PostmortemRead:
    """Record or replace the postmortem of a resolved incident; this closes the incident."""
    postmortem = await service.save_postmortem(
        session, incident_id, values=body.model_dump(mode="json"), actor=principal.as_actor()
    )
    return await _postmortem_read(session, postmortem)


@router.get(
    "/{incident_id}/postmortem",
    response_model=PostmortemRead,
    responses={
        **problem_responses(404),
        200: {
            "description": "The postmortem as JSON, or as Markdown with ?format=markdown "
            "or Accept: text/markdown",
            "content": {"text/markdown": {"schema": {"type": "string"}}},
        },
    },
)
async def get_postmortem(
    incident_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    _: Reader,
    format: Annotated[Literal["json", "markdown"] | None, Query()] = None,
) -> Any:
    """Get the postmortem as JSON, or as Markdown."""
    postmortem = await service.get_postmortem(session, incident_id)
    wants_markdown = format == "markdown" or (
        format is None and "text/markdown" in request.headers.get("accept", "")
    )
    if not wants_markdown:
        return await _postmortem_read(session, postmortem)
    incident = await service.get_incident(session, incident_id)
    service_name = await session.scalar(
        select(Service.name).where(Service.id == incident.service_id)
    )
    entries = await service.postmortem_excerpt(session, postmortem)
    text = render_markdown(incident, service_name or "", postmortem, entries)
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


async def _postmortem_read(session: SessionDep, postmortem: Any) -> PostmortemRead:
    entries = await service.postmortem_excerpt(session, postmortem)
    return PostmortemRead(
        incident_id=postmortem.incident_id,
        summary=postmortem.summary,
        impact=postmortem.impact,
        root_cause=postmortem.root_cause,
        lessons_learned=postmortem.lessons_learned,
        action_items=postmortem.action_items,
        timeline=[TimelineEntryRead.model_validate(entry) for entry in entries],
        author=postmortem.author,
        created_at=postmortem.created_at,
        updated_at=postmortem.updated_at,
    )


@router.get(
    "/{incident_id}/notifications",
    response_model=Page[NotificationRead],
    responses=problem_responses(400, 404),
)
async def list_incident_notifications(
    incident_id: uuid.UUID,
    session: SessionDep,
    _: Reader,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[NotificationRead]:
    """List the incident's notifications, oldest first, each with its delivery attempts."""
    await service.get_incident(session, incident_id)
    notifications, next_cursor = await fetch_page(
        session,
        notify_service.incident_notifications_query(incident_id),
        time_column=Notification.created_at,
        id_column=Notification.id,
        limit=limit,
        cursor=cursor,
    )
    items = await notify_service.with_attempts(session, notifications)
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/{incident_id}/escalate",
    response_model=IncidentRead,
    responses=problem_responses(404, 409),
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
    responses=problem_responses(404, 409),
)
async def reassign_incident(
    incident_id: uuid.UUID, body: ReassignIn, session: SessionDep, principal: Writer
) -> IncidentRead:
    """Page a user now in place of those paged so far; the policy goes on behind them."""
    incident = await escalation_actions.reassign(
        session, incident_id, user_id=body.user_id, actor=principal.as_actor()
    )
    return IncidentRead.model_validate(incident)
