"""Request dependencies: settings, the ORM session and the raw connection of the hot path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.errors import PayloadTooLarge, is_connection_error


async def get_settings(request: Request) -> Settings:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a hand-off that
    # costs more than the attribute read itself.
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yield a session; commit when the endpoint returns, before the response is sent.

    Used with ``scope="function"``: FastAPI's default would run the commit after the
    response has gone out, and a client must never see a 2xx for work not committed.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def get_raw_connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """Yield a pooled asyncpg connection for statements that bypass the ORM."""
    engine = get_engine(request)
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        try:
            yield raw.driver_connection
        except Exception as exc:
            # SQLAlchemy cannot see errors raised on the raw connection; without this a
            # broken connection would go back to the pool and fail the next request too.
            if is_connection_error(exc):
                await connection.invalidate()
            raise


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
RawConnectionDep = Annotated[asyncpg.Connection, Depends(get_raw_connection, scope="function")]


async def read_body(request: Request, limit: int, *, advice: str = "Send a smaller body.") -> bytes:
    """Read the request body, rejecting it with 413 as soon as it passes ``limit`` bytes.

    ``advice`` ends the error's detail: what the sender can change to fit the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"The body is {declared} bytes; the limit is {limit} bytes. {advice}",
            field="body",
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"The body exceeds the limit of {limit} bytes. {advice}", field="body"
            )
        chunks.append(chunk)
    return b"".join(chunks)
