"""Fixtures: a real PostgreSQL database migrated once per run, an app per test, demo data.

Each test that touches the database starts from empty tables (``clean_database``), so
the suite passes again on the same database and tests do not depend on their order.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from app.core.config import Settings
from app.core.logging import configure_logging
from app.core.migrate import upgrade
from app.core.security import SecretBox
from app.demo import ensure_demo
from app.incidents.paging import PagingContext
from app.main import create_app
from app.notify.base import NotifierContext
from app.notify.registry import load_notifiers
from tests.support import database
from tests.support.receiver import Receiver, RunningServer

PAYLOADS = Path(__file__).parent / "fixtures" / "payloads"
TEST_SECRET_KEY = "test-secret-key-" + "x" * 40

configure_logging("warning")


def payload_bytes(name: str) -> bytes:
    """A sender's body as it arrives, e.g. ``alertmanager/firing-two-alerts.json``."""
    return (PAYLOADS / name).read_bytes()


def payload_json(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(payload_bytes(name))
    return value


@pytest.fixture(scope="session")
def server_url() -> str:
    return database.server_url()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database, migrated to head with Alembic, for the whole run (asyncpg URL)."""
    name = database.database_name()
    database.run_in_thread(lambda: database.recreate_database(server_url, name))
    url = database.url_for(server_url, name)
    sqlalchemy_url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    # Alembic's env runs its own event loop, so it gets a thread of its own.
    database.call_in_thread(lambda: upgrade(sqlalchemy_url))
    yield sqlalchemy_url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        data_dir=tmp_path / "data",
        public_url="http://tocsin.test",
        delivery_timeout_seconds=5,
    )


@pytest_asyncio.fixture
async def raw_db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to the test database, for assertions on stored rows."""
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        yield connection
    finally:
        await connection.close()


@pytest_asyncio.fixture
async def clean_database(raw_db: asyncpg.Connection) -> None:
    await raw_db.execute(database.truncate_statement())


@pytest_asyncio.fixture
async def app(
    settings: Settings, database_url: str, clean_database: None
) -> AsyncIterator[FastAPI]:
    application = create_app(settings, run_worker=False, database_url=database_url)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as http:
        yield http


@pytest_asyncio.fixture
async def demo(app: FastAPI) -> dict[str, Any]:
    """Demo data: ``api_key`` and the Alertmanager integration's ``key`` and ``url``."""
    async with app.state.sessionmaker() as session, session.begin():
        return await ensure_demo(session, app.state.settings)


@pytest.fixture
def auth(demo: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo['api_key']}"}


@pytest.fixture
def alertmanager_path(demo: dict[str, Any]) -> str:
    key = demo["services"][0]["integrations"]["alertmanager"]["key"]
    return f"/ingest/alertmanager/{key}"


@pytest_asyncio.fixture
async def paging(app: FastAPI) -> AsyncIterator[PagingContext]:
    """The context job handlers run with, sharing the app's database and a real HTTP client."""
    settings: Settings = app.state.settings
    async with httpx.AsyncClient(timeout=settings.delivery_timeout_seconds) as http:
        yield PagingContext(
            sessionmaker=app.state.sessionmaker,
            settings=settings,
            notifiers=load_notifiers(NotifierContext(http=http, user_agent="Tocsin/test")),
            box=SecretBox(settings.signing_key()),
        )


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with RunningServer(Receiver()) as running:
        yield running
