"""Group commit: concurrent ingest requests for one integration share one transaction.

Every request still gets its response only after the commit that holds its events. When
requests arrive one at a time, each is committed at once, as before. Under load, the
requests that arrive while a commit is running go together into the next one. That turns
hundreds of small transactions, each waiting on the same rows (the integration, a hot
alert), into a few larger ones.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.db import run_in_transaction
from app.core.errors import AppError, is_connection_error
from app.core.logging import get_logger
from app.core.time import utcnow
from app.incidents.events import AlertEvent
from app.incidents.ingest import IngestResult, ingest_events
from app.ingest.integrations import ResolvedIntegration, find_integration
from app.rules.snapshot import known_revision

log = get_logger(__name__)

# Runs after the integration is found and before its events are applied; raises to reject.
IntegrationCheck = Callable[[ResolvedIntegration], None]

# Events committed together at most; a request is never split, so one larger request
# can exceed it.
MAX_EVENTS_PER_COMMIT = 500
# Commits of one integration that may run at once; the next group forms meanwhile.
PARALLEL_COMMITS = 2


@dataclass(slots=True)
class _Submission:
    events: list[AlertEvent]
    check: IntegrationCheck | None
    future: asyncio.Future[IngestResult] = field(repr=False)


def split_result(result: IngestResult, sizes: list[int]) -> list[IngestResult]:
    """Divide the result of a group commit between its requests, by their events' outcomes.

    An incident opened, acknowledged or resolved by the group is credited to the first
    request whose events did it. Every other incident that a request's events touched
    counts as updated for that request.
    """
    credit = {
        "alert.created": set(result.incidents_opened),
        "incident.acknowledged": set(result.incidents_acknowledged),
        "alert.resolved": set(result.incidents_resolved),
    }
    credited: set[object] = set()
    parts = []
    start = 0
    for size in sizes:
        part = IngestResult()
        part.count(result.outcomes[start : start + size])
        start += size
        targets = {
            "alert.created": part.incidents_opened,
            "incident.acknowledged": part.incidents_acknowledged,
            "alert.resolved": part.incidents_resolved,
        }
        for name, _, incident_id in part.outcomes:
            if incident_id is None:
                continue
            if incident_id in credit.get(name, ()) and incident_id not in credited:
                credited.add(incident_id)
                targets[name].append(incident_id)
            elif incident_id not in part.incidents:
                part.incidents_updated.append(incident_id)
        parts.append(part)
    return parts


class IngestBatcher:
    """Queues ingest requests per integration key and commits them in groups."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_events: int = MAX_EVENTS_PER_COMMIT,
        parallel: int = PARALLEL_COMMITS,
    ) -> None:
        self.engine = engine
        self.max_events = max_events
        self.parallel = parallel
        self._queues: dict[tuple[str, str], deque[_Submission]] = defaultdict(deque)
        self._running: dict[tuple[str, str], int] = defaultdict(int)
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(
        self,
        key: str,
        kind: str,
        events: list[AlertEvent],
        check: IntegrationCheck | None = None,
    ) -> IngestResult:
        """Apply ``events`` for the integration with ``key``; return after their commit."""
        group = (key, kind)
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queues[group].append(_Submission(events, check, future))
        if self._running[group] < self.parallel:
            self._running[group] += 1
            task = asyncio.create_task(self._drain(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # A client that disconnects does not take the commit back; shielding keeps the
        # group's other requests from being cancelled with it.
        return await asyncio.shield(future)

    async def _drain(self, group: tuple[str, str]) -> None:
        queue = self._queues[group]
        try:
            while queue:
                taken = [queue.popleft()]
                size = len(taken[0].events)
                while queue and size + len(queue[0].events) <= self.max_events:
                    submission = queue.popleft()
                    size += len(submission.events)
                    taken.append(submission)
                await self._flush(group, taken)
        finally:
            # No await separates the empty check above from this decrement, so a request
            # queued meanwhile always finds a drain running or starts one.
            self._running[group] -= 1
            if not self._running[group] and not queue:
                del self._running[group]
                del self._queues[group]

    async def _flush(self, group: tuple[str, str], taken: list[_Submission]) -> None:
        try:
            results = await self._commit(group, taken)
        except Exception as exc:
            if len(taken) > 1 and not isinstance(exc, AppError) and not is_connection_error(exc):
                # One request's events may be what failed: commit each alone, so the
                # others still succeed and only the culprit gets the error.
                log.warning("ingest.group_failed", requests=len(taken), error=repr(exc))
                for submission in taken:
                    await self._flush(group, [submission])
                return
            for submission in taken:
                if not submission.future.done():
                    submission.future.set_exception(exc)
            return
        for submission, result in zip(taken, results, strict=True):
            if submission.future.done():
                continue
            if isinstance(result, BaseException):
                submission.future.set_exception(result)
            else:
                submission.future.set_result(result)

    async def _commit(
        self, group: tuple[str, str], taken: list[_Submission]
    ) -> list[IngestResult | AppError]:
        key, kind = group

        async def work(connection: asyncpg.Connection) -> list[IngestResult | AppError]:
            integration = await find_integration(connection, key, kind=kind)
            rejected: dict[int, AppError] = {}
            for index, submission in enumerate(taken):
                if submission.check is None:
                    continue
                try:
                    submission.check(integration)
                except AppError as exc:
                    rejected[index] = exc
            accepted = [s for i, s in enumerate(taken) if i not in rejected]
            events = [event for submission in accepted for event in submission.events]
            with known_revision(integration.rule_revision):
                result = await ingest_events(connection, integration.context, events, utcnow())
            sizes = [len(submission.events) for submission in accepted]
            parts = iter([result] if len(sizes) == 1 else split_result(result, sizes))
            return [rejected[i] if i in rejected else next(parts) for i in range(len(taken))]

        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            try:
                results = await run_in_transaction(raw.driver_connection, work)
            except Exception as exc:
                # SQLAlchemy cannot see errors raised on the raw connection; a broken
                # connection must not go back to the pool.
                if is_connection_error(exc):
                    await connection.invalidate()
                raise
        if len(taken) > 1:
            log.debug("ingest.group_committed", requests=len(taken))
        return results
