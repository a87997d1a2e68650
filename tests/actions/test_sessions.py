"""Session cookies of the responder pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import Response

from app.actions import sessions
from app.core.config import Settings

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def test_session_from_short_link_ends_with_link(settings: Settings) -> None:
    response = Response()
    user_id = uuid.uuid4()
    sessions.set_session_cookie(
        response,
        settings,
        kind="user",
        subject_id=user_id,
        now=NOW,
        until=NOW + timedelta(minutes=5),
    )
    cookie = response.headers["set-cookie"]
    value = cookie.split(";", 1)[0].split("=", 1)[1]

    assert "Max-Age=300" in cookie
    assert sessions.decode_session(settings, value, now=NOW + timedelta(minutes=4)) == (
        "user",
        user_id,
    )
    with pytest.raises(ValueError, match="expired"):
        sessions.decode_session(settings, value, now=NOW + timedelta(minutes=6))


def test_session_lasts_at_most_its_ttl(settings: Settings) -> None:
    response = Response()
    sessions.set_session_cookie(
        response,
        settings,
        kind="user",
        subject_id=uuid.uuid4(),
        now=NOW,
        until=NOW + timedelta(days=2),
    )

    assert f"Max-Age={int(sessions.SESSION_TTL.total_seconds())}" in response.headers["set-cookie"]
