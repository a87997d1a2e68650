"""The worker: pgqueuer's queue manager with Tocsin's job handlers."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
from pgqueuer.db import AsyncpgDriver
from pgqueuer.errors import RetryRequested
from pgqueuer.models import Job as QueuedJob
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import __version__
from app.actions import slack_update
from app.core.config import Settings
from app.core.db import connect_raw
from app.core.logging import get_logger
from app.core.security import SecretBox
from app.core.time import utcnow
from app.incidents import escalation_actions, lifecycle, paging
from app.ingest.heartbeats import check_heartbeat
from app.jobs.health import WorkerHealth, next_reconnect_delay
from app.jobs.queue import (
    ACKNOWLEDGE_TIMEOUT,
    CONTACT_METHOD_VERIFICATION,
    ESCALATION_STEP,
    HEARTBEAT_CHECK,
    INCIDENT_ACKNOWLEDGED,
    INCIDENT_REASSIGNED,
    INCIDENT_RESOLVED,
    INCIDENT_SETTLE,
    INCIDENT_TRIGGERED,
    INCIDENTS_SWEEP,
    NOTIFICATION_DELIVER,
    NOTIFICATION_DIGEST_JOB,
    NOTIFICATION_RULE_STEP,
    SNOOZE_ENDED,
    decode_payload,
    enqueue,
)
from app.notify import throttle
from app.notify.base import NotifierContext
from app.notify.registry import load_notifiers
from app.oncall import verification

log = get_logger(__name__)

# A handler that raises is retried with backoff this many times, then held as failed
# (status 'failed' in the pgqueuer table) for an operator to look at.
HANDLER_RETRIES = 10
HANDLER_RETRY_MAX_SECONDS = 300
# A queue loop still running this many seconds after its start counts as up.
UP_AFTER_SECONDS = 1.0

Handler = Callable[[paging.PagingContext, dict[str, Any]], Awaitable[None]]


async def _incident_triggered(context: paging.PagingContext, payload: dict[str, Any]) -> None:
    await paging.run_escalation_step(context, uuid.UUID(payload["incident_id"]), 0)


async def _escalation_step(context: paging.PagingContext, payload: dict[str, Any]) -> None:
    await paging.run_escalation_step(
        context,
        uuid.UUID(payload["incident_id"]),
        int(payload["step"]),
        int(payload.get("epoch", 0)),
    )


async def _incident_resolved(context: paging.PagingContext, payload: dict[str, Any]) -> None:
    await paging.send_status_notices(context, uuid.UUID(payload["incident_id"]), INCIDENT_RESOLVED)


async def _incident_acknowledged(context: paging.PagingContext, payload: dict[str, Any]) -> None:
    await paging.send_status_notices(
        context, uuid.UUID(payload["incident_id"]), INCIDENT_ACKNOWLEDGED
    )


async def _notification_digest(context: paging.PagingContext, payload: dict[str, Any]) -> None:
    contact_method_id = uuid.UUID(payload["contact_method_id"])
    async with context.sessionmaker() as session, session.begin():
        await throttle.create_digest(
            session,
            contact_method_id,
            # The responder pages open on a phone, where the API returns 401.
            links={"view": f"{context.settings.public_base_url}/oncall"},
            min_interval=throttle.DIGEST_MIN_INTERVAL,
            now=utcnow(),
        )


async def _notification_deliver(context: paging.PagingContext, payload: dict[str, Any]) -> None:
    await paging.deliver_notification(context, uuid.UUID(payload["notification_id"]))


async def _incident_settle(context: paging.PagingContext, payload: dict[str, Any]) -> None:
    await lifecycle.settle(
        context, uuid.UUID(payload["incident_id"]), int(payload["settle_seconds"])
    )


async def _acknowledge_timeout(context: paging.PagingContext, payload: dict[str, Any]) -> None:
    await lifecycle.acknowledge_timeout(
        context, uuid.UUID(payload["incident_id"]), payload["acknowledged_at"]
    )


async def _snooze_ended(context: paging.PagingContext, payload: dict[str, Any]) -> None:
    await lifecycle.snooze_ended(context, uuid.UUID(payload["incident_id"]), payload["until"])


async def _sweep(context: paging.PagingContext, payload: dict[str, Any]) -> None:
    await lifecycle.sweep(context)


async def _contact_method_verification(
    context: paging.PagingContext, payload: dict[str, Any]
) -> None:
    await verification.send_code(
        context.sessionmaker,
        context.notifiers,
        context.box,
        uuid.UUID(payload["contact_method_id"]),
    )


HANDLERS: dict[str, Handler] = {
    INCIDENT_TRIGGERED: _incident_triggered,
    ESCALATION_STEP: _escalation_step,
    INCIDENT_RESOLVED: _incident_resolved,
    INCIDENT_ACKNOWLEDGED: _incident_acknowledged,
    INCIDENT_SETTLE: _incident_settle,
    ACKNOWLEDGE_TIMEOUT: _acknowledge_timeout,
    SNOOZE_ENDED: _snooze_ended,
    INCIDENTS_SWEEP: _sweep,
    NOTIFICATION_DELIVER: _notification_deliver,
    HEARTBEAT_CHECK: check_heartbeat,
    slack_update.SLACK_MESSAGE_UPDATE: slack_update.run_update,
    NOTIFICATION_DIGEST_JOB: _notification_digest,
    NOTIFICATION_RULE_STEP: paging.run_notification_rule_step,
    INCIDENT_REASSIGNED: escalation_actions.run_reassign_page,
    CONTACT_METHOD_VERIFICATION: _contact_method_verification,
}


def _wrap(
    name: str, handler: Handler, context: paging.PagingContext
) -> Callable[[QueuedJob], Awaitable[None]]:
    async def run(job: QueuedJob) -> None:
        payload = decode_payload(job.payload)
        try:
            await handler(context, payload)
        except Exception as exc:
            attempts = int(getattr(job, "attempts", 0) or 0)
            log.exception("job.failed", entrypoint=name, job_id=int(job.id), attempt=attempts + 1)
            if attempts < HANDLER_RETRIES:
                delay = min(2**attempts, HANDLER_RETRY_MAX_SECONDS)
                raise RetryRequested(delay=timedelta(seconds=delay), reason=repr(exc)) from exc
            raise

    return run


async def _close_quietly(connection: asyncpg.Connection) -> None:
    """Close a connection that may already be broken, without waiting on a dead server."""
    try:
        await connection.close(timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        connection.terminate()


class ConnectionLost(Exception):
    """The worker's own database connection closed while its queue loop ran."""


class Worker:
    """Runs job handlers until ``stop`` is called; several workers may share one database.

    When the queue loop ends on an error (the connection was lost, the listener failed,
    the database is down), the worker logs it and reconnects, waiting 0.5 s, then twice as
    long after each failure, up to 30 s. Jobs that the lost loop had picked stay 'picked'
    until their heartbeat is older than ``worker_heartbeat_timeout_seconds``; then any
    worker's next dequeue takes them again.
    """

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.database_url = database_url
        self.sessionmaker = sessionmaker
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.delivery_timeout_seconds),
            follow_redirects=False,
        )
        notifier_context = NotifierContext(http=self.http, user_agent=f"Tocsin/{__version__}")
        self.context = paging.PagingContext(
            sessionmaker=sessionmaker,
            settings=settings,
            notifiers=load_notifiers(notifier_context, settings.notifiers),
            box=SecretBox(settings.signing_key()),
        )
        self.manager: QueueManager | None = None
        self.health = WorkerHealth()
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Run the queue loop, reconnecting after every failure, until ``stop`` is called."""
        delay: float | None = None
        try:
            while not self._stopping.is_set():
                try:
                    await self._run_queue_loop()
                except Exception as exc:
                    if self._stopping.is_set():
                        break
                    error = f"{type(exc).__name__}: {exc}"
                else:
                    break
                # A loop that came up resets the backoff, and each failed attempt doubles it.
                delay = None if self.health.down_since is None else delay
                delay = next_reconnect_delay(delay)
                self._report_failure(error, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        finally:
            if self._own_http:
                await self.http.aclose()
            log.info("worker.stopped")

    def _report_failure(self, error: str, delay: float) -> None:
        first = self.health.failures == 0
        self.health.mark_down(error, time.monotonic())
        if first:
            log.error("worker.interrupted", error=error, retry_in_seconds=delay)
        else:
            log.warning(
                "worker.reconnect_failed",
                error=error,
                failures=self.health.failures,
                retry_in_seconds=delay,
            )

    async def _run_queue_loop(self) -> None:
        """Connect, run pgqueuer's queue manager until it ends, and close the connection.

        Returns only when ``stop`` ended the loop; raises on every other end.
        """
        connection = await connect_raw(self.database_url)
        try:
            manager = QueueManager(Queries(AsyncpgDriver(connection)))
            # pgqueuer notices a dead connection only at its next query, up to 30 s later.
            # The termination callback ends its loop at once.
            connection.add_termination_listener(lambda _: manager.shutdown.set())
            for name, handler in HANDLERS.items():
                manager.entrypoint(name, on_failure="hold")(_wrap(name, handler, self.context))
            # Every worker schedules the periodic sweep; its dedupe key keeps one per interval.
            async with connection.transaction():
                await enqueue(connection, [lifecycle.sweep_job(utcnow())])
            self.manager = manager
            if self._stopping.is_set():
                return
            await self._run_manager(manager)
            if not self._stopping.is_set():
                raise ConnectionLost("the worker's database connection was closed")
        finally:
            await _close_quietly(connection)

    async def _run_manager(self, manager: QueueManager) -> None:
        batch_size = max(1, self.settings.worker_concurrency // 2)
        loop = asyncio.create_task(
            manager.run(
                batch_size=batch_size,
                # pgqueuer requires room for two batches.
                max_concurrent_tasks=max(self.settings.worker_concurrency, 2 * batch_size),
                heartbeat_timeout=timedelta(seconds=self.settings.worker_heartbeat_timeout_seconds),
                dequeue_timeout=timedelta(seconds=30),
                # A failed LISTEN probe (pgqueuer 1.6 sends one every 10 s) ends the loop.
                shutdown_on_listener_failure=True,
            ),
            name="tocsin-queue-loop",
        )
        try:
            # pgqueuer checks its tables and starts listening when the loop starts (within
            # milliseconds on a reachable database), so a loop that fails there never
            # counts as up.
            done, _ = await asyncio.wait({loop}, timeout=UP_AFTER_SECONDS)
            if not done:
                self._report_up()
            await loop
        finally:
            if not loop.done():
                loop.cancel()
                await asyncio.wait({loop})

    def _report_up(self) -> None:
        down_since = self.health.down_since
        recovered = self.health.failures > 0
        self.health.mark_up()
        if recovered and down_since is not None:
            log.info("worker.reconnected", down_seconds=round(time.monotonic() - down_since, 1))
        log.info("worker.started", notifiers=sorted(self.context.notifiers))

    def stop(self) -> None:
        self._stopping.set()
        if self.manager is not None:
            self.manager.shutdown.set()
