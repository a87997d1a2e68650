"""Apply a batch of events: upsert alerts, open or attach incidents, resolve, log, enqueue pages.

This is the hot path. It runs set-based statements on the raw asyncpg connection of the
request's transaction, so a batch of a thousand alerts costs a handful of round trips, and
the jobs it enqueues commit together with the incidents they page for.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.core.ids import uuid7
from app.core.logging import get_logger
from app.incidents.events import AlertEvent, EventAction
from app.incidents.grouping import Grouping, GroupingSettings, group, storable_key
from app.incidents.models import ActorType
from app.incidents.repository import (
    TimelineRow,
    acknowledge_incidents,
    acknowledgement_jobs,
    escalation_job,
    insert_timeline,
    resolve_incidents_without_firing_alerts,
    resolved_job,
    to_json,
)
from app.jobs.queue import INCIDENT_SETTLE, INCIDENT_TRIGGERED, Job, enqueue
from app.rules.classify import DROPPED_OUTCOME, BatchRules, EventRules, classify_batch, record_batch

log = get_logger(__name__)

# The effect of one event: (outcome name, alert id, incident id).
Outcome = tuple[str, uuid.UUID | None, uuid.UUID | None]


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    """A service's grouping, threshold, flapping and reopen settings; None means off."""

    grouping: GroupingSettings = field(default_factory=GroupingSettings)
    threshold_count: int | None = None
    threshold_window_seconds: int | None = None
    flap_threshold: int | None = None
    flap_window_seconds: int | None = None
    flap_settle_seconds: int | None = None
    reopen_window_seconds: int | None = None
    acknowledge_timeout_seconds: int | None = None


# The service columns behind LifecycleSettings, for a query that aliases services as s.
LIFECYCLE_COLUMNS = """
       s.grouping_mode, s.grouping_fields, s.grouping_window_seconds,
       s.alert_threshold_count, s.alert_threshold_window_seconds,
       s.flap_threshold, s.flap_window_seconds, s.flap_settle_seconds,
       s.reopen_window_seconds, s.acknowledge_timeout_seconds"""


def lifecycle_from_row(row: asyncpg.Record) -> LifecycleSettings:
    return LifecycleSettings(
        grouping=GroupingSettings(
            mode=row["grouping_mode"],
            fields=tuple(row["grouping_fields"] or ()),
            window_seconds=row["grouping_window_seconds"],
        ),
        threshold_count=row["alert_threshold_count"],
        threshold_window_seconds=row["alert_threshold_window_seconds"],
        flap_threshold=row["flap_threshold"],
        flap_window_seconds=row["flap_window_seconds"],
        flap_settle_seconds=row["flap_settle_seconds"],
        reopen_window_seconds=row["reopen_window_seconds"],
        acknowledge_timeout_seconds=row["acknowledge_timeout_seconds"],
    )


@dataclass(frozen=True, slots=True)
class IntegrationContext:
    """The integration an event arrived on, with the service settings that ingest applies."""

    integration_id: uuid.UUID
    integration_name: str
    kind: str
    service_id: uuid.UUID
    service_name: str
    escalation_policy_id: uuid.UUID | None
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)


@dataclass(slots=True)
class IngestResult:
    incidents_opened: list[uuid.UUID] = field(default_factory=list)
    incidents_updated: list[uuid.UUID] = field(default_factory=list)
    incidents_acknowledged: list[uuid.UUID] = field(default_factory=list)
    incidents_resolved: list[uuid.UUID] = field(default_factory=list)
    alerts_created: int = 0
    alerts_updated: int = 0
    alerts_resolved: int = 0
    # New alerts waiting for their grouping key to reach the service's threshold.
    alerts_pending: int = 0
    # Events that matched nothing (a resolve without an open alert) or came too late.
    events_ignored: int = 0
    # Per event of the request, in order: (outcome, alert id, incident id).
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, outcomes: list[Outcome]) -> None:
        """Set the event counters and ``outcomes`` from per-event outcomes."""
        self.outcomes = outcomes
        names = [outcome for outcome, _, _ in outcomes]
        self.alerts_created = names.count("alert.created")
        self.alerts_updated = names.count("alert.updated")
        self.alerts_resolved = names.count("alert.resolved")
        self.alerts_pending = names.count("alert.pending")
        self.events_ignored = sum(1 for name in names if name.startswith("ignored"))

    @property
    def incidents(self) -> list[uuid.UUID]:
        """Every incident the batch touched, each once, in first-touched order."""
        seen: dict[uuid.UUID, None] = {}
        for incident_ids in (
            self.incidents_opened,
            self.incidents_updated,
            self.incidents_acknowledged,
            self.incidents_resolved,
        ):
            for incident_id in incident_ids:
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
    timeline: list[TimelineRow] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    # What classification rules, silences and maintenance windows decided per event.
    rules: BatchRules = field(default_factory=lambda: BatchRules(now=datetime.min))
    # The settings of each service the batch opens incidents in: the integration's own
    # and those that rules routed alerts to.
    lifecycles: dict[uuid.UUID, LifecycleSettings] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lifecycles.setdefault(self.context.service_id, self.context.lifecycle)

    def add_timeline(
        self, incident_id: uuid.UUID, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        self.timeline.append((incident_id, kind, message, data or {}))

    def touch(self, incident_id: uuid.UUID) -> None:
        """Record that the batch changed an incident it did not open, acknowledge or resolve."""
        if incident_id not in self.result.incidents_updated:
            self.result.incidents_updated.append(incident_id)


# Events that share one statement: the positions they had in the request, and the event
# whose content is applied (the last of repeated triggers for one key).
Item = tuple[list[int], AlertEvent]


def merge_repeats(events: Sequence[AlertEvent], skip: Callable[[int], bool]) -> list[Item]:
    """Merge each run of triggers for one dedup key into one item, keeping the order.

    A hot key can bring hundreds of triggers in one batch (many requests committed
    together); one upsert that counts them all replaces hundreds of statements. A run
    ends at an acknowledge or resolve for the key, so the order of actions is kept.
    Positions for which ``skip`` is true (dropped by a rule) are left out.
    """
    items: list[Item] = []
    open_run: dict[str, int] = {}
    for position, event in enumerate(events):
        if skip(position):
            continue
        key = event.dedup_key
        if event.action != EventAction.trigger:
            open_run.pop(key, None)
            items.append(([position], event))
            continue
        index = open_run.get(key)
        if index is None:
            open_run[key] = len(items)
            items.append(([position], event))
        else:
            positions = items[index][0]
            positions.append(position)
            items[index] = (positions, event)
    return items


def rounds(items: Sequence[Item]) -> list[list[Item]]:
    """Split items so no dedup key appears twice in a round, keeping their order.

    One set-based statement cannot touch the same row twice, so the n-th item for a key
    goes into round n. Real payloads almost always form a single round.
    """
    seen: dict[str, int] = defaultdict(int)
    result: list[list[Item]] = []
    for item in items:
        key = item[1].dedup_key
        index = seen[key]
        seen[key] += 1
        if index == len(result):
            result.append([])
        result[index].append(item)
    return result


async def ingest_events(
    connection: asyncpg.Connection,
    context: IntegrationContext,
    events: Sequence[AlertEvent],
    now: datetime,
) -> IngestResult:
    """Apply ``events`` in the connection's open transaction; the caller commits."""
    events = [
        event
        if storable_key(event.dedup_key) == event.dedup_key
        else replace(event, dedup_key=storable_key(event.dedup_key))
        for event in events
    ]
    rules = await classify_batch(connection, context, events, now)
    batch = _Batch(context=context, now=now, result=IngestResult(), rules=rules)
    outcomes: list[Outcome] = [
        (DROPPED_OUTCOME if rules.dropped(i) else "ignored", None, None) for i in range(len(events))
    ]
    for round_items in rounds(merge_repeats(events, rules.dropped)):
        triggers = [item for item in round_items if item[1].action == EventAction.trigger]
        acknowledges = [
            (item[0][0], item[1])
            for item in round_items
            if item[1].action == EventAction.acknowledge
        ]
        resolves = [
            (item[0][0], item[1]) for item in round_items if item[1].action == EventAction.resolve
        ]
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
    batch.result.count(outcomes)

    await _insert_events(connection, batch, events)
    await insert_timeline(connection, batch.timeline, actor=actor_for_integration(context), now=now)
    await record_batch(connection, rules, outcomes)
    await enqueue(connection, batch.jobs)
    # Every request of an integration would queue on this row until its commit, so the
    # time is written at most once a second, and skipped while another request holds it.
    await connection.execute(
        """
        UPDATE integrations SET last_event_at = $2 WHERE id = (
            SELECT id FROM integrations WHERE id = $1
              AND (last_event_at IS NULL OR last_event_at < $2::timestamptz - interval '1 second')
            FOR NO KEY UPDATE SKIP LOCKED
        )
        """,
        context.integration_id,
        now,
    )
    return batch.result


def actor_for_integration(context: IntegrationContext) -> dict[str, Any]:
    return {
        "type": ActorType.integration.value,
        "id": str(context.integration_id),
        "name": context.integration_name,
    }


_UPSERT_ALERTS = """
WITH input AS (
    SELECT * FROM unnest(
        $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::jsonb[], $9::jsonb[], $10::jsonb[], $11::jsonb[], $12::timestamptz[], $14::text[],
        $15::int[]
    ) AS t(
        id, dedup_key, summary, severity, source, labels, details, links, payload, started_at,
        grouping_key, repeats
    )
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
    id, service_id, integration_id, dedup_key, grouping_key, status, summary, severity,
    source, labels, details, links, payload, event_count, first_seen_at, last_seen_at,
    started_at, sender_time, created_at, updated_at
)
SELECT id, $1, $2, dedup_key, grouping_key, 'firing', summary, severity,
       source, labels, details, links, payload, repeats, $13, $13,
       started_at, started_at, $13, $13
FROM fresh
ORDER BY dedup_key
ON CONFLICT (service_id, dedup_key) WHERE status = 'firing' DO UPDATE SET
    -- An event older than what the alert has seen counts, but does not overwrite it.
    summary = CASE WHEN a.sender_time > EXCLUDED.sender_time THEN a.summary
                   ELSE EXCLUDED.summary END,
    severity = CASE WHEN a.sender_time > EXCLUDED.sender_time THEN a.severity
                    ELSE EXCLUDED.severity END,
    source = CASE WHEN a.sender_time > EXCLUDED.sender_time THEN a.source
                  ELSE EXCLUDED.source END,
    labels = CASE WHEN a.sender_time > EXCLUDED.sender_time THEN a.labels
                  ELSE EXCLUDED.labels END,
    details = CASE WHEN a.sender_time > EXCLUDED.sender_time THEN a.details
                   ELSE EXCLUDED.details END,
    links = CASE WHEN a.sender_time > EXCLUDED.sender_time THEN a.links
                 ELSE EXCLUDED.links END,
    payload = CASE WHEN a.sender_time > EXCLUDED.sender_time THEN a.payload
                   ELSE EXCLUDED.payload END,
    sender_time = GREATEST(a.sender_time, EXCLUDED.sender_time),
    event_count = a.event_count + EXCLUDED.event_count,
    last_seen_at = EXCLUDED.last_seen_at,
    updated_at = EXCLUDED.updated_at
RETURNING a.id, a.dedup_key, a.incident_id, (a.xmax = 0) AS inserted
"""

_UPSERT_INCIDENTS = """
WITH input AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::uuid[],
        $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[],
        $11::jsonb[]
    ) AS t(
        service_id, escalation_policy_id,
        id, grouping_key, title, severity, urgency, priority, alert_count, grouping
    )
)
INSERT INTO incidents AS i (
    id, service_id, grouping_key, grouping, title, status, severity, urgency, priority,
    alert_count, escalation_policy_id, escalation_step, created_at, updated_at
)
SELECT id, service_id, grouping_key, grouping, title, 'triggered', severity, urgency, priority,
       alert_count, escalation_policy_id, 0, $10, $10
FROM input
ORDER BY service_id, grouping_key
ON CONFLICT (service_id, grouping_key)
    WHERE status IN ('triggered', 'acknowledged') AND accepts_alerts
DO UPDATE SET
    alert_count = i.alert_count + EXCLUDED.alert_count,
    priority = LEAST(i.priority, EXCLUDED.priority),
    updated_at = EXCLUDED.updated_at
RETURNING i.id, i.service_id, i.grouping_key, i.number, (i.xmax = 0) AS inserted
"""


async def _apply_triggers(
    connection: asyncpg.Connection,
    batch: _Batch,
    items: list[Item],
) -> list[tuple[int, Outcome]]:
    context = batch.context
    events = [event for _, event in items]
    rules_by_key = {e.dedup_key: batch.rules.by_position[positions[-1]] for positions, e in items}
    target_of = {key: rules.decision.service_id for key, rules in rules_by_key.items()}
    await _load_lifecycles(connection, batch, set(target_of.values()))
    # An alert routed to another service is grouped the way that service groups.
    groupings = {
        e.dedup_key: group(e, batch.lifecycles[target_of[e.dedup_key]].grouping, context.kind)
        for e in events
    }
    rows = await connection.fetch(
        _UPSERT_ALERTS,
        context.service_id,
        context.integration_id,
        [uuid7() for _ in events],
        [e.dedup_key for e in events],
        [e.summary for e in events],
        [e.severity.value for e in events],
        [e.source for e in events],
        [to_json(e.labels) for e in events],
        [to_json(e.details) for e in events],
        [to_json([{"href": link.href, "text": link.text} for link in e.links]) for e in events],
        [to_json(e.raw) for e in events],
        [e.occurred_at for e in events],
        batch.now,
        [groupings[e.dedup_key].key for e in events],
        [len(positions) for positions, _ in items],
    )
    by_key = {row["dedup_key"]: row for row in rows}
    event_by_key = {e.dedup_key: e for e in events}

    # New alerts need an incident: the open one for their grouping key, or a new one.
    new_alerts = [row for row in rows if row["inserted"]]
    incident_by_alert = await _attach_to_incidents(
        connection, batch, new_alerts, event_by_key, groupings, rules_by_key
    )

    outcomes: list[tuple[int, Outcome]] = []
    for positions, event in items:
        row = by_key.get(event.dedup_key)
        if row is None:
            outcomes += [(position, ("ignored.stale", None, None)) for position in positions]
            continue
        first, *repeats = positions
        if row["inserted"]:
            incident_id = incident_by_alert.get(row["id"])
            name = "alert.created" if incident_id is not None else "alert.pending"
            outcomes.append((first, (name, row["id"], incident_id)))
        else:
            incident_id = row["incident_id"]
            outcomes.append((first, ("alert.updated", row["id"], incident_id)))
            if incident_id is not None:
                batch.touch(incident_id)
        # Repeats merged into this statement updated the alert the first one created.
        outcomes += [(position, ("alert.updated", row["id"], incident_id)) for position in repeats]
    return outcomes


async def _attach_to_incidents(
    connection: asyncpg.Connection,
    batch: _Batch,
    new_alerts: list[asyncpg.Record],
    event_by_key: dict[str, AlertEvent],
    groupings: dict[str, Grouping],
    rules_by_key: dict[str, EventRules],
) -> dict[uuid.UUID, uuid.UUID]:
    """Give each new alert an incident; return alert id -> incident id.

    Alerts left out of the result are pending, because their key has not reached the
    threshold yet. A rule may route an alert to another service. Grouping windows,
    thresholds and reopening then follow that service's settings, and the alert joins its
    open incident of the same grouping key.
    """
    if not new_alerts:
        return {}
    by_service: dict[uuid.UUID, dict[str, list[uuid.UUID]]] = defaultdict(lambda: defaultdict(list))
    first_key: dict[tuple[uuid.UUID, str], str] = {}
    for row in new_alerts:
        dedup_key = row["dedup_key"]
        target = rules_by_key[dedup_key].decision.service_id
        key = (target, groupings[dedup_key].key)
        first_key.setdefault(key, dedup_key)
        by_service[target][key[1]].append(row["id"])

    members: dict[tuple[uuid.UUID, str], list[uuid.UUID]] = {}
    for target, local in sorted(by_service.items(), key=lambda item: str(item[0])):
        lifecycle = batch.lifecycles[target]
        if lifecycle.grouping.mode == "by_fields" and lifecycle.grouping.window_seconds:
            await _close_grouping_windows(connection, batch, target, lifecycle, list(local))
        # Reopening comes first. An alert that brings back a recently resolved incident
        # joins it, and the threshold keeps pending only alerts that would open a new one.
        if lifecycle.reopen_window_seconds:
            await _reopen_recent(connection, batch, target, lifecycle, list(local))
        if lifecycle.threshold_count and lifecycle.threshold_count > 1:
            local = await _apply_threshold(connection, batch, target, lifecycle, local)
        members |= {(target, key): ids for key, ids in local.items()}
    if not members:
        return {}

    keys = sorted(members, key=lambda key: (str(key[0]), key[1]))
    firsts = [event_by_key[first_key[key]] for key in keys]
    decisions = [rules_by_key[first_key[key]] for key in keys]
    # An incident takes the highest priority among its new alerts ("P1" sorts first).
    priority_of = {
        row["id"]: rules_by_key[row["dedup_key"]].decision.priority for row in new_alerts
    }
    priorities = [
        min(
            (priority_of[alert_id] for alert_id in members[key] if alert_id in priority_of),
            default=rules.decision.priority,
        )
        for key, rules in zip(keys, decisions, strict=True)
    ]
    incident_rows = await connection.fetch(
        _UPSERT_INCIDENTS,
        [key[0] for key in keys],
        [rules.escalation_policy_id for rules in decisions],
        [uuid7() for _ in keys],
        [key[1] for key in keys],
        [rules.decision.title for rules in decisions],
        [event.severity.value for event in firsts],
        [rules.decision.paging_urgency for rules in decisions],
        priorities,
        [len(members[key]) for key in keys],
        batch.now,
        [
            to_json(groupings[event.dedup_key].explanation | {"key": key[1]})
            for key, event in zip(keys, firsts, strict=True)
        ],
    )

    incident_by_alert: dict[uuid.UUID, uuid.UUID] = {}
    opened: list[uuid.UUID] = []
    for incident in incident_rows:
        incident_id = incident["id"]
        key = (incident["service_id"], incident["grouping_key"])
        first = event_by_key[first_key[key]]
        for alert_id in members[key]:
            incident_by_alert[alert_id] = incident_id
        if incident["inserted"]:
            opened.append(incident_id)
            batch.result.incidents_opened.append(incident_id)
            batch.add_timeline(
                incident_id,
                "incident.triggered",
                f"Incident opened by {batch.context.integration_name}: {first.summary}",
                {"grouping_key": key[1], "number": incident["number"]},
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
                grouping_key=key[1],
            )
        else:
            batch.touch(incident_id)
        batch.add_timeline(
            incident_id,
            "alert.triggered",
            f"{len(members[key])} alerts triggered"
            if len(members[key]) > 1
            else f"Alert triggered: {first.summary}",
            {"alert_ids": [str(alert_id) for alert_id in members[key]]},
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
    if opened:
        await _link_previous(connection, batch, opened)
    return incident_by_alert


async def _load_lifecycles(
    connection: asyncpg.Connection, batch: _Batch, service_ids: set[uuid.UUID]
) -> None:
    """Load the settings of services that rules routed alerts to, once per batch."""
    missing = sorted(service_ids - batch.lifecycles.keys())
    if not missing:
        return
    rows = await connection.fetch(
        f"SELECT s.id, {LIFECYCLE_COLUMNS} FROM services s WHERE s.id = ANY($1::uuid[])",  # noqa: S608 (a constant)
        missing,
    )
    batch.lifecycles |= {row["id"]: lifecycle_from_row(row) for row in rows}
    # Classification locks route targets against deletion, so every target has a row.
    # The defaults only keep ingest going if that ever changes.
    for service_id in missing:
        batch.lifecycles.setdefault(service_id, LifecycleSettings())


async def _close_grouping_windows(
    connection: asyncpg.Connection,
    batch: _Batch,
    service_id: uuid.UUID,
    lifecycle: LifecycleSettings,
    keys: list[str],
) -> None:
    """Stop open incidents older than the grouping window from taking new alerts."""
    window = lifecycle.grouping.window_seconds
    rows = await connection.fetch(
        """
        UPDATE incidents SET accepts_alerts = false, updated_at = $4
        WHERE service_id = $1 AND grouping_key = ANY($2::text[])
          AND status IN ('triggered', 'acknowledged') AND accepts_alerts
          AND created_at < $4::timestamptz - make_interval(secs => $3)
        RETURNING id
        """,
        service_id,
        keys,
        float(window or 0),
        batch.now,
    )
    for row in rows:
        batch.add_timeline(
            row["id"],
            "incident.grouping_window_closed",
            f"The grouping window of {window} s has passed; new alerts open a new incident",
            {"window_seconds": window},
        )


async def _apply_threshold(
    connection: asyncpg.Connection,
    batch: _Batch,
    service_id: uuid.UUID,
    lifecycle: LifecycleSettings,
    members: dict[str, list[uuid.UUID]],
) -> dict[str, list[uuid.UUID]]:
    """Return the keys that get an incident in ``service_id`` now, each with every pending
    alert of the key: all of them when the key has an open incident, else those within
    the threshold window once there are enough.

    Alerts are counted on the integration's own service, where they are stored, also when
    a rule routes them elsewhere. A transaction-scoped advisory lock per key serializes
    the decision, and the open incidents are read only after it. A request that waited
    for the lock then finds the incident that the request before it opened, and attaches
    its alerts instead of leaving them pending.
    """
    alert_service_id = batch.context.service_id
    keys = sorted(members)
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || k, 0)) "
        "FROM unnest($2::text[]) AS k ORDER BY k",
        str(alert_service_id),
        keys,
    )
    open_rows = await connection.fetch(
        """
        SELECT grouping_key FROM incidents
        WHERE service_id = $1 AND grouping_key = ANY($2::text[])
          AND status IN ('triggered', 'acknowledged') AND accepts_alerts
        """,
        service_id,
        keys,
    )
    has_open = {row["grouping_key"] for row in open_rows}
    window = lifecycle.threshold_window_seconds or 300
    pending = await connection.fetch(
        """
        SELECT grouping_key, array_agg(id ORDER BY first_seen_at, id) AS ids FROM alerts
        WHERE service_id = $1 AND grouping_key = ANY($2::text[])
          AND incident_id IS NULL AND status = 'firing'
          AND (grouping_key = ANY($5::text[])
               OR first_seen_at >= $3::timestamptz - make_interval(secs => $4))
        GROUP BY grouping_key
        """,
        alert_service_id,
        keys,
        batch.now,
        float(window),
        sorted(has_open),
    )
    ready = {row["grouping_key"]: list(row["ids"]) for row in pending}
    result: dict[str, list[uuid.UUID]] = {}
    for key in keys:
        ids = ready.get(key, [])
        if key in has_open or len(ids) >= (lifecycle.threshold_count or 1):
            result[key] = ids
    return result


async def _reopen_recent(
    connection: asyncpg.Connection,
    batch: _Batch,
    service_id: uuid.UUID,
    lifecycle: LifecycleSettings,
    keys: list[str],
) -> None:
    """Bring back incidents of these keys that resolved within the service's reopen window.

    A concurrent request may open an incident for the same key first. This UPDATE then
    hits the unique index, and the retried transaction attaches to that incident.
    """
    window = lifecycle.reopen_window_seconds
    rows = await connection.fetch(
        """
        UPDATE incidents SET status = 'triggered', resolved_at = NULL, resolved_by = NULL,
               acknowledged_at = NULL, acknowledged_by = NULL, escalation_step = 0,
               escalation_position = 0, escalation_epoch = escalation_epoch + 1,
               updated_at = $4
        WHERE id IN (
            SELECT DISTINCT ON (grouping_key) id FROM incidents
            WHERE service_id = $1 AND grouping_key = ANY($2::text[]) AND accepts_alerts
              AND status = 'resolved' AND resolved_at >= $4::timestamptz - make_interval(secs => $3)
            ORDER BY grouping_key, resolved_at DESC
        )
        AND NOT EXISTS (
            SELECT 1 FROM incidents other
            WHERE other.service_id = $1 AND other.grouping_key = incidents.grouping_key
              AND other.status IN ('triggered', 'acknowledged') AND other.accepts_alerts
        )
        RETURNING id, escalation_epoch
        """,
        service_id,
        keys,
        float(window or 0),
        batch.now,
    )
    for row in rows:
        batch.touch(row["id"])
        batch.add_timeline(
            row["id"],
            "incident.reopened",
            f"Reopened: an alert fired within {window} s of the resolve",
            {"reopen_window_seconds": window},
        )
        batch.jobs.append(escalation_job(row["id"], 0, row["escalation_epoch"]))


async def _link_previous(
    connection: asyncpg.Connection, batch: _Batch, opened: list[uuid.UUID]
) -> None:
    """Link each new incident to the last finished incident of its grouping key."""
    rows = await connection.fetch(
        """
        WITH links AS (
            SELECT new.id AS new_id, new.number AS new_number, previous.id AS previous_id,
                   previous.number AS previous_number
            FROM incidents new
            JOIN LATERAL (
                SELECT p.id, p.number FROM incidents p
                WHERE p.service_id = new.service_id AND p.grouping_key = new.grouping_key
                  AND p.id <> new.id AND p.status IN ('resolved', 'closed')
                ORDER BY p.created_at DESC LIMIT 1
            ) previous ON true
            WHERE new.id = ANY($1::uuid[])
        )
        UPDATE incidents SET previous_incident_id = links.previous_id
        FROM links WHERE incidents.id = links.new_id
        RETURNING links.new_id, links.new_number, links.previous_id, links.previous_number
        """,
        opened,
    )
    for row in rows:
        batch.add_timeline(
            row["previous_id"],
            "incident.reopened_as",
            f"The alerts fired again: reopened as incident #{row['new_number']}",
            {"incident_id": str(row["new_id"])},
        )
        batch.add_timeline(
            row["new_id"],
            "incident.follows",
            f"Follows incident #{row['previous_number']}",
            {"incident_id": str(row["previous_id"])},
        )


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
    acknowledged = await acknowledge_incidents(
        connection, incident_ids, actor=actor_for_integration(batch.context), now=batch.now
    )
    # The timeout is the incident's service's, which a rule may have routed it to.
    for incident_id, timeout_seconds in acknowledged.items():
        batch.result.incidents_acknowledged.append(incident_id)
        batch.add_timeline(
            incident_id,
            "incident.acknowledged",
            f"Acknowledged by {batch.context.integration_name}",
        )
        batch.jobs += acknowledgement_jobs(incident_id, batch.now, timeout_seconds)
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
            status = 'resolved', ended_at = LEAST(i.ended_at, $3), resolved_at = $3,
            event_count = a.event_count + 1, last_seen_at = $3, updated_at = $3
        FROM unnest($2::text[], $4::timestamptz[]) AS i(dedup_key, ended_at)
        WHERE a.service_id = $1 AND a.dedup_key = i.dedup_key AND a.status = 'firing'
          -- A resolve that ended before this occurrence started belongs to an older one.
          AND (i.ended_at IS NULL OR a.started_at IS NULL OR i.ended_at >= a.started_at)
        RETURNING a.id, a.dedup_key, a.incident_id, a.summary
        """,
        batch.context.service_id,
        [e.dedup_key for _, e in events],
        batch.now,
        # Only the sender's own end time is stored, so that a later trigger's sender
        # timestamp is compared with the sender's clock. It is capped at the time received,
        # because an end in the future would mark every later occurrence as a late copy.
        [e.ended_at for _, e in events],
    )
    by_key = {row["dedup_key"]: row for row in rows}
    for row in rows:
        if row["incident_id"] is not None:
            batch.add_timeline(
                row["incident_id"],
                "alert.resolved",
                f"Alert resolved: {row['summary']}",
                {"alert_id": str(row["id"]), "dedup_key": row["dedup_key"]},
            )

    touched = sorted({row["incident_id"] for row in rows if row["incident_id"]})
    flapping = await _mark_flapping(connection, batch, rows)
    resolvable = [incident_id for incident_id in touched if incident_id not in flapping]
    resolved = await resolve_incidents_without_firing_alerts(
        connection, resolvable, actor=actor_for_integration(batch.context), now=batch.now
    )
    for incident_id in touched:
        if incident_id in resolved:
            batch.result.incidents_resolved.append(incident_id)
            batch.add_timeline(
                incident_id, "incident.resolved", "Resolved: all alerts have resolved"
            )
            batch.jobs.append(resolved_job(incident_id))
        else:
            batch.touch(incident_id)

    unmatched = [e.dedup_key for _, e in events if e.dedup_key not in by_key]
    still_open = (
        await _open_alerts(connection, batch.context.service_id, unmatched) if unmatched else {}
    )
    orphans = [e for _, e in events if e.dedup_key not in by_key and e.dedup_key not in still_open]
    if orphans:
        await _record_early_resolves(connection, batch, orphans)

    outcomes: list[tuple[int, Outcome]] = []
    for position, event in events:
        row = by_key.get(event.dedup_key)
        if row is not None:
            outcomes.append((position, ("alert.resolved", row["id"], row["incident_id"])))
        elif event.dedup_key in still_open:
            outcomes.append((position, ("ignored.stale", None, None)))
        else:
            outcomes.append((position, ("ignored.no_open_alert", None, None)))
    return outcomes


async def _record_early_resolves(
    connection: asyncpg.Connection, batch: _Batch, events: list[AlertEvent]
) -> None:
    """Store a resolve that came before its trigger as an alert already resolved.

    With two Alertmanager peers, or a retry, the resolve of an occurrence can arrive
    before its trigger. The stored row has no incident; the late trigger then finds it
    and is ignored as a copy of an occurrence that already ended, instead of opening an
    incident that nothing would resolve. Only resolves with the sender's start and end
    times can be matched this way.
    """
    timed = [e for e in events if e.occurred_at is not None and e.ended_at is not None]
    if not timed:
        return
    context = batch.context
    await connection.execute(
        """
        INSERT INTO alerts (
            id, service_id, integration_id, dedup_key, grouping_key, status, summary, severity,
            source, labels, details, links, payload, event_count, first_seen_at, last_seen_at,
            started_at, ended_at, sender_time, resolved_at, created_at, updated_at
        )
        SELECT id, $1, $2, dedup_key, grouping_key, 'resolved', summary, severity,
               source, labels, '{}'::jsonb, '[]'::jsonb, payload, 1, $3, $3,
               started_at, LEAST(ended_at, $3), started_at, $3, $3, $3
        FROM unnest(
            $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
            $10::jsonb[], $11::jsonb[], $12::timestamptz[], $13::timestamptz[]
        ) AS t(id, dedup_key, grouping_key, summary, severity, source, labels, payload,
               started_at, ended_at)
        WHERE NOT EXISTS (
            SELECT 1 FROM alerts old
            WHERE old.service_id = $1 AND old.dedup_key = t.dedup_key
              AND old.ended_at >= LEAST(t.ended_at, $3)
        )
        """,
        context.service_id,
        context.integration_id,
        batch.now,
        [uuid7() for _ in timed],
        [e.dedup_key for e in timed],
        [group(e, context.lifecycle.grouping, context.kind).key for e in timed],
        [e.summary for e in timed],
        [e.severity.value for e in timed],
        [e.source for e in timed],
        [to_json(e.labels) for e in timed],
        [to_json(e.raw) for e in timed],
        [e.occurred_at for e in timed],
        [e.ended_at for e in timed],
    )


async def _mark_flapping(
    connection: asyncpg.Connection, batch: _Batch, resolved_rows: list[asyncpg.Record]
) -> set[uuid.UUID]:
    """Find resolved alerts that fired too often lately; keep their incidents open.

    Each occurrence of an alert is a row, so the number of rows of a dedup key first seen
    within the flap window is the number of times it fired. The incident of a flapping
    alert resolves later, from a job, once the alert has stayed resolved for the settle time.
    """
    lifecycle = batch.context.lifecycle
    if not (lifecycle.flap_threshold and lifecycle.flap_window_seconds) or not resolved_rows:
        return set()
    counts = await connection.fetch(
        """
        SELECT dedup_key, count(*) AS occurrences FROM alerts
        WHERE service_id = $1 AND dedup_key = ANY($2::text[])
          AND first_seen_at >= $3::timestamptz - make_interval(secs => $4)
        GROUP BY dedup_key
        """,
        batch.context.service_id,
        [row["dedup_key"] for row in resolved_rows],
        batch.now,
        float(lifecycle.flap_window_seconds),
    )
    flapping_keys = {
        row["dedup_key"]: row["occurrences"]
        for row in counts
        if row["occurrences"] > lifecycle.flap_threshold
    }
    flapping_rows = [row for row in resolved_rows if row["dedup_key"] in flapping_keys]
    incident_ids = sorted({row["incident_id"] for row in flapping_rows if row["incident_id"]})
    if not incident_ids:
        return set()
    await connection.execute(
        "UPDATE alerts SET flapping = true WHERE id = ANY($1::uuid[])",
        [row["id"] for row in flapping_rows],
    )
    newly = await connection.fetch(
        "UPDATE incidents SET flapping = true WHERE id = ANY($1::uuid[]) AND NOT flapping "
        "RETURNING id",
        incident_ids,
    )
    settle = lifecycle.flap_settle_seconds or lifecycle.flap_window_seconds
    for row in newly:
        batch.add_timeline(
            row["id"],
            "incident.flapping",
            f"An alert fired more than {lifecycle.flap_threshold} times in "
            f"{lifecycle.flap_window_seconds} s; the incident stays open until the alert "
            f"has stayed resolved for {settle} s",
            {"occurrences": flapping_keys},
        )
    for incident_id in incident_ids:
        batch.jobs.append(
            Job(
                INCIDENT_SETTLE,
                {"incident_id": incident_id, "settle_seconds": settle},
                delay=timedelta(seconds=settle),
                dedupe_key=f"{INCIDENT_SETTLE}:{incident_id}:{batch.now.timestamp()}",
            )
        )
    return set(incident_ids)


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
        [to_json(e.raw) for e in events],
    )
