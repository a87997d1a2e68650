"""Keyset pagination: opaque cursors over a (timestamp, id) order."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.core.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

T = TypeVar("T")
M = TypeVar("M")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= to get the next page; null on the last page."
    )


LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, {DEFAULT_LIMIT} by default.")
]
CursorQuery = Annotated[
    str | None, Query(description="The next_cursor value of the previous page.")
]


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Return the (time, id) position in ``cursor``; raise BadRequest when it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))
        if not (isinstance(value, list) and len(value) == 2):
            raise ValueError("a cursor is a JSON array of a time and an id")
        at_text, id_text = value
        if not (isinstance(at_text, str) and isinstance(id_text, str)):
            raise ValueError("a cursor contains two strings")
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:
            raise ValueError("a cursor time must have a UTC offset")
        # Converting to UTC here raises OverflowError for a time outside datetime's range
        # in UTC, which asyncpg would otherwise raise as a database error.
        return at.astimezone(UTC), uuid.UUID(id_text)
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error) as exc:
        raise BadRequest(
            "The cursor is invalid; pass the next_cursor value of a previous page unchanged.",
            field="cursor",
        ) from exc


async def fetch_page(
    session: AsyncSession,
    statement: Select[M],
    *,
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
    limit: int,
    cursor: str | None,
    newest_first: bool = False,
) -> tuple[list[M], str | None]:
    """Run ``statement`` for one page ordered by (time, id); return the rows and next cursor."""
    if newest_first:
        statement = statement.order_by(time_column.desc(), id_column.desc())
    else:
        statement = statement.order_by(time_column, id_column)
    if cursor:
        at, last_id = decode_cursor(cursor)
        if newest_first:
            after = or_(time_column < at, and_(time_column == at, id_column < last_id))
        else:
            after = or_(time_column > at, and_(time_column == at, id_column > last_id))
        statement = statement.where(after)
    rows = list((await session.scalars(statement.limit(limit + 1))).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(getattr(last, time_column.key), getattr(last, id_column.key))
