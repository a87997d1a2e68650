"""The public URL in pages, links and demo output follows TOCSIN_HOST and TOCSIN_PORT."""

from __future__ import annotations

import pytest

from app.core.config import Settings


@pytest.fixture(autouse=True)
def no_tocsin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOCSIN_HOST", "TOCSIN_PORT", "TOCSIN_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "http://127.0.0.1:8080"),
        ({"TOCSIN_PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"TOCSIN_HOST": "tocsin.internal", "TOCSIN_PORT": "9000"}, "http://tocsin.internal:9000"),
        ({"TOCSIN_HOST": "0.0.0.0"}, "http://127.0.0.1:8080"),
        ({"TOCSIN_HOST": "::"}, "http://127.0.0.1:8080"),
        ({"TOCSIN_HOST": "::1", "TOCSIN_PORT": "9000"}, "http://[::1]:9000"),
        (
            {"TOCSIN_PORT": "9000", "TOCSIN_PUBLIC_URL": "https://oncall.example.com/"},
            "https://oncall.example.com",
        ),
    ],
)
def test_public_base_url(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert Settings().public_base_url == expected
