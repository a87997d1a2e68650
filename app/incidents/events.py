"""The normalized event every parser produces and the incident domain consumes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventAction(StrEnum):
    trigger = "trigger"
    acknowledge = "acknowledge"
    resolve = "resolve"


class Severity(StrEnum):
    """Tocsin's one severity scale; parsers map every sender's values onto it."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"


@dataclass(frozen=True, slots=True)
class Link:
    href: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    action: EventAction
    dedup_key: str
    summary: str
    severity: Severity = Severity.critical
    # The value as the sender wrote it, kept for display and for rules.
    severity_raw: str | None = None
    source: str | None = None
    # The sender's timestamps: when the condition started and, for a resolve, ended.
    occurred_at: datetime | None = None
    ended_at: datetime | None = None
    # A grouping hint from the sender, such as Alertmanager's groupKey.
    group_key: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    links: Sequence[Link] = ()
    # This event's part of the request body, stored with the alert as received.
    raw: Mapping[str, Any] = field(default_factory=dict)
