"""Find or start the PostgreSQL server the tests use, and create scratch databases on it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app.core.db import asyncpg_dsn, start_embedded_postgres
from app.core.models import Base

ROOT = Path(__file__).resolve().parents[2]
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
PGQUEUER_TABLES = ("pgqueuer", "pgqueuer_log", "pgqueuer_statistics", "pgqueuer_schedules")

T = TypeVar("T")


def run_in_thread(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a private loop, from code that may sit in a loop."""
    return call_in_thread(lambda: asyncio.run(factory()))


def call_in_thread(function: Callable[[], T]) -> T:
    """Call ``function`` in a new thread and return its result or raise its error."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(function())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _local_server_listens() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


def server_url() -> str:
    """The maintenance URL of the server for tests (database ``postgres``), asyncpg form."""
    configured = os.environ.get("TOCSIN_TEST_DATABASE_URL")
    if configured:
        return asyncpg_dsn(configured.replace("postgres://", "postgresql://", 1))
    if _local_server_listens():
        return LOCAL_SERVER
    embedded = start_embedded_postgres(ROOT / ".tocsin-test")
    return url_for(asyncpg_dsn(embedded), "postgres")


def database_name(suffix: str = "") -> str:
    """A database name per checkout, so parallel work trees never share one."""
    configured = os.environ.get("TOCSIN_TEST_DATABASE_NAME")
    base = configured or "tocsin_test_" + hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]
    return base + suffix


def url_for(server: str, name: str) -> str:
    """Swap the database name in a PostgreSQL URL, keeping host, socket and options."""
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


async def recreate_database(server: str, name: str) -> None:
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(server: str, name: str) -> None:
    connection = await asyncpg.connect(server)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def truncate_statement() -> str:
    tables = [table.name for table in Base.metadata.sorted_tables]
    return f"TRUNCATE {', '.join([*tables, *PGQUEUER_TABLES])} RESTART IDENTITY CASCADE"
