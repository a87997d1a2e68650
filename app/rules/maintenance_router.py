from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import select

from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep
from app.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, fetch_page
from app.api.retry import TransactionRetryRoute
from app.core.errors import problem_responses
from app.core.time import utcnow
from app.rules import maintenance
from app.rules.models import MaintenanceWindow, Silence
from app.rules.schemas import (
    MaintenanceWindowCreate,
    MaintenanceWindowRead,
    MaintenanceWindowUpdate,
    OccurrenceRead,
    SilenceCreate,
    SilenceRead,
    SilenceUpdate,
)

router = APIRouter(route_class=TransactionRetryRoute)

ConfigReader = Annotated[Principal, Depends(require(Scope.config_read))]
ConfigWriter = Annotated[Principal, Depends(require(Scope.config_write))]
IncidentReader = Annotated[Principal, Depends(require(Scope.incidents_read))]
IncidentWriter = Annotated[Principal, Depends(require(Scope.incidents_write))]


def _window_read(window: MaintenanceWindow) -> MaintenanceWindowRead:
    value = maintenance.window_value(window)
    now = utcnow()
    occurrence = value.occurrence_at(now) or value.next_occurrence(now)
    return MaintenanceWindowRead(
        id=window.id,
        service_id=window.service_id,
        name=window.name,
        description=window.description,
        starts_at=window.starts_at,
        ends_at=window.ends_at,
        time_zone=window.time_zone,
        rrule=window.rrule,
        created_by=window.created_by,
        created_at=window.created_at,
        updated_at=window.updated_at,
        active=value.occurrence_at(now) is not None,
        current_or_next=(
            OccurrenceRead(starts_at=occurrence.starts_at, ends_at=occurrence.ends_at)
            if occurrence
            else None
        ),
    )


@router.get(
    "/maintenance-windows",
    response_model=Page[MaintenanceWindowRead],
    responses=problem_responses(400, 401, 403),
    tags=["maintenance windows"],
)
async def list_windows(
    session: SessionDep,
    _: ConfigReader,
    service_id: Annotated[uuid.UUID | None, Query(description="Only this service's")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[MaintenanceWindowRead]:
    """List maintenance windows, oldest first."""
    statement = select(MaintenanceWindow)
    if service_id is not None:
        statement = statement.where(MaintenanceWindow.service_id == service_id)
    rows, next_cursor = await fetch_page(
        session,
        statement,
        time_column=MaintenanceWindow.created_at,
        id_column=MaintenanceWindow.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[_window_read(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/maintenance-windows",
    status_code=status.HTTP_201_CREATED,
    response_model=MaintenanceWindowRead,
    responses=problem_responses(401, 403, 422),
    tags=["maintenance windows"],
)
async def create_window(
    body: MaintenanceWindowCreate, session: SessionDep, response: Response, principal: ConfigWriter
) -> MaintenanceWindowRead:
    """Create a one-off or recurring (RRULE) maintenance window for a service. While it is
    on, the service's alerts are recorded and grouped but page nobody and do not escalate;
    when it ends, incidents still triggered start escalating."""
    window = await maintenance.create_window(session, body, actor=principal.as_actor())
    response.headers["Location"] = f"/v1/maintenance-windows/{window.id}"
    return _window_read(window)


@router.get(
    "/maintenance-windows/{window_id}",
    response_model=MaintenanceWindowRead,
    responses=problem_responses(401, 403, 404),
    tags=["maintenance windows"],
)
async def get_window(
    window_id: uuid.UUID, session: SessionDep, _: ConfigReader
) -> MaintenanceWindowRead:
    """Get a maintenance window with its current or next occurrence."""
    return _window_read(await maintenance.get_window(session, window_id))


@router.patch(
    "/maintenance-windows/{window_id}",
    response_model=MaintenanceWindowRead,
    responses=problem_responses(401, 403, 404, 422),
    tags=["maintenance windows"],
)
async def update_window(
    window_id: uuid.UUID,
    body: MaintenanceWindowUpdate,
    session: SessionDep,
    principal: ConfigWriter,
) -> MaintenanceWindowRead:
    """Change a window; incidents it holds are checked again at once."""
    window = await maintenance.update_window(session, window_id, body, actor=principal.as_actor())
    return _window_read(window)


@router.delete(
    "/maintenance-windows/{window_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
    tags=["maintenance windows"],
)
async def delete_window(window_id: uuid.UUID, session: SessionDep, principal: ConfigWriter) -> None:
    """Delete a window; incidents it held start escalating at once."""
    await maintenance.delete_window(session, window_id, actor=principal.as_actor())


async def _silence_reads(session: SessionDep, silences: list[Silence]) -> list[SilenceRead]:
    counts = await maintenance.silenced_alert_counts(session, [s.id for s in silences])
    now = utcnow()
    return [
        SilenceRead(
            id=silence.id,
            service_id=silence.service_id,
            matchers=silence.matchers,
            starts_at=silence.starts_at,
            ends_at=silence.ends_at,
            until_resolved=silence.until_resolved,
            expired_at=silence.expired_at,
            status=maintenance.silence_status(silence, now),
            created_by=silence.created_by,
            comment=silence.comment,
            silenced_alerts=counts.get(silence.id, 0),
            created_at=silence.created_at,
            updated_at=silence.updated_at,
        )
        for silence in silences
    ]


@router.get(
    "/silences",
    response_model=Page[SilenceRead],
    responses=problem_responses(400, 401, 403),
    tags=["silences"],
)
async def list_silences(
    session: SessionDep,
    _: IncidentReader,
    service_id: Annotated[uuid.UUID | None, Query(description="Only this service's")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[SilenceRead]:
    """List silences, newest first."""
    statement = select(Silence)
    if service_id is not None:
        statement = statement.where(Silence.service_id == service_id)
    rows, next_cursor = await fetch_page(
        session,
        statement,
        time_column=Silence.created_at,
        id_column=Silence.id,
        limit=limit,
        cursor=cursor,
        newest_first=True,
    )
    return Page(items=await _silence_reads(session, rows), next_cursor=next_cursor)


@router.post(
    "/silences",
    status_code=status.HTTP_201_CREATED,
    response_model=SilenceRead,
    responses=problem_responses(401, 403, 422),
    tags=["silences"],
)
async def create_silence(
    body: SilenceCreate, session: SessionDep, response: Response, principal: IncidentWriter
) -> SilenceRead:
    """Silence the alerts that match, until ends_at or until they resolve. Triggered
    incidents whose every firing alert is silenced stop paging at once."""
    silence = await maintenance.create_silence(session, body, actor=principal.as_actor())
    response.headers["Location"] = f"/v1/silences/{silence.id}"
    return (await _silence_reads(session, [silence]))[0]


@router.get(
    "/silences/{silence_id}",
    response_model=SilenceRead,
    responses=problem_responses(401, 403, 404),
    tags=["silences"],
)
async def get_silence(silence_id: uuid.UUID, session: SessionDep, _: IncidentReader) -> SilenceRead:
    """Get a silence."""
    return (await _silence_reads(session, [await maintenance.get_silence(session, silence_id)]))[0]


@router.patch(
    "/silences/{silence_id}",
    response_model=SilenceRead,
    responses=problem_responses(401, 403, 404, 422),
    tags=["silences"],
)
async def update_silence(
    silence_id: uuid.UUID, body: SilenceUpdate, session: SessionDep, principal: IncidentWriter
) -> SilenceRead:
    """Extend or shorten a silence, or change its comment."""
    silence = await maintenance.update_silence(
        session, silence_id, body, actor=principal.as_actor()
    )
    return (await _silence_reads(session, [silence]))[0]


@router.post(
    "/silences/{silence_id}/expire",
    response_model=SilenceRead,
    responses=problem_responses(401, 403, 404),
    tags=["silences"],
)
async def expire_silence(
    silence_id: uuid.UUID, session: SessionDep, principal: IncidentWriter
) -> SilenceRead:
    """End a silence now; the incidents it held resume escalating at once."""
    silence = await maintenance.expire_silence(session, silence_id, actor=principal.as_actor())
    return (await _silence_reads(session, [silence]))[0]


@router.delete(
    "/silences/{silence_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
    tags=["silences"],
)
async def delete_silence(
    silence_id: uuid.UUID, session: SessionDep, principal: IncidentWriter
) -> None:
    """Delete a silence and its record; expire it instead to keep the history."""
    await maintenance.delete_silence(session, silence_id, actor=principal.as_actor())
