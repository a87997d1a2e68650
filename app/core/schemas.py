"""Base of the /v1 API's request bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class RequestModel(BaseModel):
    """A request body, or a part of one, that rejects fields it does not define.

    A misspelled or unsupported field is a 422 naming it instead of a change that is
    silently left out. Text that PostgreSQL cannot store in text or JSONB (a NUL character
    or a lone surrogate), also inside free-form objects, is a 422 too.
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _reject_unstorable_text(cls, value: Any) -> Any:
        problem = _unstorable_text(value)
        if problem is not None:
            raise ValueError(f"contains {problem}, which cannot be stored")
        return value


def _unstorable_text(value: Any) -> str | None:
    """Describe the first NUL or lone surrogate in a string, or in a dict's or list's
    keys and strings; return None when there is none."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a NUL character (\\u0000)"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return f"an unpaired surrogate (\\u{ord(item[exc.start]):04x})"
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend(item)
    return None
