"""Replay stored alerts through a draft rule set and report what would differ. Read-only.

Each alert is evaluated at the time it was first seen and compared with the decision
stored when it arrived (or, for alerts older than stored decisions, with its incident).
Results are summed per incident: the lowest priority number, the route of its first
alert, and suppression when every alert is suppressed or dropped. Silences and
maintenance windows are the same in both worlds, so they do not appear in the diff.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.core.errors import Unprocessable
from app.incidents.events import Severity
from app.rules.engine import AlertFacts, RuleSet, evaluate
from app.rules.timeline import from_json

# A replay keeps the rows of one chunk in memory and one small record per incident, so
# this bounds both the memory and the time of a request.
MAX_REPLAY_ALERTS = 250_000
CHUNK_SIZE = 5000
# Alert ids are UUIDv7 made when the alert is inserted, a few milliseconds after the
# request's clock reading stored as first_seen_at. The id range narrows the scan to the
# primary key; this slack keeps every alert of the time range inside it.
ID_SLACK = timedelta(hours=1)

_ALERTS = """
SELECT a.id, a.incident_id, a.dedup_key, a.summary, a.severity, a.source, a.labels,
       a.details, a.service_id, a.first_seen_at, s.name AS service,
       coalesce(i.name, '') AS integration, coalesce(i.kind, '') AS integration_kind,
       d.priority AS decided_priority, d.service_id AS decided_service_id,
       d.escalation_policy_id AS decided_policy_id, d.suppressed AS decided_suppressed,
       inc.priority AS incident_priority, inc.service_id AS incident_service_id
FROM alerts a
JOIN services s ON s.id = a.service_id
LEFT JOIN integrations i ON i.id = a.integration_id
LEFT JOIN alert_decisions d ON d.alert_id = a.id
LEFT JOIN incidents inc ON inc.id = a.incident_id
WHERE a.id >= $1 AND a.id < $2 AND a.first_seen_at >= $3 AND a.first_seen_at < $4
  AND ($5::uuid IS NULL OR a.service_id = $5)
ORDER BY a.id
"""

_COUNT = """
SELECT count(*) FROM alerts a
WHERE a.id >= $1 AND a.id < $2 AND a.first_seen_at >= $3 AND a.first_seen_at < $4
  AND ($5::uuid IS NULL OR a.service_id = $5)
"""

_PAGES = """
SELECT n.incident_id, count(*) AS pages
FROM notifications n
WHERE n.event = 'incident.triggered' AND n.status <> 'cancelled'
  AND n.incident_id IN (
      SELECT DISTINCT a.incident_id FROM alerts a
      WHERE a.id >= $1 AND a.id < $2 AND a.first_seen_at >= $3 AND a.first_seen_at < $4
        AND ($5::uuid IS NULL OR a.service_id = $5)
  )
GROUP BY n.incident_id
"""


def uuid7_floor(at: datetime) -> uuid.UUID:
    """Return the smallest UUIDv7 of the millisecond that ``at`` falls in."""
    milliseconds = max(int(at.timestamp() * 1000), 0)
    return uuid.UUID(int=(milliseconds & ((1 << 48) - 1)) << 80)


@dataclass(slots=True)
class _State:
    priority: str | None = None
    service_id: uuid.UUID | None = None
    policy_id: uuid.UUID | None = None
    # Counts of alerts, to tell "all suppressed" from "some suppressed".
    alerts: int = 0
    suppressed: int = 0
    dropped: int = 0

    def add(
        self,
        priority: str | None,
        service_id: uuid.UUID | None,
        policy_id: uuid.UUID | None,
        *,
        suppressed: bool,
        dropped: bool,
    ) -> None:
        self.alerts += 1
        if dropped:
            self.dropped += 1
            return
        if self.service_id is None:
            self.service_id, self.policy_id = service_id, policy_id
        if priority is not None and (self.priority is None or priority < self.priority):
            self.priority = priority
        self.suppressed += suppressed

    @property
    def all_dropped(self) -> bool:
        return self.alerts > 0 and self.dropped == self.alerts

    @property
    def pages_nobody(self) -> bool:
        return self.alerts > 0 and self.dropped + self.suppressed == self.alerts

    def to_document(self) -> dict[str, Any]:
        return {
            "priority": self.priority or "-",
            "service_id": self.service_id,
            "escalation_policy_id": self.policy_id,
            "suppressed": self.pages_nobody and not self.all_dropped,
            "dropped": self.all_dropped,
        }


@dataclass(slots=True)
class _Incident:
    current: _State = field(default_factory=_State)
    draft: _State = field(default_factory=_State)
    first_seen_at: datetime | None = None


def _facts(row: asyncpg.Record) -> AlertFacts:
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


def _evaluate_chunk(
    rule_set: RuleSet, rows: list[asyncpg.Record], incidents: dict[uuid.UUID, _Incident]
) -> int:
    """Add each alert's current and draft outcome to its incident; return alerts without a
    stored decision."""
    undecided = 0
    for row in rows:
        incident_id = row["incident_id"]
        if incident_id is None:
            continue
        decision = evaluate(rule_set, _facts(row), row["first_seen_at"]).decision
        entry = incidents.get(incident_id)
        if entry is None:
            entry = incidents[incident_id] = _Incident(first_seen_at=row["first_seen_at"])
        if row["decided_priority"] is not None:
            entry.current.add(
                row["decided_priority"],
                row["decided_service_id"],
                row["decided_policy_id"],
                suppressed=row["decided_suppressed"],
                dropped=False,
            )
        else:
            undecided += 1
            entry.current.add(
                row["incident_priority"],
                row["incident_service_id"],
                None,
                suppressed=False,
                dropped=False,
            )
        entry.draft.add(
            decision.priority,
            decision.service_id,
            decision.escalation_policy_id,
            suppressed=decision.suppressed,
            dropped=decision.dropped,
        )
    return undecided


def _changes(entry: _Incident) -> list[str]:
    current, draft = entry.current, entry.draft
    changes = []
    if draft.all_dropped:
        return ["dropped"]
    if current.priority != draft.priority:
        changes.append("priority")
    if (current.service_id, current.policy_id) != (draft.service_id, draft.policy_id):
        changes.append("route")
    if current.pages_nobody != draft.pages_nobody:
        changes.append("suppression")
    return changes


async def replay(
    connection: asyncpg.Connection,
    rule_set: RuleSet,
    *,
    since: datetime,
    until: datetime,
    service_id: uuid.UUID | None,
    limit: int,
) -> dict[str, Any]:
    """Compare the stored decisions of alerts first seen in [since, until) with ``rule_set``."""
    if until <= since:
        raise Unprocessable("until must be after since.", field="until")
    started = time.perf_counter()
    bounds = (uuid7_floor(since - ID_SLACK), uuid7_floor(until + ID_SLACK), since, until)
    incidents: dict[uuid.UUID, _Incident] = {}
    evaluated = 0
    undecided = 0
    async with connection.transaction(readonly=True, isolation="repeatable_read"):
        total = await connection.fetchval(_COUNT, *bounds, service_id)
        if total > MAX_REPLAY_ALERTS:
            raise Unprocessable(
                f"{total} alerts fall in the range; a replay covers at most "
                f"{MAX_REPLAY_ALERTS}. Narrow the range or pick a service.",
                field="since",
            )
        cursor = await connection.cursor(_ALERTS, *bounds, service_id)
        while True:
            rows = await cursor.fetch(CHUNK_SIZE)
            if not rows:
                break
            evaluated += len(rows)
            # Evaluation is pure CPU work; a thread keeps the event loop serving requests.
            undecided += await asyncio.to_thread(_evaluate_chunk, rule_set, rows, incidents)
        pages = {
            row["incident_id"]: row["pages"]
            for row in await connection.fetch(_PAGES, *bounds, service_id)
        }
        return await _report(
            connection,
            incidents,
            pages,
            since=since,
            until=until,
            evaluated=evaluated,
            undecided=undecided,
            limit=limit,
            started=started,
        )


async def _report(
    connection: asyncpg.Connection,
    incidents: dict[uuid.UUID, _Incident],
    pages: dict[uuid.UUID, int],
    *,
    since: datetime,
    until: datetime,
    evaluated: int,
    undecided: int,
    limit: int,
    started: float,
) -> dict[str, Any]:
    counts = {"priority": 0, "route": 0, "suppression": 0, "dropped": 0}
    paging = {
        "incidents_paged": sum(1 for count in pages.values() if count),
        "pages_sent": sum(pages.values()),
        "incidents_not_paging_under_draft": 0,
        "pages_not_sent_under_draft": 0,
        "incidents_paging_under_draft": 0,
    }
    changed: list[tuple[datetime | None, uuid.UUID, list[str], str | None]] = []
    for incident_id, entry in incidents.items():
        changes = _changes(entry)
        sent = pages.get(incident_id, 0)
        paging_change = None
        if sent and entry.draft.pages_nobody:
            paging_change = "would_not_page"
            paging["incidents_not_paging_under_draft"] += 1
            paging["pages_not_sent_under_draft"] += sent
        elif entry.current.pages_nobody and not entry.draft.pages_nobody:
            paging_change = "would_page"
            paging["incidents_paging_under_draft"] += 1
        for change in changes:
            counts[change] += 1
        if changes or paging_change:
            changed.append((entry.first_seen_at, incident_id, changes, paging_change))
    changed.sort(key=lambda item: (item[0] or since, item[1]))

    listed = changed[:limit]
    details = {
        row["id"]: row
        for row in await connection.fetch(
            "SELECT id, number, title FROM incidents WHERE id = ANY($1::uuid[])",
            [incident_id for _, incident_id, _, _ in listed],
        )
    }
    items = []
    for _, incident_id, changes, paging_change in listed:
        entry = incidents[incident_id]
        detail = details.get(incident_id)
        items.append(
            {
                "incident_id": incident_id,
                "number": detail["number"] if detail else 0,
                "title": detail["title"] if detail else "",
                "alerts": entry.draft.alerts,
                "changes": changes,
                "current": entry.current.to_document(),
                "draft": entry.draft.to_document(),
                "pages_sent": pages.get(incident_id, 0),
                "paging": paging_change,
            }
        )
    return {
        "since": since,
        "until": until,
        "alerts_evaluated": evaluated,
        "alerts_without_decision": undecided,
        "incidents_evaluated": len(incidents),
        "incidents_changed": len(changed),
        "changes": counts,
        "pages": paging,
        "incidents": items,
        "incidents_truncated": len(changed) > limit,
        "elapsed_ms": int((time.perf_counter() - started) * 1000),
    }


async def load_stored(
    connection: asyncpg.Connection,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Load the stored rules in the engine's shape, and the stored matrix document."""
    rows = await connection.fetch(
        """
        SELECT id, version, name, service_id, position, enabled, "continue", conditions, actions
        FROM rules ORDER BY service_id NULLS FIRST, position
        """
    )
    specs = [
        {
            **dict(row),
            "conditions": from_json(row["conditions"]),
            "actions": from_json(row["actions"]),
        }
        for row in rows
    ]
    matrix = await connection.fetchval("SELECT document FROM priority_matrix WHERE id = 1")
    return specs, from_json(matrix) if matrix is not None else None
