"""The compiled rules, matrix, maintenance windows and silences, cached per process.

Every change to any of them writes a new random token into the single row of
``rule_revisions`` in the same transaction. The ingest path and the escalation steps
read that token (one primary-key lookup) and reuse the compiled snapshot that has it, so
a change made through any API process applies to every process from its next request,
and compiling regexes and CEL happens once per change, not once per request. A random
token, unlike a counter, cannot repeat after a restore or a truncated table.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.core.logging import get_logger
from app.rules.engine import Rule, RuleCompileError, RuleSet, compile_rule
from app.rules.priority import PriorityMatrix
from app.rules.timeline import from_json
from app.rules.windows import (
    MaintenanceWindow,
    Silence,
    WindowError,
    compile_silence_matchers,
)

log = get_logger(__name__)

_CACHE_SIZE = 4
_cache: OrderedDict[uuid.UUID, Snapshot] = OrderedDict()

_REVISION_QUERY = "SELECT token FROM rule_revisions WHERE id = 1"
# A column to add to a query that the same transaction runs before classifying, so the
# token arrives without a round trip of its own (see ``known_revision``).
REVISION_COLUMN = "(SELECT token FROM rule_revisions WHERE id = 1) AS rule_revision"

_known_token: ContextVar[uuid.UUID | None] = ContextVar("rule_revision_token", default=None)

# One statement, so the token and the rows it describes come from one snapshot of the data.
_LOAD = """
SELECT
    (SELECT token FROM rule_revisions WHERE id = 1) AS token,
    (SELECT document FROM priority_matrix WHERE id = 1) AS matrix,
    (SELECT coalesce(json_agg(json_build_object(
        'id', id, 'version', version, 'name', name, 'service_id', service_id,
        'position', position, 'enabled', enabled, 'continue', "continue",
        'conditions', conditions, 'actions', actions)), '[]')
     FROM rules WHERE enabled) AS rules,
    (SELECT coalesce(json_agg(json_build_object(
        'id', id, 'service_id', service_id, 'name', name, 'starts_at', starts_at,
        'ends_at', ends_at, 'time_zone', time_zone, 'rrule', rrule)), '[]')
     FROM maintenance_windows WHERE rrule IS NOT NULL OR ends_at > now()) AS windows,
    (SELECT coalesce(json_agg(json_build_object(
        'id', id, 'service_id', service_id, 'matchers', matchers, 'starts_at', starts_at,
        'ends_at', ends_at, 'until_resolved', until_resolved, 'expired_at', expired_at,
        'created_by', created_by, 'comment', comment)), '[]')
     FROM silences
     WHERE expired_at IS NULL AND (ends_at IS NULL OR ends_at > now())) AS silences
"""


@dataclass(frozen=True, slots=True)
class Snapshot:
    token: uuid.UUID | None
    rule_set: RuleSet
    windows: Mapping[uuid.UUID, tuple[MaintenanceWindow, ...]]
    silences: tuple[Silence, ...]

    def active_window(self, service_id: uuid.UUID, at: datetime) -> MaintenanceWindow | None:
        """The window of the service that covers ``at`` and ends last, if any."""
        best = None
        best_end = None
        for window in self.windows.get(service_id, ()):
            occurrence = window.occurrence_at(at)
            if occurrence is not None and (best_end is None or occurrence.ends_at > best_end):
                best, best_end = window, occurrence.ends_at
        return best


@contextlib.contextmanager
def known_revision(token: uuid.UUID | None) -> Iterator[None]:
    """Let ``current_snapshot`` use ``token`` instead of reading it again.

    ``token`` must come from ``REVISION_COLUMN`` in an earlier statement of the
    transaction the block runs in. Under READ COMMITTED that reads the same committed
    state as a query of its own a moment later would, and it saves one round trip per
    ingest request.
    """
    reset = _known_token.set(token)
    try:
        yield
    finally:
        _known_token.reset(reset)


async def current_snapshot(connection: asyncpg.Connection) -> Snapshot:
    """Return the snapshot for the database's current token, loading it when it changed."""
    token = _known_token.get()
    if token is None:
        token = await connection.fetchval(_REVISION_QUERY)
    if token is not None:
        cached = _cache.get(token)
        if cached is not None:
            return cached
    row = await connection.fetchrow(_LOAD)
    snapshot = build_snapshot(
        row["token"],
        from_json(row["rules"]),
        from_json(row["matrix"]),
        from_json(row["windows"]),
        from_json(row["silences"]),
    )
    if snapshot.token is not None:
        _cache[snapshot.token] = snapshot
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    log.info("rules.loaded", rules=snapshot.rule_set.rule_count, silences=len(snapshot.silences))
    return snapshot


def compile_stored_rules(rows: list[dict[str, Any]]) -> list[Rule]:
    """Compile stored rules, skipping (and logging) any that no longer compile.

    Rules are checked when saved, so this happens only when a library upgrade changes
    what compiles; one bad rule must not stop every alert from being ingested.
    """
    rules = []
    for row in rows:
        try:
            rules.append(compile_rule(row))
        except RuleCompileError as exc:
            log.error("rules.compile_failed", rule_id=str(row.get("id")), error=str(exc))
    return rules


def build_snapshot(
    token: uuid.UUID | None,
    rules: list[dict[str, Any]],
    matrix: dict[str, Any] | None,
    windows: list[dict[str, Any]],
    silences: list[dict[str, Any]],
) -> Snapshot:
    by_service: dict[uuid.UUID, list[MaintenanceWindow]] = {}
    for row in windows:
        try:
            window = window_from_row(row)
        except WindowError as exc:
            log.error("maintenance_window.invalid", window_id=str(row.get("id")), error=str(exc))
            continue
        by_service.setdefault(window.service_id, []).append(window)
    compiled_silences = []
    for row in silences:
        try:
            compiled_silences.append(silence_from_row(row))
        except WindowError as exc:
            log.error("silence.invalid", silence_id=str(row.get("id")), error=str(exc))
    return Snapshot(
        token=token,
        rule_set=RuleSet.build(compile_stored_rules(rules), PriorityMatrix.from_document(matrix)),
        windows={key: tuple(value) for key, value in by_service.items()},
        silences=tuple(compiled_silences),
    )


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _optional_instant(value: Any) -> datetime | None:
    return None if value is None else _instant(value)


def window_from_row(row: Mapping[str, Any]) -> MaintenanceWindow:
    return MaintenanceWindow(
        id=uuid.UUID(str(row["id"])),
        service_id=uuid.UUID(str(row["service_id"])),
        name=str(row["name"]),
        starts_at=_instant(row["starts_at"]),
        ends_at=_instant(row["ends_at"]),
        time_zone=str(row["time_zone"]),
        rrule=row.get("rrule"),
    )


def silence_from_row(row: Mapping[str, Any]) -> Silence:
    created_by = from_json(row["created_by"])
    matchers = from_json(row["matchers"])
    return Silence(
        id=uuid.UUID(str(row["id"])),
        service_id=uuid.UUID(str(row["service_id"])) if row.get("service_id") else None,
        matchers=compile_silence_matchers(matchers),
        starts_at=_instant(row["starts_at"]),
        ends_at=_optional_instant(row.get("ends_at")),
        until_resolved=bool(row["until_resolved"]),
        expired_at=_optional_instant(row.get("expired_at")),
        created_by=dict(created_by or {}),
        comment=str(row.get("comment") or ""),
    )


async def bump_revision(connection: asyncpg.Connection) -> None:
    """Give the rule configuration a new token; call in the transaction that changes it.

    The row lock taken here also serialises concurrent changes until commit, which keeps
    rule positions dense when two clients reorder at once.
    """
    await connection.execute(
        """
        INSERT INTO rule_revisions (id, token, changed_at) VALUES (1, $1, now())
        ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token, changed_at = EXCLUDED.changed_at
        """,
        uuid.uuid4(),
    )
