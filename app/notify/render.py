"""Channel-neutral pieces of a notification: headline, facts, action links, digest lines.

Every built-in notifier composes its payload from these, so a page reads the same in
Slack, e-mail and SMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.notify.base import (
    INCIDENT_ACKNOWLEDGED,
    INCIDENT_RESOLVED,
    INCIDENT_TRIGGERED,
    NOTIFICATION_DIGEST,
    NOTIFICATION_TEST,
    Message,
)

EVENT_LABELS = {
    INCIDENT_TRIGGERED: "Triggered",
    INCIDENT_ACKNOWLEDGED: "Acknowledged",
    INCIDENT_RESOLVED: "Resolved",
    NOTIFICATION_DIGEST: "Digest",
    NOTIFICATION_TEST: "Test",
}
# Red, amber, green and grey, as hex RGB without '#'.
EVENT_COLORS = {
    INCIDENT_TRIGGERED: "D92D20",
    INCIDENT_ACKNOWLEDGED: "F79009",
    INCIDENT_RESOLVED: "12B76A",
}
NEUTRAL_COLOR = "667085"
# Actions first, in the order a responder needs them; other link names follow sorted.
# Channels that show only a few buttons keep the first ones.
LINK_ORDER = (
    "acknowledge",
    "resolve",
    "escalate",
    "take",
    "view",
    "snooze-15m",
    "snooze-1h",
    "snooze-4h",
)
# A digest lists this many incidents by name and counts the rest.
DIGEST_LISTED = 10


@dataclass(frozen=True, slots=True)
class LinkItem:
    name: str
    label: str
    url: str


def event_label(message: Message) -> str:
    return EVENT_LABELS.get(message.event, message.event)


def color(message: Message) -> str:
    return EVENT_COLORS.get(message.event, NEUTRAL_COLOR)


def incident_name(incident: dict[str, Any]) -> str:
    """Return ``#42 Checkout latency high``, or the title alone when there is no number."""
    number = incident.get("number")
    title = str(incident.get("title") or "untitled incident")
    return f"#{number} {title}" if number else title


def headline(message: Message) -> str:
    """Return one line saying what happened, e.g. ``[P1] Triggered: #42 Disk full``."""
    if message.event == NOTIFICATION_DIGEST:
        count = len(message.digest or [])
        return f"{count} notification{'s' if count != 1 else ''} held back by the rate limit"
    priority = message.incident.get("priority")
    prefix = f"[{priority}] " if priority else ""
    return f"{prefix}{event_label(message)}: {incident_name(message.incident)}"


def facts(message: Message) -> list[tuple[str, str]]:
    """Return the label-value pairs shown under the headline."""
    incident = message.incident
    if message.event == NOTIFICATION_DIGEST or not incident:
        return []
    service = incident.get("service") or {}
    pairs = [
        ("Service", str(service.get("name") or "-")),
        ("Status", str(incident.get("status") or "-")),
        ("Priority", str(incident.get("priority") or "-")),
        ("Urgency", str(incident.get("urgency") or "-")),
    ]
    if incident.get("alert_count"):
        pairs.append(("Alerts", str(incident["alert_count"])))
    return pairs


def link_items(message: Message) -> list[LinkItem]:
    """Return the message's links, action links first."""
    names = [name for name in LINK_ORDER if name in message.links]
    names += sorted(name for name in message.links if name not in LINK_ORDER)
    return [
        LinkItem(name=name, label=name.replace("_", " ").capitalize(), url=message.links[name])
        for name in names
        if message.links[name]
    ]


def digest_lines(message: Message) -> list[str]:
    """Return one line per held notification (the first few) and a count of the rest."""
    items = message.digest or []
    lines = [
        f"{EVENT_LABELS.get(item.get('event', ''), item.get('event', ''))}: "
        f"{incident_name(item)}"
        + (f" [{item['priority']}]" if item.get("priority") else "")
        + (f" (now {item['status']})" if item.get("status") not in (None, "triggered") else "")
        for item in items[:DIGEST_LISTED]
    ]
    if len(items) > DIGEST_LISTED:
        lines.append(f"... and {len(items) - DIGEST_LISTED} more")
    return lines


def plain_text(message: Message) -> str:
    """Render the whole message as plain text lines."""
    lines = [headline(message)]
    lines += [f"{label}: {value}" for label, value in facts(message)]
    lines += digest_lines(message)
    lines += [f"{item.label}: {item.url}" for item in link_items(message)]
    return "\n".join(lines)
