"""API key authentication and scopes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update

from app.api.deps import SessionDep
from app.api.models import ApiKey
from app.core.errors import Forbidden, Unauthorized
from app.core.security import hash_key
from app.core.time import utcnow

# Writing last_used_at on every request would turn each read into a write.
LAST_USED_PRECISION = timedelta(minutes=1)


class Scope(StrEnum):
    admin = "admin"
    incidents_read = "incidents:read"
    incidents_write = "incidents:write"
    config_read = "config:read"
    config_write = "config:write"


# A write scope includes the matching read scope.
_IMPLIED: dict[str, set[str]] = {
    Scope.incidents_write: {Scope.incidents_read},
    Scope.config_write: {Scope.config_read},
}

bearer = HTTPBearer(auto_error=False, description="An API key: Authorization: Bearer tocsin_...")


@dataclass(frozen=True, slots=True)
class Principal:
    api_key_id: uuid.UUID
    name: str
    scopes: frozenset[str]

    def allows(self, scope: Scope) -> bool:
        if Scope.admin in self.scopes or scope in self.scopes:
            return True
        return any(scope in _IMPLIED.get(held, set()) for held in self.scopes)

    def as_actor(self) -> dict[str, Any]:
        return {"type": "api_key", "id": str(self.api_key_id), "name": self.name}


async def authenticate(
    request: Request,
    session: SessionDep,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Principal:
    if credentials is None:
        raise Unauthorized(
            "Missing API key. Send the header Authorization: Bearer <api key>; "
            "`tocsin demo --json` prints one."
        )
    key = await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(credentials.credentials))
    )
    if key is None or key.revoked_at is not None:
        raise Unauthorized("The API key is unknown or revoked.")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
    principal = Principal(api_key_id=key.id, name=key.name, scopes=frozenset(key.scopes))
    request.state.principal = principal
    return principal


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """Build a dependency that authenticates and checks one scope."""

    async def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        if not principal.allows(scope):
            raise Forbidden(
                f"The API key '{principal.name}' lacks the scope '{scope.value}'.",
            )
        return principal

    return dependency
