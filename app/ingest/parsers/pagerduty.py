"""Parse PagerDuty Events API v2 bodies (alert events and change events) into Tocsin values.

Field rules follow PagerDuty's Events API v2 reference. ``event_action`` is trigger,
acknowledge or resolve. ``dedup_key`` is at most 255 characters, required except on a
trigger. ``payload`` carries summary, source, severity, timestamp, component, group, class
and custom_details. Tocsin is more lenient than PagerDuty in one way: a trigger without
summary, source or severity is accepted with a fallback title and severity critical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.incidents.events import AlertEvent, EventAction, Link
from app.ingest.parsers.common import (
    IngestLimits,
    ParseError,
    expect_list,
    expect_object,
    json_type,
    load_json_object,
    new_dedup_key,
    normalize_severity,
    optional_str,
    optional_text,
    parse_links,
    parse_timestamp,
    summary_with_overflow,
)

MAX_DEDUP_KEY_LENGTH = 255
ACTIONS = {action.value: action for action in EventAction}
# payload fields that become labels, so rules can match on them.
LABEL_FIELDS = ("component", "group", "class")
# Body fields that hold the integration key: never stored with the event.
KEY_FIELDS = ("routing_key", "service_key")


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A PagerDuty change event: something changed (a deploy, a config push), nothing broke."""

    summary: str
    source: str | None
    occurred_at: datetime | None
    custom_details: dict[str, Any] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def parse(
    body: bytes, limits: IngestLimits, *, new_key: Callable[[], str] = new_dedup_key
) -> list[AlertEvent]:
    return [parse_event(load_json_object(body), limits, new_key=new_key)]


def read_routing_key(payload: dict[str, Any]) -> str:
    """Return the integration key from ``routing_key`` (or the v1 name ``service_key``)."""
    key = optional_str(payload, "routing_key", "") or optional_str(payload, "service_key", "")
    if not key:
        raise ParseError("routing_key", "missing; set it to the integration key")
    return key


def parse_event(
    payload: dict[str, Any],
    limits: IngestLimits,
    *,
    new_key: Callable[[], str] = new_dedup_key,
) -> AlertEvent:
    """Turn one Events API v2 object into an event; ``new_key`` makes a trigger's missing key."""
    action_name = optional_str(payload, "event_action", "")
    if action_name is None:
        raise ParseError("event_action", "missing; use trigger, acknowledge or resolve")
    action = ACTIONS.get(action_name)
    if action is None:
        raise ParseError(
            "event_action", f"{action_name!r} is invalid; use trigger, acknowledge or resolve"
        )

    dedup_key = optional_text(payload, "dedup_key", "") or optional_text(
        payload, "incident_key", ""
    )
    if dedup_key is not None and len(dedup_key) > MAX_DEDUP_KEY_LENGTH:
        raise ParseError(
            "dedup_key", f"{len(dedup_key)} characters exceed the limit of {MAX_DEDUP_KEY_LENGTH}"
        )
    if not dedup_key:
        if action != EventAction.trigger:
            raise ParseError("dedup_key", f"missing; a {action.value} event must name the alert")
        dedup_key = new_key()

    if action != EventAction.trigger:
        return AlertEvent(action=action, dedup_key=dedup_key, summary="", raw=without_key(payload))
    return _trigger(payload, dedup_key, limits)


def without_key(payload: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in payload.items() if name not in KEY_FIELDS}


def _trigger(payload: dict[str, Any], dedup_key: str, limits: IngestLimits) -> AlertEvent:
    body = expect_object(payload.get("payload", {}), "payload")
    source = optional_text(body, "source", "payload")
    summary = optional_str(body, "summary", "payload") or ""
    if not summary.strip():
        summary = f"Alert from {source}" if source else "Alert from the PagerDuty Events API"
    severity, severity_raw = normalize_severity(
        body.get("severity"), "payload.severity", strict=True
    )
    occurred_at = parse_timestamp(body.get("timestamp"), "payload.timestamp")

    labels = {}
    for name in LABEL_FIELDS:
        value = optional_text(body, name, "payload")
        if value:
            labels[name] = value
    details: dict[str, Any] = {}
    if body.get("custom_details") is not None:
        details["custom_details"] = body["custom_details"]
    client = optional_str(payload, "client", "")
    if client:
        details["client"] = client
    images = _images(payload.get("images"))
    if images:
        details["images"] = images
    summary, details = summary_with_overflow(summary, details, limits)

    links = parse_links(payload.get("links"), "links")
    client_url = optional_str(payload, "client_url", "")
    if client_url:
        links.insert(0, Link(client_url, client or "Source"))
    links.extend(Link(image["href"], image.get("alt") or "Image") for image in images)

    return AlertEvent(
        action=EventAction.trigger,
        dedup_key=dedup_key,
        summary=summary,
        severity=severity,
        severity_raw=severity_raw,
        source=source,
        occurred_at=occurred_at,
        labels=labels,
        details=details,
        links=links,
        raw=without_key(payload),
    )


def _images(value: Any) -> list[dict[str, str]]:
    """Read ``[{"src", "href", "alt"}]``; an image without ``src`` is an error, as in PagerDuty."""
    if value is None:
        return []
    images = []
    for index, item in enumerate(expect_list(value, "images")):
        image = expect_object(item, f"images.{index}")
        src = optional_str(image, "src", f"images.{index}")
        if not src:
            raise ParseError(f"images.{index}.src", "missing; each image needs a src URL")
        entry = {"src": src}
        for name in ("href", "alt"):
            text = optional_str(image, name, f"images.{index}")
            if text:
                entry[name] = text
        images.append(entry)
    return images


def parse_change(body: bytes, limits: IngestLimits) -> ChangeEvent:
    return parse_change_payload(load_json_object(body), limits)


def parse_change_payload(payload: dict[str, Any], limits: IngestLimits) -> ChangeEvent:
    """Read a change event (``POST /v2/change/enqueue``); its summary is required."""
    body = expect_object(payload.get("payload"), "payload")
    summary = optional_str(body, "summary", "payload")
    if not summary or not summary.strip():
        raise ParseError("payload.summary", "missing; say what changed")
    summary, _ = summary_with_overflow(summary, {}, limits)
    custom_details = body.get("custom_details")
    if custom_details is not None and not isinstance(custom_details, dict):
        raise ParseError(
            "payload.custom_details", f"expected an object, got {json_type(custom_details)}"
        )
    return ChangeEvent(
        summary=summary,
        source=optional_text(body, "source", "payload"),
        occurred_at=parse_timestamp(body.get("timestamp"), "payload.timestamp"),
        custom_details=custom_details or {},
        links=parse_links(payload.get("links"), "links"),
        raw=without_key(payload),
    )
