"""Settings read from the environment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from app.core.config import Settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [("PT5M", timedelta(minutes=5)), ("300", timedelta(minutes=5)), (" 86400 ", timedelta(days=1))],
)
def test_link_ttl_in_iso_or_seconds(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: timedelta
) -> None:
    monkeypatch.setenv("TOCSIN_ACTIONS__LINK_TTL", value)
    assert Settings().actions.link_ttl == expected


def test_link_ttl_below_minimum_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_ACTIONS__LINK_TTL", "60")
    with pytest.raises(ValidationError, match="5 minutes"):
        Settings()
