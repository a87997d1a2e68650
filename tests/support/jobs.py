"""Run queued jobs inside a test, in order, without a background worker.

The queue is pgqueuer's table; taking jobs straight from it keeps a test deterministic,
and moving ``execute_after`` back stands in for waiting, as a controllable clock would.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from app.incidents.paging import PagingContext
from app.jobs.queue import decode_payload
from app.jobs.worker import HANDLERS

TAKE_NEXT = """
DELETE FROM pgqueuer WHERE id = (
    SELECT id FROM pgqueuer
    WHERE status = 'queued' AND ($1 OR execute_after <= now())
    ORDER BY execute_after, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING entrypoint, payload
"""


async def drain_jobs(
    connection: asyncpg.Connection,
    context: PagingContext,
    *,
    include_delayed: bool = False,
    limit: int = 1000,
) -> list[str]:
    """Run due jobs (and delayed ones when asked) until the queue has none; return their names."""
    ran: list[str] = []
    for _ in range(limit):
        row = await connection.fetchrow(TAKE_NEXT, include_delayed)
        if row is None:
            return ran
        await HANDLERS[row["entrypoint"]](context, decode_payload(row["payload"]))
        ran.append(row["entrypoint"])
    raise AssertionError(f"more than {limit} jobs ran; is a job re-enqueueing itself?")


async def queued_jobs(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            "SELECT entrypoint, payload, execute_after - now() AS due_in, dedupe_key "
            "FROM pgqueuer WHERE status = 'queued' ORDER BY execute_after, id"
        )
    )


async def advance_clock(connection: asyncpg.Connection, by: timedelta) -> None:
    """Make queued jobs due as if ``by`` had passed."""
    await connection.execute(
        "UPDATE pgqueuer SET execute_after = execute_after - $1::interval WHERE status = 'queued'",
        by,
    )
