"""Mapping of errors to problem responses."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError

from app.core.errors import _is_unstorable_value


def test_unstorable_values_map_to_400() -> None:
    nul = asyncpg.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00')
    json_number = asyncpg.InvalidTextRepresentationError("invalid input syntax for type json")
    other_text = asyncpg.InvalidTextRepresentationError("invalid input syntax for type uuid")
    wrapped = DBAPIError("INSERT ...", {}, Exception("wrapper"))
    wrapped.orig.__cause__ = nul  # type: ignore[union-attr]

    assert _is_unstorable_value(nul) is True
    assert _is_unstorable_value(json_number) is True
    assert _is_unstorable_value(wrapped) is True
    assert _is_unstorable_value(other_text) is False
    assert _is_unstorable_value(ValueError("x")) is False
