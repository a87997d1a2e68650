"""Maintenance windows and silences: validation, changes, and their effect on open incidents."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.core.errors import NotFound, Unprocessable
from app.core.logging import get_logger
from app.core.time import isoformat, utcnow
from app.rules import service as rules_service
from app.rules.holds import MAX_ALERTS_CHECKED, facts_from_row, hold_escalation, release_holds
from app.rules.models import MaintenanceWindow, Silence, SilencedAlert
from app.rules.schemas import (
    MaintenanceWindowCreate,
    MaintenanceWindowUpdate,
    SilenceCreate,
    SilenceUpdate,
)
from app.rules.snapshot import bump_revision, silence_from_row, window_from_row
from app.rules.timeline import append_timeline
from app.rules.windows import MaintenanceWindow as WindowValue
from app.rules.windows import Silence as SilenceValue
from app.rules.windows import WindowError
from app.services.models import Service

log = get_logger(__name__)


def _window_document(window: MaintenanceWindow) -> dict[str, Any]:
    return {
        "service_id": str(window.service_id),
        "name": window.name,
        "description": window.description,
        "starts_at": isoformat(window.starts_at),
        "ends_at": isoformat(window.ends_at),
        "time_zone": window.time_zone,
        "rrule": window.rrule,
    }


def window_value(window: MaintenanceWindow) -> WindowValue:
    """Compile a stored window, turning invalid fields into a 422 that names them."""
    try:
        value = window_from_row(
            {
                "id": window.id or uuid.uuid4(),
                "service_id": window.service_id,
                "name": window.name,
                "starts_at": window.starts_at,
                "ends_at": window.ends_at,
                "time_zone": window.time_zone,
                "rrule": window.rrule,
            }
        )
        # Checked when a window is saved, not when stored windows load, so that a window
        # saved before this check keeps working.
        value.check_occurrences_apart()
        return value
    except WindowError as exc:
        raise Unprocessable(f"{exc.field}: {exc.message}", field=exc.field) from exc


async def get_window(session: AsyncSession, window_id: uuid.UUID) -> MaintenanceWindow:
    window = await session.get(MaintenanceWindow, window_id)
    if window is None:
        raise NotFound(f"Maintenance window {window_id} does not exist.", field="window_id")
    return window


async def create_window(
    session: AsyncSession, body: MaintenanceWindowCreate, *, actor: dict[str, Any]
) -> MaintenanceWindow:
    if await session.get(Service, body.service_id) is None:
        raise Unprocessable(f"Service {body.service_id} does not exist.", field="service_id")
    window = MaintenanceWindow(
        id=uuid.uuid4(),
        **body.model_dump(),
        created_by=actor,
    )
    window.rrule = window.rrule or None
    window_value(window)
    await bump_revision(await raw_connection(session))
    session.add(window)
    await session.flush()
    await rules_service.audit(
        session,
        actor=actor,
        entity_type="maintenance_window",
        entity_id=window.id,
        action="created",
        after=_window_document(window),
    )
    return window


async def update_window(
    session: AsyncSession,
    window_id: uuid.UUID,
    body: MaintenanceWindowUpdate,
    *,
    actor: dict[str, Any],
) -> MaintenanceWindow:
    await bump_revision(await raw_connection(session))
    window = await get_window(session, window_id)
    before = _window_document(window)
    for name, value in body.model_dump(exclude_unset=True).items():
        setattr(window, name, value)
    window.rrule = window.rrule or None
    window_value(window)
    window.updated_at = utcnow()
    await session.flush()
    # Incidents held by the old times run their step again and are held anew if needed.
    await release_holds(await raw_connection(session), window.id, reason="window-changed")
    await rules_service.audit(
        session,
        actor=actor,
        entity_type="maintenance_window",
        entity_id=window.id,
        action="updated",
        before=before,
        after=_window_document(window),
    )
    return window


async def delete_window(
    session: AsyncSession, window_id: uuid.UUID, *, actor: dict[str, Any]
) -> None:
    await bump_revision(await raw_connection(session))
    window = await get_window(session, window_id)
    before = _window_document(window)
    await release_holds(await raw_connection(session), window.id, reason="window-deleted")
    await session.delete(window)
    await rules_service.audit(
        session,
        actor=actor,
        entity_type="maintenance_window",
        entity_id=window_id,
        action="deleted",
        before=before,
    )


def _silence_document(silence: Silence) -> dict[str, Any]:
    return {
        "service_id": str(silence.service_id) if silence.service_id else None,
        "matchers": silence.matchers,
        "starts_at": isoformat(silence.starts_at),
        "ends_at": isoformat(silence.ends_at) if silence.ends_at else None,
        "until_resolved": silence.until_resolved,
        "expired_at": isoformat(silence.expired_at) if silence.expired_at else None,
        "comment": silence.comment,
    }


def silence_value(silence: Silence) -> SilenceValue:
    try:
        return silence_from_row(
            {
                "id": silence.id,
                "service_id": silence.service_id,
                "matchers": silence.matchers,
                "starts_at": silence.starts_at,
                "ends_at": silence.ends_at,
                "until_resolved": silence.until_resolved,
                "expired_at": silence.expired_at,
                "created_by": silence.created_by,
                "comment": silence.comment,
            }
        )
    except WindowError as exc:
        raise Unprocessable(f"{exc.field}: {exc.message}", field=exc.field) from exc


def silence_status(silence: Silence, now: datetime) -> str:
    if silence.expired_at is not None and silence.expired_at <= now:
        return "expired"
    if silence.ends_at is not None and silence.ends_at <= now:
        return "expired"
    return "pending" if silence.starts_at > now else "active"


async def get_silence(session: AsyncSession, silence_id: uuid.UUID) -> Silence:
    silence = await session.get(Silence, silence_id)
    if silence is None:
        raise NotFound(f"Silence {silence_id} does not exist.", field="silence_id")
    return silence


async def silenced_alert_counts(
    session: AsyncSession, silence_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        select(SilencedAlert.silence_id, func.count())
        .where(SilencedAlert.silence_id.in_(silence_ids))
        .group_by(SilencedAlert.silence_id)
    )
    return {silence_id: int(count) for silence_id, count in rows.all()}


async def create_silence(
    session: AsyncSession, body: SilenceCreate, *, actor: dict[str, Any]
) -> Silence:
    now = utcnow()
    if body.service_id is not None and await session.get(Service, body.service_id) is None:
        raise Unprocessable(f"Service {body.service_id} does not exist.", field="service_id")
    starts_at = body.starts_at or now
    if body.ends_at is None and not body.until_resolved:
        raise Unprocessable(
            "Give ends_at, or set until_resolved to end when the alerts resolve.", field="ends_at"
        )
    if body.ends_at is not None and body.ends_at <= max(starts_at, now):
        raise Unprocessable("ends_at must be in the future and after starts_at.", field="ends_at")
    silence = Silence(
        id=uuid.uuid4(),
        service_id=body.service_id,
        matchers=body.matchers,
        starts_at=starts_at,
        ends_at=body.ends_at,
        until_resolved=body.until_resolved,
        created_by=actor,
        comment=body.comment,
        created_at=now,
        updated_at=now,
    )
    value = silence_value(silence)

    connection = await raw_connection(session)
    await bump_revision(connection)
    session.add(silence)
    await session.flush()
    await rules_service.audit(
        session,
        actor=actor,
        entity_type="silence",
        entity_id=silence.id,
        action="created",
        after=_silence_document(silence),
    )
    if starts_at <= now:
        await apply_silence(connection, value, now)
    return silence


async def apply_silence(
    connection: asyncpg.Connection, silence: SilenceValue, now: datetime
) -> None:
    """Silence the firing alerts of triggered incidents that match, at once.

    Incidents whose every firing alert is now silenced or suppressed stop paging: their
    notifications still waiting for delivery are cancelled, and the hold is recorded so
    escalation resumes at the same level when the silence ends.
    """
    rows = await connection.fetch(
        """
        SELECT a.id, a.incident_id, a.dedup_key, a.summary, a.severity, a.source, a.labels,
               a.details, a.service_id, s.name AS service,
               coalesce(i.name, '') AS integration, coalesce(i.kind, '') AS integration_kind,
               inc.service_id AS incident_service_id, inc.escalation_step
        FROM alerts a
        JOIN incidents inc ON inc.id = a.incident_id AND inc.status = 'triggered'
        JOIN services s ON s.id = a.service_id
        LEFT JOIN integrations i ON i.id = a.integration_id
        WHERE a.status = 'firing' AND ($1::uuid IS NULL OR inc.service_id = $1)
        """,
        silence.service_id,
    )
    # Like ingest, a silence compares its service with the incident's, after routing.
    matched = [
        row
        for row in rows
        if silence.matches(
            dataclasses.replace(facts_from_row(row), service_id=row["incident_service_id"])
        )
    ]
    if not matched:
        return
    await connection.execute(
        """
        INSERT INTO silenced_alerts (silence_id, alert_id, at)
        SELECT $1, alert_id, $3 FROM unnest($2::uuid[]) AS t(alert_id)
        ON CONFLICT DO NOTHING
        """,
        silence.id,
        [row["id"] for row in matched],
        now,
    )
    incidents = {row["incident_id"]: row for row in matched}
    if len(incidents) > MAX_ALERTS_CHECKED:
        log.warning("silence.too_many_incidents", silence_id=str(silence.id), count=len(incidents))
    held = []
    locked = await connection.fetch(
        "SELECT id, service_id, escalation_step, status FROM incidents "
        "WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
        sorted(incidents),
    )
    for row in locked:
        if row["status"] != "triggered":
            continue
        if await hold_escalation(
            connection,
            incident_id=row["id"],
            service_id=row["service_id"],
            step=row["escalation_step"],
            now=now,
        ):
            held.append(row["id"])
    if held:
        cancelled = await connection.fetch(
            """
            UPDATE notifications SET status = 'cancelled', updated_at = $2,
                   last_error = 'incident silenced before delivery'
            WHERE incident_id = ANY($1::uuid[]) AND event = 'incident.triggered'
              AND status IN ('pending', 'retrying')
            RETURNING incident_id
            """,
            held,
            now,
        )
        counts: dict[uuid.UUID, int] = {}
        for row in cancelled:
            counts[row["incident_id"]] = counts.get(row["incident_id"], 0) + 1
        entries = [
            (
                incident_id,
                "notification.cancelled",
                f"{count} pending notification(s) cancelled: the incident is silenced",
                {"silence_id": str(silence.id), "count": count},
            )
            for incident_id, count in counts.items()
        ]
        await append_timeline(connection, entries, actor=silence.created_by, now=now)
    log.info(
        "silence.applied",
        silence_id=str(silence.id),
        alerts=len(matched),
        incidents_held=len(held),
    )


async def update_silence(
    session: AsyncSession, silence_id: uuid.UUID, body: SilenceUpdate, *, actor: dict[str, Any]
) -> Silence:
    connection = await raw_connection(session)
    await bump_revision(connection)
    silence = await get_silence(session, silence_id)
    now = utcnow()
    if silence_status(silence, now) == "expired":
        raise Unprocessable("The silence has expired; create a new one.", field="silence_id")
    before = _silence_document(silence)
    changes = body.model_dump(exclude_unset=True)
    if "ends_at" in changes:
        ends_at = changes["ends_at"]
        if ends_at is None and not silence.until_resolved:
            raise Unprocessable("ends_at is required for this silence.", field="ends_at")
        if ends_at is not None and ends_at <= max(silence.starts_at, now):
            raise Unprocessable(
                "ends_at must be in the future and after starts_at.", field="ends_at"
            )
        silence.ends_at = ends_at
    if changes.get("comment"):
        silence.comment = changes["comment"]
    silence.updated_at = now
    await session.flush()
    await release_holds(connection, silence.id, reason=f"silence-changed-{now.timestamp()}")
    await rules_service.audit(
        session,
        actor=actor,
        entity_type="silence",
        entity_id=silence.id,
        action="updated",
        before=before,
        after=_silence_document(silence),
    )
    return silence


async def expire_silence(
    session: AsyncSession, silence_id: uuid.UUID, *, actor: dict[str, Any]
) -> Silence:
    """End a silence now; incidents it held run their escalation step again at once."""
    connection = await raw_connection(session)
    await bump_revision(connection)
    silence = await get_silence(session, silence_id)
    now = utcnow()
    if silence_status(silence, now) == "expired":
        return silence
    before = _silence_document(silence)
    silence.expired_at = now
    silence.updated_at = now
    await session.flush()
    released = await release_holds(connection, silence.id, reason="silence-expired")
    await rules_service.audit(
        session,
        actor=actor,
        entity_type="silence",
        entity_id=silence.id,
        action="expired",
        before=before,
        after=_silence_document(silence),
    )
    log.info("silence.expired", silence_id=str(silence.id), incidents_released=len(released))
    return silence


async def delete_silence(
    session: AsyncSession, silence_id: uuid.UUID, *, actor: dict[str, Any]
) -> None:
    connection = await raw_connection(session)
    await bump_revision(connection)
    silence = await get_silence(session, silence_id)
    before = _silence_document(silence)
    await release_holds(connection, silence.id, reason="silence-deleted")
    await session.delete(silence)
    await rules_service.audit(
        session,
        actor=actor,
        entity_type="silence",
        entity_id=silence_id,
        action="deleted",
        before=before,
    )
