"""Grouping: which alerts share an incident, and the explanation stored with it. No I/O."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from app.incidents.events import AlertEvent

# Keys are indexed, and a B-tree entry must fit in about a third of a page (2,704 bytes
# with PostgreSQL's default 8 KiB pages). Longer keys are replaced by their SHA-256.
MAX_KEY_BYTES = 1024

# Names that by_fields looks up on the event itself when no label has the name.
EVENT_FIELDS = ("source", "severity", "summary")


@dataclass(frozen=True, slots=True)
class GroupingSettings:
    mode: str = "intelligent"
    fields: tuple[str, ...] = ()
    window_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Grouping:
    key: str
    explanation: dict[str, Any] = field(default_factory=dict)


def storable_key(key: str) -> str:
    """Return ``key``, or a digest of it when it is too long for an index entry."""
    if len(key) * 4 <= MAX_KEY_BYTES or len(key.encode()) <= MAX_KEY_BYTES:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _group_field(integration_kind: str) -> str:
    return "groupKey" if integration_kind in ("alertmanager", "grafana") else "group_key"


def field_value(event: AlertEvent, name: str) -> str | None:
    """The value of a grouping field: a label of that name, else an event field, else None."""
    if name in event.labels:
        return event.labels[name]
    if name in EVENT_FIELDS:
        value = getattr(event, name)
        return None if value is None else str(value)
    return None


def _group(event: AlertEvent, settings: GroupingSettings, integration_kind: str) -> Grouping:
    """Return the grouping key of ``event`` under ``settings`` and why it was chosen.

    - ``intelligent``: the sender's group (Alertmanager and Grafana ``groupKey``, the
      generic format's ``group_key``), else the alert's own dedup key.
    - ``by_fields``: the values of the listed fields. A missing field is a value of its
      own (JSON null), distinct from an empty string. An alert with none of the fields
      gets a group of its own, so unrelated alerts are never merged by absence.
    - ``none``: every alert alone.
    """
    own = Grouping(
        key=f"alert:{event.dedup_key}",
        explanation={"mode": settings.mode, "reason": "each alert is its own incident"},
    )
    if settings.mode == "none":
        return own
    if settings.mode == "by_fields" and settings.fields:
        values = {name: field_value(event, name) for name in settings.fields}
        if all(value is None for value in values.values()):
            return Grouping(
                key=own.key,
                explanation={
                    "mode": settings.mode,
                    "fields": values,
                    "reason": "none of the grouping fields is present, so the alert is alone",
                },
            )
        encoded = json.dumps(list(values.items()), ensure_ascii=False, separators=(",", ":"))
        names = ", ".join(settings.fields)
        return Grouping(
            key=f"fields:{encoded}",
            explanation={
                "mode": settings.mode,
                "fields": values,
                "window_seconds": settings.window_seconds,
                "reason": f"same values of {names}",
            },
        )
    # Senders that group alerts themselves (Alertmanager and Grafana groupKey, the generic
    # format's group_key) set group_key; other formats leave it empty.
    if event.group_key:
        return Grouping(
            key=event.group_key,
            explanation={
                "mode": "intelligent",
                "reason": f"same {integration_kind} group ({_group_field(integration_kind)})",
                "group_key": event.group_key,
            },
        )
    return Grouping(
        key=event.dedup_key,
        explanation={
            "mode": "intelligent",
            "reason": "same dedup key",
            "dedup_key": event.dedup_key,
        },
    )


def group(event: AlertEvent, settings: GroupingSettings, integration_kind: str) -> Grouping:
    """Return the grouping key of ``event`` and why it was chosen (see ``_group``).

    A key too long to index is replaced by its digest; the explanation keeps the reason.
    """
    result = _group(event, settings, integration_kind)
    key = storable_key(result.key)
    if key == result.key:
        return result
    return Grouping(key=key, explanation={**result.explanation, "key_digested": True})
