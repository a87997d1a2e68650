"""Classify a batch of ingested events by the rules, and record what the rules decided.

``classify_batch`` runs before the alerts are written: it evaluates the cached rule set
for every trigger, checks route targets, silences and maintenance windows, and returns
which events ingest drops. ``record_batch`` runs after: it stores each new alert's
decision, writes one timeline entry per incident, and restarts escalation of held
incidents that received an alert which may page.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from app.core.ids import uuid7
from app.core.logging import get_logger
from app.core.time import isoformat
from app.core.timeline import to_json
from app.incidents.events import AlertEvent, EventAction
from app.jobs.queue import Job, enqueue
from app.rules.engine import AlertFacts, Decision, RuleSet, evaluate
from app.rules.snapshot import Snapshot, bump_revision, current_snapshot
from app.rules.timeline import RULES_ACTOR, escalation_step_job
from app.rules.windows import MaintenanceWindow, Silence

log = get_logger(__name__)

DROPPED_OUTCOME = "ignored.dropped_by_rule"


class IngestSource(Protocol):
    """The integration and service an ingest request arrived on."""

    @property
    def integration_name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def service_id(self) -> uuid.UUID: ...
    @property
    def service_name(self) -> str: ...
    @property
    def escalation_policy_id(self) -> uuid.UUID | None: ...


@dataclass(frozen=True, slots=True)
class EventRules:
    """The decisions of rules, silences and maintenance windows for one trigger event."""

    decision: Decision
    # The policy the incident escalates with: a route's, else its service's own.
    escalation_policy_id: uuid.UUID | None
    silences: tuple[Silence, ...] = ()
    window: MaintenanceWindow | None = None
    window_ends_at: datetime | None = None

    @property
    def may_page(self) -> bool:
        return not (self.decision.suppressed or self.silences or self.window)


@dataclass(slots=True)
class BatchRules:
    now: datetime
    by_position: dict[int, EventRules] = field(default_factory=dict)

    def dropped(self, position: int) -> bool:
        rules = self.by_position.get(position)
        return rules is not None and rules.decision.dropped

    def for_position(self, position: int) -> EventRules | None:
        return self.by_position.get(position)


async def classify_batch(
    connection: asyncpg.Connection,
    source: IngestSource,
    events: Sequence[AlertEvent],
    now: datetime,
) -> BatchRules:
    """Decide priority, route, suppression and drops for every trigger in ``events``."""
    snapshot = await current_snapshot(connection)
    triggers = {
        position: AlertFacts.from_event(
            event,
            integration=source.integration_name,
            integration_kind=source.kind,
            service_id=source.service_id,
            service=source.service_name,
        )
        for position, event in enumerate(events)
        if event.action == EventAction.trigger
    }
    if snapshot.rule_set.has_cel:
        # CEL's cost depends on the payload, so it runs in a thread: a slow evaluation
        # then delays this request, not every request the event loop serves.
        decisions = await asyncio.to_thread(_evaluate_all, snapshot.rule_set, triggers, now)
    else:
        decisions = _evaluate_all(snapshot.rule_set, triggers, now)

    policies = await _check_routes(connection, source, decisions)
    silences = await _live_silences(connection, snapshot, decisions, now)

    result = BatchRules(now=now)
    for position, (_facts, decision) in decisions.items():
        if decision.dropped:
            result.by_position[position] = EventRules(decision, None)
            continue
        decision = policies.checked[position]
        window = snapshot.active_window(decision.service_id, now)
        occurrence = window.occurrence_at(now) if window is not None else None
        result.by_position[position] = EventRules(
            decision=decision,
            escalation_policy_id=decision.escalation_policy_id
            or policies.service_policy.get(decision.service_id, source.escalation_policy_id),
            silences=silences.get(position, ()),
            window=window,
            window_ends_at=occurrence.ends_at if occurrence else None,
        )
    return result


def _evaluate_all(
    rule_set: RuleSet, triggers: dict[int, AlertFacts], now: datetime
) -> dict[int, tuple[AlertFacts, Decision]]:
    return {
        position: (facts, evaluate(rule_set, facts, now).decision)
        for position, facts in triggers.items()
    }


@dataclass(slots=True)
class _Routes:
    checked: dict[int, Decision]
    # The escalation policy of each service an alert was routed to.
    service_policy: dict[uuid.UUID, uuid.UUID | None]


async def _check_routes(
    connection: asyncpg.Connection,
    source: IngestSource,
    decisions: dict[int, tuple[AlertFacts, Decision]],
) -> _Routes:
    """Keep routes whose targets still exist, locking them against a concurrent delete."""
    routes = _Routes(checked={p: d for p, (_, d) in decisions.items()}, service_policy={})
    services = {d.service_id for _, d in decisions.values() if d.service_id != source.service_id}
    policies = {d.escalation_policy_id for _, d in decisions.values() if d.escalation_policy_id}
    if not services and not policies:
        return routes
    existing_services: dict[uuid.UUID, uuid.UUID | None] = {}
    if services:
        rows = await connection.fetch(
            "SELECT id, escalation_policy_id FROM services WHERE id = ANY($1::uuid[]) "
            "ORDER BY id FOR KEY SHARE",
            sorted(services),
        )
        existing_services = {row["id"]: row["escalation_policy_id"] for row in rows}

    existing_policies: set[uuid.UUID] = set()
    if policies:
        rows = await connection.fetch(
            "SELECT id FROM escalation_policies WHERE id = ANY($1::uuid[]) ORDER BY id "
            "FOR KEY SHARE",
            sorted(policies),
        )
        existing_policies = {row["id"] for row in rows}

    routes.service_policy = existing_services
    for position, decision in routes.checked.items():
        notes = list(decision.notes)
        service_id = decision.service_id
        if service_id != source.service_id and service_id not in existing_services:
            notes.append(f"route target service {service_id} no longer exists; route ignored")
            service_id = source.service_id
        policy_id = decision.escalation_policy_id
        if policy_id is not None and policy_id not in existing_policies:
            notes.append(f"route target escalation policy {policy_id} no longer exists; ignored")
            policy_id = None
        if len(notes) != len(decision.notes):
            log.warning("rules.route_target_missing", notes=notes[len(decision.notes) :])
            routes.checked[position] = dataclasses.replace(
                decision, service_id=service_id, escalation_policy_id=policy_id, notes=tuple(notes)
            )
    return routes


def matching_silences(
    snapshot: Snapshot, facts: AlertFacts, service_id: uuid.UUID, at: datetime
) -> list[Silence]:
    """Silences in effect at ``at`` whose matchers match; until-resolved ones still need
    ``live_until_resolved``."""
    routed = dataclasses.replace(facts, service_id=service_id)
    return [s for s in snapshot.silences if s.in_effect_at(at) and s.matches(routed)]


async def live_until_resolved(
    connection: asyncpg.Connection,
    silence_ids: set[uuid.UUID],
    now: datetime,
    *,
    expire: bool = True,
) -> set[uuid.UUID]:
    """Return the until-resolved silences that still apply, and expire the others unless
    ``expire`` is false (read-only callers).

    Such a silence applies until every alert it has silenced has resolved; one that has
    silenced nothing yet waits for its first alert.
    """
    if not silence_ids:
        return set()
    rows = await connection.fetch(
        """
        SELECT s.id,
               NOT EXISTS (SELECT 1 FROM silenced_alerts sa WHERE sa.silence_id = s.id)
               OR EXISTS (
                   SELECT 1 FROM silenced_alerts sa JOIN alerts a ON a.id = sa.alert_id
                   WHERE sa.silence_id = s.id AND a.status = 'firing'
               ) AS live
        FROM unnest($1::uuid[]) AS s(id)
        """,
        sorted(silence_ids),
    )
    ended = [row["id"] for row in rows if not row["live"]]
    if ended and expire:
        expired = await connection.fetch(
            "UPDATE silences SET expired_at = $2, updated_at = $2 "
            "WHERE id = ANY($1::uuid[]) AND expired_at IS NULL RETURNING id",
            ended,
            now,
        )
        if expired:
            await bump_revision(connection)
            log.info("silence.expired", silence_ids=[str(row["id"]) for row in expired])
    return {row["id"] for row in rows if row["live"]}


async def _live_silences(
    connection: asyncpg.Connection,
    snapshot: Snapshot,
    decisions: dict[int, tuple[AlertFacts, Decision]],
    now: datetime,
) -> dict[int, tuple[Silence, ...]]:
    if not snapshot.silences:
        return {}
    candidates: dict[int, list[Silence]] = {}
    for position, (facts, decision) in decisions.items():
        if decision.dropped:
            continue
        found = matching_silences(snapshot, facts, decision.service_id, now)
        if found:
            candidates[position] = found
    pending = {s.id for found in candidates.values() for s in found if s.until_resolved}
    live = await live_until_resolved(connection, pending, now)
    result = {}
    for position, found in candidates.items():
        kept = tuple(s for s in found if not s.until_resolved or s.id in live)
        if kept:
            result[position] = kept
    return result


def _summary(rules: EventRules) -> str:
    decision = rules.decision
    if decision.applied:
        names = ", ".join(f"'{rule.name}' v{rule.version}" for rule in decision.applied)
        text = f"Priority {decision.priority} (impact {decision.impact.name}, urgency "
        text += f"{decision.urgency.name}) by rules {names}"
    else:
        text = f"Priority {decision.priority} (impact {decision.impact.name}, urgency "
        text += f"{decision.urgency.name}) from the severity defaults; no rule matched"
    if decision.tags:
        text += f"; tags {', '.join(decision.tags)}"
    if decision.suppressed:
        text += "; suppressed by a rule, pages nobody"
    for silence in rules.silences:
        by = silence.created_by.get("name") or silence.created_by.get("type", "someone")
        until = (
            f"until {isoformat(silence.ends_at)}" if silence.ends_at else "until its alerts resolve"
        )
        text += f"; silenced by {by} {until} ({silence.comment})"
    if rules.window is not None and rules.window_ends_at is not None:
        text += (
            f"; service in maintenance window '{rules.window.name}' until "
            f"{isoformat(rules.window_ends_at)}, nobody is paged"
        )
    return text


def _document(alert_id: uuid.UUID, rules: EventRules) -> dict[str, Any]:
    return {
        "alert_id": str(alert_id),
        **rules.decision.to_document(),
        "effective_escalation_policy_id": (
            str(rules.escalation_policy_id) if rules.escalation_policy_id else None
        ),
        "silences": [str(silence.id) for silence in rules.silences],
        "maintenance_window_id": str(rules.window.id) if rules.window else None,
    }


# One statement per batch: the decisions, the alerts silences matched, the timeline
# entries, and the held incidents to look at again. Data-modifying CTEs run whether or not
# the final SELECT reads them, and that SELECT reads paging_holds as it was before.
_RECORD = """
WITH decisions AS (
    INSERT INTO alert_decisions (
        alert_id, decided_at, service_id, escalation_policy_id, impact, urgency, priority,
        tags, title, suppressed, silence_ids, maintenance_window_id, rules
    )
    SELECT alert_id, $1, service_id, policy_id, impact, urgency, priority, tags, title,
           suppressed, silence_ids, window_id, rules
    FROM unnest(
        $2::uuid[], $3::uuid[], $4::uuid[], $5::int2[], $6::int2[], $7::text[],
        $8::jsonb[], $9::text[], $10::bool[], $11::jsonb[], $12::uuid[], $13::jsonb[]
    ) AS t(alert_id, service_id, policy_id, impact, urgency, priority, tags, title,
           suppressed, silence_ids, window_id, rules)
    ON CONFLICT (alert_id) DO NOTHING
),
silenced AS (
    INSERT INTO silenced_alerts (silence_id, alert_id, at)
    SELECT silence_id, alert_id, $1 FROM unnest($14::uuid[], $15::uuid[])
        AS t(silence_id, alert_id)
    ON CONFLICT DO NOTHING
),
entries AS (
    INSERT INTO timeline_entries (
        id, incident_id, at, kind, actor_type, actor_id, actor_name, message, data
    )
    SELECT id, incident_id, $1, 'rules.applied', $16, NULL, $17, message, data
    FROM unnest($18::uuid[], $19::uuid[], $20::text[], $21::jsonb[])
        AS t(id, incident_id, message, data)
)
SELECT h.incident_id, h.step, i.escalation_epoch FROM paging_holds h
JOIN incidents i ON i.id = h.incident_id
WHERE h.incident_id = ANY($22::uuid[]) AND h.kind IN ('silence', 'suppressed')
"""


async def record_batch(
    connection: asyncpg.Connection,
    rules: BatchRules,
    outcomes: Sequence[tuple[str, uuid.UUID | None, uuid.UUID | None]],
) -> None:
    """Store the decisions of the alerts the batch created; ``outcomes`` is per event.

    Held incidents that received an alert which may page run their held step again. Only
    silence and suppression holds count, because a maintenance window keeps its service's
    incidents held until it ends. The step handler checks everything again and
    removes the hold, with a timeline entry, when nothing holds the incident any more.
    """
    created: list[tuple[uuid.UUID, uuid.UUID, EventRules]] = []
    for position, (outcome, alert_id, incident_id) in enumerate(outcomes):
        event_rules = rules.for_position(position)
        if outcome == "alert.created" and alert_id and incident_id and event_rules:
            created.append((alert_id, incident_id, event_rules))
    if not created:
        return

    entries = _timeline_entries(created)
    decisions = [member.decision for _, _, member in created]
    silenced = [(s.id, alert_id) for alert_id, _, member in created for s in member.silences]
    pageable = sorted({incident for _, incident, member in created if member.may_page})
    held = await connection.fetch(
        _RECORD,
        rules.now,
        [alert_id for alert_id, _, _ in created],
        [d.service_id for d in decisions],
        [d.escalation_policy_id for d in decisions],
        [int(d.impact) for d in decisions],
        [int(d.urgency) for d in decisions],
        [d.priority for d in decisions],
        [to_json(list(d.tags)) for d in decisions],
        [d.title for d in decisions],
        [d.suppressed for d in decisions],
        [to_json([str(s.id) for s in member.silences]) for _, _, member in created],
        [member.window.id if member.window else None for _, _, member in created],
        [to_json([rule.to_document() for rule in d.applied]) for d in decisions],
        [silence_id for silence_id, _ in silenced],
        [alert_id for _, alert_id in silenced],
        RULES_ACTOR["type"],
        RULES_ACTOR["name"],
        [uuid7() for _ in entries],
        [incident_id for incident_id, _, _ in entries],
        [message for _, message, _ in entries],
        [to_json(data) for _, _, data in entries],
        pageable,
    )
    jobs: list[Job] = [
        escalation_step_job(
            row["incident_id"], row["step"], epoch=row["escalation_epoch"], reason="released"
        )
        for row in held
    ]
    await enqueue(connection, jobs)


def _timeline_entries(
    created: list[tuple[uuid.UUID, uuid.UUID, EventRules]],
) -> list[tuple[uuid.UUID, str, dict[str, Any]]]:
    """Build one ``rules.applied`` entry per incident as (incident_id, message, data)."""
    by_incident: dict[uuid.UUID, list[tuple[uuid.UUID, EventRules]]] = {}
    for alert_id, incident_id, event_rules in created:
        by_incident.setdefault(incident_id, []).append((alert_id, event_rules))
    entries = []
    for incident_id, members in by_incident.items():
        strongest = min(members, key=lambda member: member[1].decision.priority)
        message = _summary(strongest[1])
        if len(members) > 1:
            message = f"{len(members)} alerts classified. {message}"
        data = {"alerts": [_document(alert_id, member) for alert_id, member in members]}
        entries.append((incident_id, message, data))
    return entries
