"""Parse Opsgenie Alert API bodies (create, close, acknowledge, add note) into Tocsin values.

Field names and limits follow Opsgenie's Alert API v2: ``alias`` (at most 512 characters)
is the dedup key, ``priority`` is P1 to P5 with P3 as the default, ``details`` is a map of
strings and ``tags`` a list of strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.incidents.events import AlertEvent, EventAction, Severity
from app.ingest.parsers.common import (
    IngestLimits,
    ParseError,
    expect_list,
    json_type,
    load_json_object,
    new_dedup_key,
    optional_str,
    string_map,
    summary_with_overflow,
)

MAX_ALIAS_LENGTH = 512
MAX_NOTE_LENGTH = 25_000
DEFAULT_PRIORITY = "P3"
# Opsgenie priorities on Tocsin's severity scale; the default priority rules turn critical
# into P1, error into P2 and warning into P3 again.
PRIORITY_SEVERITY = {
    "P1": Severity.critical,
    "P2": Severity.error,
    "P3": Severity.warning,
    "P4": Severity.info,
    "P5": Severity.info,
}
# Create fields kept in the alert's details as they came.
DETAIL_FIELDS = ("description", "entity", "user", "note", "responders", "visibleTo", "actions")


@dataclass(frozen=True, slots=True)
class Note:
    text: str
    user: str | None = None
    source: str | None = None


def parse(
    body: bytes, limits: IngestLimits, *, new_key: Callable[[], str] = new_dedup_key
) -> list[AlertEvent]:
    """Read a create-alert body; an alert without ``alias`` gets a key of its own."""
    payload = load_json_object(body)
    message = optional_str(payload, "message", "") or ""
    alias = optional_str(payload, "alias", "")
    if alias is not None and len(alias) > MAX_ALIAS_LENGTH:
        raise ParseError("alias", f"{len(alias)} characters exceed the limit of {MAX_ALIAS_LENGTH}")
    entity = optional_str(payload, "entity", "")
    source = optional_str(payload, "source", "")
    if not message.strip():
        # Opsgenie rejects such a request too, so a sender that worked with it has a message.
        raise ParseError("message", "missing or empty; every Opsgenie alert needs a message")

    priority = optional_str(payload, "priority", "") or DEFAULT_PRIORITY
    severity = PRIORITY_SEVERITY.get(priority.strip().upper())
    if severity is None:
        raise ParseError("priority", f"{priority!r} is invalid; use P1, P2, P3, P4 or P5")

    tags = _tags(payload.get("tags"))
    labels = string_map(payload.get("details"), "details", limits)
    details: dict[str, Any] = {
        name: payload[name] for name in DETAIL_FIELDS if payload.get(name) not in (None, "", [])
    }
    details["priority"] = priority
    if tags:
        details["tags"] = tags
    message, details = summary_with_overflow(message, details, limits)

    return [
        AlertEvent(
            action=EventAction.trigger,
            dedup_key=alias or new_key(),
            summary=message,
            severity=severity,
            severity_raw=priority,
            source=source or entity,
            labels=labels,
            details=details,
            raw=payload,
        )
    ]


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    tags = expect_list(value, "tags")
    for index, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise ParseError(f"tags.{index}", f"expected a string, got {json_type(tag)}")
    return tags


def parse_action(body: bytes, action: EventAction, dedup_key: str) -> AlertEvent:
    """Read a close or acknowledge body (``user``, ``source``, ``note``, all optional)."""
    payload = load_json_object(body) if body.strip() else {}
    note = _note_fields(payload)
    return AlertEvent(
        action=action,
        dedup_key=dedup_key,
        summary=note.text,
        source=note.source,
        raw=payload,
    )


def parse_note(body: bytes) -> Note:
    """Read an add-note body; ``note`` is required."""
    note = _note_fields(load_json_object(body))
    if not note.text.strip():
        raise ParseError("note", "missing; send the text of the note")
    return note


def _note_fields(payload: dict[str, Any]) -> Note:
    text = optional_str(payload, "note", "") or ""
    if len(text) > MAX_NOTE_LENGTH:
        raise ParseError("note", f"{len(text)} characters exceed the limit of {MAX_NOTE_LENGTH}")
    return Note(
        text=text,
        user=optional_str(payload, "user", ""),
        source=optional_str(payload, "source", ""),
    )
