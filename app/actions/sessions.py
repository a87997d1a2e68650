"""Signed session cookies for the responder pages, and the CSRF tokens of their forms.

A session is started by opening a valid action link (as the link's user) or by signing in
with an API key. The cookie contains who and until when, signed with a key derived from
the instance secret. Every request loads the user or key again, so deleting the user or
revoking the key ends the session at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import Principal, Scope
from app.api.models import ApiKey
from app.core.config import Settings
from app.core.security import derive_key
from app.oncall.models import User, UserRole

COOKIE_NAME = "tocsin_session"
SESSION_TTL = timedelta(hours=12)
# The sign-in form's token: a random value in a cookie and in the form, which must match.
LOGIN_COOKIE_NAME = "tocsin_login"
LOGIN_TOKEN_TTL = timedelta(hours=1)
_PURPOSE = "tocsin responder sessions"


@dataclass(frozen=True, slots=True)
class Viewer:
    """The user or API key signed in to the responder pages."""

    kind: str  # "user" or "api_key"
    id: uuid.UUID
    name: str
    can_act: bool

    def actor(self, channel: str) -> dict[str, Any]:
        return {"type": self.kind, "id": str(self.id), "name": self.name, "channel": channel}


def _key(settings: Settings) -> bytes:
    return derive_key(settings.signing_key(), _PURPOSE)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_session(
    settings: Settings,
    *,
    kind: str,
    subject_id: uuid.UUID,
    now: datetime,
    until: datetime | None = None,
) -> str:
    expires = int(min(now + SESSION_TTL, until or now + SESSION_TTL).timestamp())
    body = _b64(json.dumps({"k": kind, "id": str(subject_id), "exp": expires}).encode())
    mac = hmac.new(_key(settings), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def decode_session(settings: Settings, value: str, *, now: datetime) -> tuple[str, uuid.UUID]:
    """Return (kind, subject id) of a valid, unexpired cookie; raise ValueError otherwise."""
    body, _, mac_text = value.partition(".")
    expected = hmac.new(_key(settings), body.encode(), hashlib.sha256).digest()
    try:
        mac = _unb64(mac_text)
        data = json.loads(_unb64(body))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("malformed session cookie") from exc
    if not hmac.compare_digest(mac, expected):
        raise ValueError("session cookie signature does not match")
    if not isinstance(data, dict) or data.get("k") not in ("user", "api_key"):
        raise ValueError("malformed session cookie")
    if int(data.get("exp", 0)) <= now.timestamp():
        raise ValueError("session expired")
    return str(data["k"]), uuid.UUID(str(data["id"]))


def set_session_cookie(
    response: Response,
    settings: Settings,
    *,
    kind: str,
    subject_id: uuid.UUID,
    now: datetime,
    until: datetime | None = None,
) -> None:
    """Start a session of at most SESSION_TTL, ending earlier at ``until`` when given.

    A session started from an action link ends with the link, so forwarding a link does
    not sign its readers in for longer than the link itself works.
    """
    lifetime = min(SESSION_TTL, (until or now + SESSION_TTL) - now)
    response.set_cookie(
        COOKIE_NAME,
        encode_session(settings, kind=kind, subject_id=subject_id, now=now, until=until),
        max_age=max(0, int(lifetime.total_seconds())),
        httponly=True,
        samesite="lax",
        secure=settings.public_base_url.startswith("https://"),
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path="/")


async def load_viewer(
    request: Request, session: AsyncSession, settings: Settings, *, now: datetime
) -> Viewer | None:
    """Return the signed-in viewer, or None when the cookie is missing, invalid or stale."""
    value = request.cookies.get(COOKIE_NAME)
    if not value:
        return None
    try:
        kind, subject_id = decode_session(settings, value, now=now)
    except ValueError:
        return None
    if kind == "user":
        user = await session.get(User, subject_id)
        if user is None:
            return None
        return Viewer("user", user.id, user.name, can_act=user.role != UserRole.observer)
    key = await session.get(ApiKey, subject_id)
    if key is None or key.revoked_at is not None:
        return None
    principal = Principal(api_key_id=key.id, name=key.name, scopes=frozenset(key.scopes))
    if not principal.allows(Scope.incidents_read):
        return None
    return Viewer("api_key", key.id, key.name, can_act=principal.allows(Scope.incidents_write))


def csrf_token(settings: Settings, request: Request) -> str:
    """Return the form token of the session cookie, which a page on another site cannot know."""
    value = request.cookies.get(COOKIE_NAME, "")
    mac = hmac.new(_key(settings), b"csrf:" + value.encode(), hashlib.sha256).digest()
    return _b64(mac[:16])


def csrf_valid(settings: Settings, request: Request, submitted: str) -> bool:
    return bool(submitted) and hmac.compare_digest(csrf_token(settings, request), submitted)


def new_login_token() -> str:
    return secrets.token_urlsafe(16)


def set_login_cookie(response: Response, settings: Settings, token: str) -> None:
    """Store the sign-in form's token in a cookie for the form's POST to present.

    A page on another site can submit the form, but it cannot read or set this cookie,
    so it cannot sign a responder in with the attacker's key.
    """
    response.set_cookie(
        LOGIN_COOKIE_NAME,
        token,
        max_age=int(LOGIN_TOKEN_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=settings.public_base_url.startswith("https://"),
        path="/login",
    )


def login_token_valid(request: Request, submitted: str) -> bool:
    expected = request.cookies.get(LOGIN_COOKIE_NAME, "")
    return bool(expected) and bool(submitted) and hmac.compare_digest(expected, submitted)
