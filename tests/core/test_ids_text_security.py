from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.core.ids import uuid7
from app.core.security import SecretBox
from app.core.text import truncate


def test_uuid7_version_and_order() -> None:
    keys = [uuid7() for _ in range(5000)]
    assert all(key.version == 7 for key in keys)
    assert all(key.variant == "specified in RFC 4122" for key in keys)
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("abcdefghij", 5, "abcd\u2026"),
        ("cafe\u0301s", 6, "cafe\u0301s"),
        ("cafe\u0301s and more", 6, "cafe\u0301\u2026"),
        ("cafe\u0301s and more", 5, "caf\u2026"),
        ("\U0001f44d\U0001f3fd ok", 3, "\U0001f44d\U0001f3fd\u2026"),
        ("\U0001f44d\U0001f3fd ok", 2, "\u2026"),
        ("ab\U0001f468\u200d\U0001f469\u200d\U0001f467 family", 5, "ab\u2026"),
        ("x\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea", 4, "x\U0001f1eb\U0001f1f7\u2026"),
    ],
)
def test_truncate_keeps_characters_whole(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected
    assert len(truncate(text, limit)) <= limit


def test_secret_box_round_trip_and_wrong_key() -> None:
    box = SecretBox(b"k" * 48)
    token = box.encrypt("hunter2hunter2")
    assert "hunter2" not in token
    assert box.decrypt(token) == "hunter2hunter2"
    with pytest.raises(ValueError, match="TOCSIN_SECRET_KEY"):
        SecretBox(b"z" * 48).decrypt(token)


def test_settings_reject_short_secret_key() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(secret_key="short")


def test_settings_normalize_database_url() -> None:
    settings = Settings(database_url="postgres://u@db:5432/tocsin")
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql+asyncpg://u@db:5432/tocsin"
    with pytest.raises(ValidationError, match="PostgreSQL URL"):
        Settings(database_url="mysql://u@db/tocsin")


def test_generated_secret_key_is_stable(tmp_path: object) -> None:
    from pathlib import Path

    data_dir = Path(str(tmp_path))
    first = Settings(data_dir=data_dir).signing_key()
    second = Settings(data_dir=data_dir).signing_key()
    assert first == second
    assert len(first) >= 32
    assert (data_dir / "secret_key").stat().st_mode & 0o777 == 0o600


def test_closed_pooled_connection_counts_as_outage() -> None:
    import asyncpg

    from app.core.errors import is_connection_error

    assert is_connection_error(asyncpg.InterfaceError("connection is closed"))
    assert not is_connection_error(asyncpg.InterfaceError("another operation is in progress"))
