"""Kill the worker between two escalation levels; a new worker pages the next level once.

Two real ``tocsin worker`` processes run against the test database. The first pages
level 1 and is killed with SIGKILL while level 2 waits as a delayed job. The second
starts and must page level 2 exactly once, on time. The delay between the job's due time
and the page leaving is printed (run with ``-s`` to see it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.conftest import TEST_SECRET_KEY
from tests.support.oncall import OnCallApi, user_target
from tests.support.processes import die_with_parent
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]

TOCSIN = Path(sys.executable).with_name("tocsin")
# How far ahead the delayed step is moved, so the second worker is listening before it.
DUE_AFTER = timedelta(seconds=6)
# On an idle system a level must page within a second of its due time.
ON_TIME = timedelta(seconds=1)


class WorkerProcess:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.process: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []

    async def start(self) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("TOCSIN_")}
        env.update(
            TOCSIN_ENV="test",
            TOCSIN_DATABASE_URL=self.database_url,
            TOCSIN_SECRET_KEY=TEST_SECRET_KEY,
            TOCSIN_PUBLIC_URL="http://tocsin.test",
            TOCSIN_LOG_FORMAT="json",
            TOCSIN_LOG_LEVEL="info",
        )
        self.process = await asyncio.create_subprocess_exec(
            str(TOCSIN),
            "worker",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        await self.wait_for_log("worker.started", timeout=30)

    async def wait_for_log(self, event: str, timeout: float) -> None:
        assert self.process is not None and self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    raise AssertionError(f"worker exited before {event}: {self.lines[-20:]}")
                self.lines.append(line)
                if f'"event": "{event}"' in line or f'"event":"{event}"' in line:
                    return

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await self.process.wait()
        except TimeoutError:
            await self.kill()


@pytest_asyncio.fixture
async def workers(database_url: str) -> AsyncIterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    try:
        yield started
    finally:
        for worker in started:
            await worker.stop()


async def wait_until(
    raw_db: asyncpg.Connection, query: str, *args: Any, timeout: float = 30
) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            value = await raw_db.fetchval(query, *args)
            if value:
                return value
            await asyncio.sleep(0.05)


async def test_restarted_worker_pages_level_once(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
    database_url: str,
    workers: list[WorkerProcess],
) -> None:
    api = OnCallApi(client, auth)
    ada = await api.user("Ada", contact="webhook", address=receiver.url)
    bob = await api.user("Bob", contact="webhook", address=receiver.url)
    policy = await api.policy(
        "Restart", [([user_target(ada)], 1), ([user_target(bob)], 1), ([user_target(ada)], 1)]
    )
    await api.use_policy(demo["services"][0]["id"], policy)

    first = WorkerProcess(database_url)
    workers.append(first)
    await first.start()
    incident = await api.fire_alert(alertmanager_path, "WorkerRestart")
    [page] = await receiver.wait_for(1, timeout=30)
    assert json.loads(page.body)["recipient"]["user_id"] == ada
    await wait_until(
        raw_db,
        "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'escalation.step' AND status = 'queued'",
    )
    await first.kill()

    due = await raw_db.fetchval(
        """
        UPDATE pgqueuer SET execute_after = now() + $1::interval
        WHERE entrypoint = 'escalation.step' AND status = 'queued'
        RETURNING execute_after
        """,
        DUE_AFTER,
    )
    second = WorkerProcess(database_url)
    workers.append(second)
    await second.start()
    ready_before_due = await raw_db.fetchval("SELECT now() < $1", due)
    assert ready_before_due, "the second worker started after the step was due"
    pages = await receiver.wait_for(2, timeout=60)
    assert json.loads(pages[1].body)["recipient"]["user_id"] == bob

    # Level 2 has paged once its delivery is logged and the step after it is queued.
    await wait_until(
        raw_db,
        """
        SELECT count(*) FROM notifications n JOIN delivery_attempts a ON a.notification_id = n.id
        WHERE n.incident_id = $1 AND n.escalation_step = 1
        """,
        uuid.UUID(incident),
    )
    await wait_until(
        raw_db,
        "SELECT count(*) FROM pgqueuer WHERE status = 'queued' AND dedupe_key = $1",
        f"escalation.step:{incident}:0:2",
    )
    rows = await raw_db.fetch(
        """
        SELECT n.user_id, n.created_at, a.started_at
        FROM notifications n JOIN delivery_attempts a ON a.notification_id = n.id
        WHERE n.incident_id = $1 AND n.escalation_step = 1
        """,
        uuid.UUID(incident),
    )
    assert len(rows) == 1
    assert str(rows[0]["user_id"]) == bob
    assert len(receiver.requests) == 2
    decided = rows[0]["created_at"] - due
    sent = rows[0]["started_at"] - due
    print(
        f"\nlevel 2: step ran {decided.total_seconds():.3f} s and the page left "
        f"{sent.total_seconds():.3f} s after its due time"
    )
    assert decided >= timedelta(0), "level 2 paged before its due time"
    assert sent < ON_TIME
