"""API keys: created by admins, stored hashed, shown once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep
from app.api.models import ApiKey
from app.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, fetch_page
from app.api.retry import TransactionRetryRoute
from app.core.errors import NotFound, problem_responses
from app.core.schemas import RequestModel
from app.core.security import hash_key, new_api_key
from app.core.time import utcnow

router = APIRouter(prefix="/api-keys", tags=["api keys"], route_class=TransactionRetryRoute)

Admin = Annotated[Principal, Depends(require(Scope.admin))]


class ApiKeyCreate(RequestModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    scopes: list[Scope] = Field(min_length=1)


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    key_hint: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret; shown only in this answer")


async def create_api_key(
    session: SessionDep, *, name: str, scopes: list[str], key: str | None = None
) -> tuple[ApiKey, str]:
    key = key or new_api_key()
    api_key = ApiKey(name=name, key_hash=hash_key(key), key_hint=key[-4:], scopes=scopes)
    session.add(api_key)
    await session.flush()
    return api_key, key


@router.get("", response_model=Page[ApiKeyRead], responses=problem_responses(400, 401, 403))
async def list_api_keys(
    session: SessionDep, _: Admin, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[ApiKeyRead]:
    """List API keys, oldest first, without their secrets."""
    rows, next_cursor = await fetch_page(
        session,
        select(ApiKey),
        time_column=ApiKey.created_at,
        id_column=ApiKey.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[ApiKeyRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get("/{api_key_id}", response_model=ApiKeyRead, responses=problem_responses(401, 403, 404))
async def get_api_key(api_key_id: uuid.UUID, session: SessionDep, _: Admin) -> ApiKeyRead:
    """Get an API key, without its secret."""
    return ApiKeyRead.model_validate(await _get_api_key(session, api_key_id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=problem_responses(401, 403, 422),
)
async def create_key(
    body: ApiKeyCreate, session: SessionDep, response: Response, _: Admin
) -> ApiKeyCreated:
    """Create an API key. The answer holds the key once."""
    api_key, key = await create_api_key(
        session, name=body.name, scopes=[s.value for s in body.scopes]
    )
    response.headers["Location"] = f"/v1/api-keys/{api_key.id}"
    return ApiKeyCreated(**ApiKeyRead.model_validate(api_key).model_dump(), key=key)


@router.post(
    "/{api_key_id}/revoke", response_model=ApiKeyRead, responses=problem_responses(401, 403, 404)
)
async def revoke_key(api_key_id: uuid.UUID, session: SessionDep, _: Admin) -> ApiKeyRead:
    """Revoke an API key; it stops working at once."""
    api_key = await _get_api_key(session, api_key_id)
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        await session.flush()
    return ApiKeyRead.model_validate(api_key)


async def _get_api_key(session: AsyncSession, api_key_id: uuid.UUID) -> ApiKey:
    api_key = await session.get(ApiKey, api_key_id)
    if api_key is None:
        raise NotFound(f"API key {api_key_id} does not exist.", field="api_key_id")
    return api_key
