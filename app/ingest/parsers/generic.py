"""Parse Tocsin's own JSON alert format, for senders that have no format of their own.

One JSON object per request. Every field is optional except ``dedup_key`` on a resolve or
acknowledge; docs/ingest.md describes each field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.incidents.events import AlertEvent, EventAction
from app.ingest.parsers.common import (
    IngestLimits,
    ParseError,
    json_type,
    load_json_object,
    new_dedup_key,
    normalize_severity,
    optional_str,
    optional_text,
    parse_links,
    parse_timestamp,
    string_map,
    summary_with_overflow,
)

MAX_DEDUP_KEY_LENGTH = 255
STATUSES = {
    "firing": EventAction.trigger,
    "resolved": EventAction.resolve,
    "acknowledged": EventAction.acknowledge,
}


def parse(
    body: bytes, limits: IngestLimits, *, new_key: Callable[[], str] = new_dedup_key
) -> list[AlertEvent]:
    payload = load_json_object(body)
    status = optional_str(payload, "status", "") or "firing"
    action = STATUSES.get(status.strip().lower())
    if action is None:
        raise ParseError("status", f"{status!r} is invalid; use firing, resolved or acknowledged")

    dedup_key = optional_text(payload, "dedup_key", "")
    if dedup_key is not None and len(dedup_key) > MAX_DEDUP_KEY_LENGTH:
        raise ParseError(
            "dedup_key", f"{len(dedup_key)} characters exceed the limit of {MAX_DEDUP_KEY_LENGTH}"
        )
    if not dedup_key:
        if action != EventAction.trigger:
            raise ParseError("dedup_key", f"missing; a {status} alert must name the alert it ends")
        dedup_key = new_key()

    source = optional_text(payload, "source", "")
    title = optional_str(payload, "title", "") or ""
    labels = string_map(payload.get("labels"), "labels", limits)
    if not title.strip() and action == EventAction.trigger:
        title = labels.get("alertname") or (
            f"Alert from {source}" if source else "Alert from the generic integration"
        )
    severity, severity_raw = normalize_severity(payload.get("severity"), "severity", strict=True)

    details: dict[str, Any] = {}
    extra = payload.get("details")
    if extra is not None:
        if not isinstance(extra, dict):
            raise ParseError("details", f"expected an object, got {json_type(extra)}")
        details.update(extra)
    description = optional_str(payload, "description", "")
    if description:
        details["description"] = description
    title, details = summary_with_overflow(title, details, limits)

    return [
        AlertEvent(
            action=action,
            dedup_key=dedup_key,
            summary=title,
            severity=severity,
            severity_raw=severity_raw,
            source=source,
            occurred_at=parse_timestamp(payload.get("occurred_at"), "occurred_at"),
            ended_at=parse_timestamp(payload.get("ended_at"), "ended_at"),
            group_key=optional_text(payload, "group_key", ""),
            labels=labels,
            details=details,
            links=parse_links(payload.get("links"), "links"),
            raw=payload,
        )
    ]
