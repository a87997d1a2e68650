"""Decide, before an escalation step pages, whether a maintenance window, a silence or a
suppressing rule holds the incident, and schedule the step again when the hold ends.

A held step neither pages nor advances, so escalation resumes at the same level. The
hold is stored in ``paging_holds`` and every change of hold state gets a timeline entry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.core.logging import get_logger
from app.core.time import isoformat, utcnow
from app.incidents.events import Severity
from app.jobs.queue import enqueue
from app.rules.classify import live_until_resolved, matching_silences
from app.rules.engine import AlertFacts
from app.rules.snapshot import Snapshot, current_snapshot
from app.rules.timeline import SYSTEM_ACTOR, append_timeline, escalation_step_job, from_json
from app.rules.windows import Silence

log = get_logger(__name__)

# An incident with more firing alerts than this is never held by silences or rules,
# because checking each alert at every step would cost too much.
MAX_ALERTS_CHECKED = 5000

_FIRING_ALERTS = """
SELECT a.id, a.dedup_key, a.summary, a.severity, a.source, a.labels, a.details,
       a.service_id, s.name AS service, coalesce(i.name, '') AS integration,
       coalesce(i.kind, '') AS integration_kind, coalesce(d.suppressed, false) AS suppressed
FROM alerts a
JOIN services s ON s.id = a.service_id
LEFT JOIN integrations i ON i.id = a.integration_id
LEFT JOIN alert_decisions d ON d.alert_id = a.id
WHERE a.incident_id = $1 AND a.status = 'firing'
ORDER BY a.id
LIMIT $2
"""


@dataclass(frozen=True, slots=True)
class Hold:
    kind: str
    ref_id: uuid.UUID | None
    resume_at: datetime | None
    reason: str


def facts_from_row(row: asyncpg.Record) -> AlertFacts:
    """Rebuild the facts rules saw from a stored alert (the sender's raw severity is not
    stored, so ``severity_raw`` is empty here)."""
    severity = row["severity"]
    return AlertFacts(
        action="trigger",
        dedup_key=row["dedup_key"],
        summary=row["summary"],
        severity=Severity(severity) if severity in Severity.__members__ else Severity.critical,
        severity_raw=None,
        source=row["source"],
        labels=from_json(row["labels"]),
        details=from_json(row["details"]),
        integration=row["integration"],
        integration_kind=row["integration_kind"],
        service_id=row["service_id"],
        service=row["service"],
    )


def _creator(silence: Silence) -> str:
    return str(silence.created_by.get("name") or silence.created_by.get("type") or "someone")


async def find_hold(
    connection: asyncpg.Connection,
    snapshot: Snapshot,
    *,
    incident_id: uuid.UUID,
    service_id: uuid.UUID,
    now: datetime,
) -> Hold | None:
    """Return what holds the incident's paging at ``now``, or None when it may page."""
    window = snapshot.active_window(service_id, now)
    if window is not None:
        occurrence = window.occurrence_at(now)
        assert occurrence is not None
        return Hold(
            "maintenance",
            window.id,
            occurrence.ends_at,
            f"Paging paused: the service is in maintenance window '{window.name}' until "
            f"{isoformat(occurrence.ends_at)}",
        )

    rows = await connection.fetch(_FIRING_ALERTS, incident_id, MAX_ALERTS_CHECKED + 1)
    if not rows or len(rows) > MAX_ALERTS_CHECKED:
        return None
    silenced: dict[uuid.UUID, list[Silence]] = {}
    for row in rows:
        if row["suppressed"]:
            continue
        found = matching_silences(snapshot, facts_from_row(row), service_id, now)
        if not found:
            return None
        silenced[row["id"]] = found

    pending = {s.id for found in silenced.values() for s in found if s.until_resolved}
    live = await live_until_resolved(connection, pending, now)
    for alert_id, found in silenced.items():
        silenced[alert_id] = [s for s in found if not s.until_resolved or s.id in live]
        if not silenced[alert_id]:
            return None
    if not silenced:
        return Hold(
            "suppressed",
            None,
            None,
            "Paging suppressed: every firing alert of the incident is suppressed by a rule",
        )

    await _remember_silenced(connection, silenced, now)
    return _silence_hold(silenced)


def _silence_hold(silenced: dict[uuid.UUID, list[Silence]]) -> Hold:
    # An alert is free again when the last silence matching it ends; the incident may
    # page again when the first of its alerts is free.
    free_at: list[datetime] = []
    for found in silenced.values():
        ends = [s.ends_at for s in found]
        if all(end is not None for end in ends):
            free_at.append(max(end for end in ends if end is not None))
    resume_at = min(free_at) if free_at else None
    first = next(iter(silenced.values()))[0]
    until = f"until {isoformat(resume_at)}" if resume_at else "until its alerts resolve"
    return Hold(
        "silence",
        first.id,
        resume_at,
        f"Paging stopped: silenced by {_creator(first)} {until} ({first.comment})",
    )


async def _remember_silenced(
    connection: asyncpg.Connection, silenced: dict[uuid.UUID, list[Silence]], now: datetime
) -> None:
    pairs = [(s.id, alert_id) for alert_id, found in silenced.items() for s in found]
    await connection.execute(
        """
        INSERT INTO silenced_alerts (silence_id, alert_id, at)
        SELECT silence_id, alert_id, $3 FROM unnest($1::uuid[], $2::uuid[])
            AS t(silence_id, alert_id)
        ON CONFLICT DO NOTHING
        """,
        [silence_id for silence_id, _ in pairs],
        [alert_id for _, alert_id in pairs],
        now,
    )


async def hold_escalation(
    connection: asyncpg.Connection,
    *,
    incident_id: uuid.UUID,
    service_id: uuid.UUID,
    step: int,
    epoch: int = 0,
    now: datetime | None = None,
) -> bool:
    """Return True when the step must not page now; record the hold and its end.

    Call with the incident row locked, in the transaction of the escalation step.
    """
    now = now or utcnow()
    snapshot = await current_snapshot(connection)
    hold = await find_hold(
        connection, snapshot, incident_id=incident_id, service_id=service_id, now=now
    )
    existing = await connection.fetchrow(
        "SELECT kind, ref_id, resume_at, reason FROM paging_holds WHERE incident_id = $1",
        incident_id,
    )
    if hold is None:
        if existing is not None:
            await connection.execute("DELETE FROM paging_holds WHERE incident_id = $1", incident_id)
            await append_timeline(
                connection,
                [(incident_id, "escalation.resumed", "Paging resumed", {"step": step})],
                actor=SYSTEM_ACTOR,
                now=now,
            )
            log.info("escalation.resumed", incident_id=str(incident_id), step=step)
        return False

    await connection.execute(
        """
        INSERT INTO paging_holds (incident_id, kind, ref_id, step, held_at, resume_at, reason)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (incident_id) DO UPDATE SET
            kind = EXCLUDED.kind, ref_id = EXCLUDED.ref_id, step = EXCLUDED.step,
            resume_at = EXCLUDED.resume_at, reason = EXCLUDED.reason
        """,
        incident_id,
        hold.kind,
        hold.ref_id,
        step,
        now,
        hold.resume_at,
        hold.reason,
    )
    changed = existing is None or (
        existing["kind"],
        existing["ref_id"],
        existing["resume_at"],
    ) != (hold.kind, hold.ref_id, hold.resume_at)
    if changed:
        data: dict[str, Any] = {
            "step": step,
            "hold": hold.kind,
            "ref_id": str(hold.ref_id) if hold.ref_id else None,
            "resume_at": isoformat(hold.resume_at) if hold.resume_at else None,
        }
        await append_timeline(
            connection,
            [(incident_id, "escalation.held", hold.reason, data)],
            actor=SYSTEM_ACTOR,
            now=now,
        )
        log.info("escalation.held", incident_id=str(incident_id), step=step, hold=hold.kind)
    if hold.resume_at is not None and hold.resume_at > now:
        await enqueue(
            connection,
            [
                escalation_step_job(
                    incident_id,
                    step,
                    epoch=epoch,
                    delay=hold.resume_at - now,
                    reason=f"resume:{isoformat(hold.resume_at)}",
                )
            ],
        )
    return True


async def release_holds(
    connection: asyncpg.Connection, ref_id: uuid.UUID, *, reason: str
) -> list[uuid.UUID]:
    """Run the held step now for incidents held by a window or silence that changed or ended.

    The step handler checks again, so an incident still covered by the changed window or
    silence is held again with the new end.
    """
    rows = await connection.fetch(
        """
        SELECT h.incident_id, h.step, i.escalation_epoch FROM paging_holds h
        JOIN incidents i ON i.id = h.incident_id WHERE h.ref_id = $1
        """,
        ref_id,
    )
    await enqueue(
        connection,
        [
            escalation_step_job(
                row["incident_id"],
                row["step"],
                epoch=row["escalation_epoch"],
                reason=f"{reason}:{ref_id}",
            )
            for row in rows
        ],
    )
    return [row["incident_id"] for row in rows]
