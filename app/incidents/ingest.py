"""Apply a batch of events: upsert alerts, open or attach incidents, resolve, log, enqueue pages.

This is the hot path. It runs set-based statements on the raw asyncpg connection of the
request's transaction, so a batch of a thousand alerts costs a handful of round trips, and
the jobs it enqueues commit together with the incidents they page for.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from app.core.ids import uuid7
from app.core.logging import get_logger
from app.incidents.events import AlertEvent, EventAction
from app.incidents.models import ActorType
from app.jobs.queue import INCIDENT_RESOLVED, INCIDENT_TRIGGERED, Job, enqueue
from app.rules.classify import DROPPED_OUTCOME, BatchRules, EventRules, classify_batch, record_batch

log = get_logger(__name__)

# What an event did: (outcome name, alert id, incident id).
Outcome = tuple[str, uuid.UUID | None, uuid.UUID | None]


@dataclass(frozen=True, slots=True)
class IntegrationContext:
    """What ingest needs to know about the integration an event arrived on."""

    integration_id: uuid.UUID
    integration_name: str
    kind: str
    service_id: uuid.UUID
    service_name: str
    escalation_policy_id: uuid.UUID | None


@dataclass(slots=True)
class IngestResult:
    incidents_opened: list[uuid.UUID] = field(default_factory=list)
    incidents_updated: list[uuid.UUID] = field(default_factory=list)
    incidents_acknowledged: list[uuid.UUID] = field(default_factory=list)
    incidents_resolved: list[uuid.UUID] = field(default_factory=list)
    alerts_created: int = 0
    alerts_updated: int = 0
    alerts_resolved: int = 0
    # Events that matched nothing (a resolve without an open alert) or came too late.
    events_ignored: int = 0

    @property
    def incidents(self) -> list[uuid.UUID]:
        """Every incident the batch touched, each once, in first-touched order."""
        seen: dict[uuid.UUID, None] = {}
        for group in (
            self.incidents_opened,
            self.incidents_updated,
            self.incidents_acknowledged,
            self.incidents_resolved,
        ):
            for incident_id in group:
                seen.setdefault(incident_id, None)
        return list(seen)


@dataclass(slots=True)
class _Batch:
    """Rows collected while applying one request, written at the end in bulk."""

    context: IntegrationContext
    now: datetime
    result: IngestResult
    # Per event: (outcome, alert_id, incident_id), in request order.
    outcomes: list[Outcome] = field(default_factory=list)
    timeline: list[tuple[uuid.UUID, str, str, dict[str, Any]]] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    # What classification rules, silences and maintenance windows decided per event.
    rules: BatchRules | None = None

    def add_timeline(
        self, incident_id: uuid.UUID, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        self.timeline.append((incident_id, kind, message, data or {}))


def rounds(events: Sequence[AlertEvent]) -> list[list[tuple[int, AlertEvent]]]:
    """Split events so no dedup key appears twice in a round, keeping their order.

    One set-based statement cannot touch the same row twice, so the n-th event for a
    key goes into round n. Real payloads almost always form a single round.
    """
    seen: dict[str, int] = defaultdict(int)
    result: list[list[tuple[int, AlertEvent]]] = []
    for position, event in enumerate(events):
        index = seen[event.dedup_key]
        seen[event.dedup_key] += 1
        if index == len(result):
            result.append([])
        result[index].append((position, event))
    return result


async def ingest_events(
    connection: asyncpg.Connection,
    context: IntegrationContext,
    events: Sequence[AlertEvent],
    now: datetime,
) -> IngestResult:
    """Apply ``events`` in the connection's open transaction; the caller commits."""
    rules = await classify_batch(connection, context, events, now)
    batch = _Batch(context=context, now=now, result=IngestResult(), rules=rules)
    outcomes: list[Outcome] = [
        (DROPPED_OUTCOME if rules.dropped(i) else "ignored", None, None) for i in range(len(events))
    ]
    for round_events in rounds(events):
        triggers = [
            (i, e)
            for i, e in round_events
            if e.action == EventAction.trigger and not rules.dropped(i)
        ]
        acknowledges = [(i, e) for i, e in round_events if e.action == EventAction.acknowledge]
        resolves = [(i, e) for i, e in round_events if e.action == EventAction.resolve]
        if triggers:
            for position, outcome in await _apply_triggers(connection, batch, triggers):
                outcomes[position] = outcome
        if acknowledges:
            for position, outcome in await _apply_acknowledges(connection, batch, acknowledges):
                outcomes[position] = outcome
        if resolves:
            for position, outcome in await _apply_resolves(connection, batch, resolves):
                outcomes[position] = outcome
    batch.outcomes = outcomes
    batch.result.events_ignored = sum(
        1 for outcome, _, _ in outcomes if outcome.startswith("ignored")
    )

    await _insert_events(connection, batch, events)
    await _insert_timeline(connection, batch)
    await record_batch(connection, rules, outcomes)
    await enqueue(connection, batch.jobs)
    await connection.execute(
        "UPDATE integrations SET last_event_at = $2 WHERE id = $1",
        context.integration_id,
        now,
    )
    return batch.result


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


_UPSERT_ALERTS = """
WITH input AS (
    SELECT * FROM unnest(
        $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::jsonb[], $9::jsonb[], $10::jsonb[], $11::jsonb[], $12::timestamptz[]
    ) AS t(id, dedup_key, summary, severity, source, labels, details, links, payload, started_at)
),
fresh AS (
    -- A trigger whose sender timestamp is not after the end of an occurrence already
    -- resolved is a late copy of that occurrence (an Alertmanager HA peer, a retry).
    SELECT input.* FROM input
    WHERE input.started_at IS NULL OR NOT EXISTS (
        SELECT 1 FROM alerts old
        WHERE old.service_id = $1 AND old.dedup_key = input.dedup_key
          AND old.status = 'resolved' AND old.ended_at IS NOT NULL
          AND input.started_at <= old.ended_at
    )
)
INSERT INTO alerts AS a (
    id, service_id, integration_id, dedup_key, status, summary, severity, source, labels,
    details, links, payload, event_count, first_seen_at, last_seen_at, started_at,
    created_at, updated_at
)
SELECT id, $1, $2, dedup_key, 'firing', summary, severity, source, labels,
       details, links, payload, 1, $13, $13, started_at, $13, $13
FROM fresh
ORDER BY dedup_key
ON CONFLICT (service_id, dedup_key) WHERE status = 'firing' DO UPDATE SET
    summary = EXCLUDED.summary,
    severity = EXCLUDED.severity,
    source = EXCLUDED.source,
    labels = EXCLUDED.labels,
    details = EXCLUDED.details,
    links = EXCLUDED.links,
    payload = EXCLUDED.payload,
    event_count = a.event_count + 1,
    last_seen_at = EXCLUDED.last_seen_at,
    updated_at = EXCLUDED.updated_at
RETURNING a.id, a.dedup_key, a.incident_id, (a.xmax = 0) AS inserted
"""

_UPSERT_INCIDENTS = """
WITH input AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::uuid[],
        $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[]
    ) AS t(service_id, escalation_policy_id,
           id, grouping_key, title, severity, urgency, priority, alert_count)
)
INSERT INTO incidents AS i (
    id, service_id, grouping_key, title, status, severity, urgency, priority, alert_count,
    escalation_policy_id, escalation_step, created_at, updated_at
)
SELECT id, service_id, grouping_key, title, 'triggered', severity, urgency, priority,
       alert_count, escalation_policy_id, 0, $10, $10
FROM input
ORDER BY service_id, grouping_key
ON CONFLICT (service_id, grouping_key) WHERE status IN ('triggered', 'acknowledged')
DO UPDATE SET
    alert_count = i.alert_count + EXCLUDED.alert_count,
    priority = LEAST(i.priority, EXCLUDED.priority),
    updated_at = EXCLUDED.updated_at
RETURNING i.id, i.service_id, i.grouping_key, i.number, (i.xmax = 0) AS inserted
"""


async def _apply_triggers(
    connection: asyncpg.Connection,
    batch: _Batch,
    events: list[tuple[int, AlertEvent]],
) -> list[tuple[int, Outcome]]:
    context = batch.context
    rows = await connection.fetch(
        _UPSERT_ALERTS,
        context.service_id,
        context.integration_id,
        [uuid7() for _ in events],
        [e.dedup_key for _, e in events],
        [e.summary for _, e in events],
        [e.severity.value for _, e in events],
        [e.source for _, e in events],
        [_json(e.labels) for _, e in events],
        [_json(e.details) for _, e in events],
        [_json([{"href": link.href, "text": link.text} for link in e.links]) for _, e in events],
        [_json(e.raw) for _, e in events],
        [e.occurred_at for _, e in events],
        batch.now,
    )
    by_key = {row["dedup_key"]: row for row in rows}
    event_by_key = {e.dedup_key: e for _, e in events}

    # New alerts need an incident: the open one for their grouping key, or a new one.
    new_alerts = [row for row in rows if row["inserted"]]
    assert batch.rules is not None
    rules_by_key = {e.dedup_key: batch.rules.by_position[i] for i, e in events}
    incident_by_alert = await _attach_to_incidents(
        connection, batch, new_alerts, event_by_key, rules_by_key
    )

    outcomes: list[tuple[int, Outcome]] = []
    for position, event in events:
        row = by_key.get(event.dedup_key)
        if row is None:
            outcomes.append((position, ("ignored.stale", None, None)))
        elif row["inserted"]:
            batch.result.alerts_created += 1
            outcomes.append((position, ("alert.created", row["id"], incident_by_alert[row["id"]])))
        else:
            batch.result.alerts_updated += 1
            outcomes.append((position, ("alert.updated", row["id"], row["incident_id"])))
            if row["incident_id"] not in batch.result.incidents_updated:
                batch.result.incidents_updated.append(row["incident_id"])
    return outcomes


def grouping_key_for(event: AlertEvent) -> str:
    """Alerts with the same key share an incident: the sender's group, else the alert itself."""
    return event.group_key or event.dedup_key


async def _attach_to_incidents(
    connection: asyncpg.Connection,
    batch: _Batch,
    new_alerts: list[asyncpg.Record],
    event_by_key: dict[str, AlertEvent],
    rules_by_key: dict[str, EventRules],
) -> dict[uuid.UUID, uuid.UUID]:
    if not new_alerts:
        return {}
    # A rule may route an alert to another service, whose open incidents it then joins.
    groups: dict[tuple[uuid.UUID, str], list[asyncpg.Record]] = defaultdict(list)
    for row in new_alerts:
        key = row["dedup_key"]
        service_id = rules_by_key[key].decision.service_id
        groups[(service_id, grouping_key_for(event_by_key[key]))].append(row)

    keys = list(groups)
    firsts = [event_by_key[groups[key][0]["dedup_key"]] for key in keys]
    first_rules = [rules_by_key[groups[key][0]["dedup_key"]] for key in keys]
    incident_rows = await connection.fetch(
        _UPSERT_INCIDENTS,
        [service_id for service_id, _ in keys],
        [rules.escalation_policy_id for rules in first_rules],
        [uuid7() for _ in keys],
        [grouping_key for _, grouping_key in keys],
        [rules.decision.title for rules in first_rules],
        [event.severity.value for event in firsts],
        [rules.decision.paging_urgency for rules in first_rules],
        [
            min(rules_by_key[row["dedup_key"]].decision.priority for row in groups[key])
            for key in keys
        ],
        [len(groups[key]) for key in keys],
        batch.now,
    )

    incident_by_alert: dict[uuid.UUID, uuid.UUID] = {}
    for incident in incident_rows:
        incident_id = incident["id"]
        members = groups[(incident["service_id"], incident["grouping_key"])]
        for row in members:
            incident_by_alert[row["id"]] = incident_id
        if incident["inserted"]:
            batch.result.incidents_opened.append(incident_id)
            first = event_by_key[members[0]["dedup_key"]]
            batch.add_timeline(
                incident_id,
                "incident.triggered",
                f"Incident opened by {batch.context.integration_name}: {first.summary}",
                {"grouping_key": incident["grouping_key"], "number": incident["number"]},
            )
            batch.jobs.append(
                Job(
                    INCIDENT_TRIGGERED,
                    {"incident_id": incident_id},
                    dedupe_key=f"{INCIDENT_TRIGGERED}:{incident_id}",
                )
            )
            log.info(
                "incident.opened",
                incident_id=str(incident_id),
                number=incident["number"],
                service_id=str(incident["service_id"]),
                grouping_key=incident["grouping_key"],
            )
        elif incident_id not in batch.result.incidents_updated:
            batch.result.incidents_updated.append(incident_id)
        for row in members:
            event = event_by_key[row["dedup_key"]]
            batch.add_timeline(
                incident_id,
                "alert.triggered",
                f"Alert triggered: {event.summary}",
                {"alert_id": str(row["id"]), "dedup_key": row["dedup_key"]},
            )

    await connection.execute(
        """
        UPDATE alerts SET incident_id = m.incident_id
        FROM unnest($1::uuid[], $2::uuid[]) AS m(alert_id, incident_id)
        WHERE alerts.id = m.alert_id
        """,
        list(incident_by_alert),
        list(incident_by_alert.values()),
    )
    return incident_by_alert


async def _open_alerts(
    connection: asyncpg.Connection, service_id: uuid.UUID, keys: list[str]
) -> dict[str, asyncpg.Record]:
    rows = await connection.fetch(
        """
        SELECT id, dedup_key, incident_id FROM alerts
        WHERE service_id = $1 AND dedup_key = ANY($2::text[]) AND status = 'firing'
        """,
        service_id,
        keys,
    )
    return {row["dedup_key"]: row for row in rows}


async def _apply_acknowledges(
    connection: asyncpg.Connection,
    batch: _Batch,
    events: list[tuple[int, AlertEvent]],
) -> list[tuple[int, Outcome]]:
    alerts = await _open_alerts(
        connection, batch.context.service_id, [e.dedup_key for _, e in events]
    )
    incident_ids = sorted({row["incident_id"] for row in alerts.values() if row["incident_id"]})
    acknowledged = await transition_incidents(
        connection,
        incident_ids,
        from_statuses=("triggered",),
        to_status="acknowledged",
        actor=actor_for_integration(batch.context),
        now=batch.now,
    )
    for incident_id in acknowledged:
        batch.result.incidents_acknowledged.append(incident_id)
        batch.add_timeline(
            incident_id,
            "incident.acknowledged",
            f"Acknowledged by {batch.context.integration_name}",
        )
    outcomes: list[tuple[int, Outcome]] = []
    for position, event in events:
        row = alerts.get(event.dedup_key)
        if row is None:
            outcomes.append((position, ("ignored.no_open_alert", None, None)))
        else:
            outcomes.append((position, ("incident.acknowledged", row["id"], row["incident_id"])))
    return outcomes


async def _apply_resolves(
    connection: asyncpg.Connection,
    batch: _Batch,
    events: list[tuple[int, AlertEvent]],
) -> list[tuple[int, Outcome]]:
    rows = await connection.fetch(
        """
        UPDATE alerts AS a SET
            status = 'resolved', ended_at = i.ended_at, resolved_at = $3,
            event_count = a.event_count + 1, last_seen_at = $3, updated_at = $3
        FROM unnest($2::text[], $4::timestamptz[]) AS i(dedup_key, ended_at)
        WHERE a.service_id = $1 AND a.dedup_key = i.dedup_key AND a.status = 'firing'
        RETURNING a.id, a.dedup_key, a.incident_id, a.summary
        """,
        batch.context.service_id,
        [e.dedup_key for _, e in events],
        batch.now,
        [e.ended_at or batch.now for _, e in events],
    )
    by_key = {row["dedup_key"]: row for row in rows}
    batch.result.alerts_resolved += len(rows)
    for row in rows:
        if row["incident_id"] is not None:
            batch.add_timeline(
                row["incident_id"],
                "alert.resolved",
                f"Alert resolved: {row['summary']}",
                {"alert_id": str(row["id"]), "dedup_key": row["dedup_key"]},
            )

    touched = sorted({row["incident_id"] for row in rows if row["incident_id"]})
    resolved = await resolve_incidents_without_firing_alerts(
        connection, touched, actor=actor_for_integration(batch.context), now=batch.now
    )
    for incident_id in touched:
        if incident_id in resolved:
            batch.result.incidents_resolved.append(incident_id)
            batch.add_timeline(
                incident_id, "incident.resolved", "Resolved: all alerts have resolved"
            )
            batch.jobs.append(resolved_job(incident_id))
        elif incident_id not in batch.result.incidents_updated:
            batch.result.incidents_updated.append(incident_id)

    outcomes: list[tuple[int, Outcome]] = []
    for position, event in events:
        row = by_key.get(event.dedup_key)
        if row is None:
            outcomes.append((position, ("ignored.no_open_alert", None, None)))
        else:
            outcomes.append((position, ("alert.resolved", row["id"], row["incident_id"])))
    return outcomes


def resolved_job(incident_id: uuid.UUID) -> Job:
    return Job(
        INCIDENT_RESOLVED,
        {"incident_id": incident_id},
        dedupe_key=f"{INCIDENT_RESOLVED}:{incident_id}",
    )


def actor_for_integration(context: IntegrationContext) -> dict[str, Any]:
    return {
        "type": ActorType.integration.value,
        "id": str(context.integration_id),
        "name": context.integration_name,
    }


async def lock_incidents(
    connection: asyncpg.Connection, incident_ids: Iterable[uuid.UUID]
) -> list[asyncpg.Record]:
    """Lock incident rows in id order, so two transactions never wait on each other in a cycle."""
    ids = sorted(set(incident_ids))
    if not ids:
        return []
    return list(
        await connection.fetch(
            "SELECT id, status FROM incidents WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
            ids,
        )
    )


async def transition_incidents(
    connection: asyncpg.Connection,
    incident_ids: Sequence[uuid.UUID],
    *,
    from_statuses: tuple[str, ...],
    to_status: str,
    actor: dict[str, Any],
    now: datetime,
) -> list[uuid.UUID]:
    """Move incidents that are in ``from_statuses`` to ``to_status``; return the ones moved."""
    locked = await lock_incidents(connection, incident_ids)
    movable = [row["id"] for row in locked if row["status"] in from_statuses]
    if not movable:
        return []
    column = {"acknowledged": "acknowledged", "resolved": "resolved"}[to_status]
    await connection.execute(
        f"""
        UPDATE incidents SET status = $2, {column}_at = $3, {column}_by = $4::jsonb,
               updated_at = $3
        WHERE id = ANY($1::uuid[])
        """,  # noqa: S608 - column comes from the fixed mapping above
        movable,
        to_status,
        now,
        _json(actor),
    )
    return movable


async def resolve_incidents_without_firing_alerts(
    connection: asyncpg.Connection,
    incident_ids: Sequence[uuid.UUID],
    *,
    actor: dict[str, Any],
    now: datetime,
) -> set[uuid.UUID]:
    """Resolve the open incidents among ``incident_ids`` that have no firing alert left.

    The rows are locked first, in a statement of their own: under READ COMMITTED the
    next statement takes a new snapshot, so it sees an alert that a concurrent
    transaction attached while we waited for the lock.
    """
    locked = await lock_incidents(connection, incident_ids)
    open_ids = [row["id"] for row in locked if row["status"] in ("triggered", "acknowledged")]
    if not open_ids:
        return set()
    rows = await connection.fetch(
        """
        UPDATE incidents SET status = 'resolved', resolved_at = $2, resolved_by = $3::jsonb,
               updated_at = $2
        WHERE id = ANY($1::uuid[])
          AND NOT EXISTS (
              SELECT 1 FROM alerts WHERE alerts.incident_id = incidents.id
                AND alerts.status = 'firing'
          )
        RETURNING id
        """,
        open_ids,
        now,
        _json(actor),
    )
    resolved = {row["id"] for row in rows}
    for incident_id in resolved:
        log.info("incident.resolved", incident_id=str(incident_id), by=actor.get("name"))
    return resolved


async def _insert_events(
    connection: asyncpg.Connection, batch: _Batch, events: Sequence[AlertEvent]
) -> None:
    await connection.execute(
        """
        INSERT INTO events (
            id, integration_id, service_id, received_at, action, dedup_key, outcome,
            alert_id, incident_id, summary, payload
        )
        SELECT id, $1, $2, $3, action, dedup_key, outcome, alert_id, incident_id, summary, payload
        FROM unnest(
            $4::uuid[], $5::text[], $6::text[], $7::text[], $8::uuid[], $9::uuid[],
            $10::text[], $11::jsonb[]
        ) AS t(id, action, dedup_key, outcome, alert_id, incident_id, summary, payload)
        """,
        batch.context.integration_id,
        batch.context.service_id,
        batch.now,
        [uuid7() for _ in events],
        [e.action.value for e in events],
        [e.dedup_key for e in events],
        [outcome for outcome, _, _ in batch.outcomes],
        [alert_id for _, alert_id, _ in batch.outcomes],
        [incident_id for _, _, incident_id in batch.outcomes],
        [e.summary for e in events],
        [_json(e.raw) for e in events],
    )


async def _insert_timeline(connection: asyncpg.Connection, batch: _Batch) -> None:
    if not batch.timeline:
        return
    actor = actor_for_integration(batch.context)
    await insert_timeline(
        connection,
        [(incident_id, kind, message, data) for incident_id, kind, message, data in batch.timeline],
        actor=actor,
        now=batch.now,
    )


async def insert_timeline(
    connection: asyncpg.Connection,
    entries: Sequence[tuple[uuid.UUID, str, str, dict[str, Any]]],
    *,
    actor: dict[str, Any],
    now: datetime,
) -> None:
    """Append timeline entries ``(incident_id, kind, message, data)`` by one actor."""
    if not entries:
        return
    actor_id = uuid.UUID(actor["id"]) if actor.get("id") else None
    await connection.execute(
        """
        INSERT INTO timeline_entries (
            id, incident_id, at, kind, actor_type, actor_id, actor_name, message, data
        )
        SELECT id, incident_id, $1, kind, $2, $3, $4, message, data
        FROM unnest($5::uuid[], $6::uuid[], $7::text[], $8::text[], $9::jsonb[])
            AS t(id, incident_id, kind, message, data)
        """,
        now,
        actor["type"],
        actor_id,
        actor.get("name", ""),
        [uuid7() for _ in entries],
        [entry[0] for entry in entries],
        [entry[1] for entry in entries],
        [entry[2] for entry in entries],
        [_json(entry[3]) for entry in entries],
    )
