"""Priority from impact and urgency (the ITIL matrix), and defaults by severity."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from app.incidents.events import Severity


class Impact(IntEnum):
    high = 1
    medium = 2
    low = 3


class Urgency(IntEnum):
    high = 1
    medium = 2
    low = 3


# Rows are impact, columns urgency; the usual ITIL table.
DEFAULT_MATRIX: dict[tuple[Impact, Urgency], str] = {
    (Impact.high, Urgency.high): "P1",
    (Impact.high, Urgency.medium): "P2",
    (Impact.high, Urgency.low): "P3",
    (Impact.medium, Urgency.high): "P2",
    (Impact.medium, Urgency.medium): "P3",
    (Impact.medium, Urgency.low): "P4",
    (Impact.low, Urgency.high): "P3",
    (Impact.low, Urgency.medium): "P4",
    (Impact.low, Urgency.low): "P5",
}

SEVERITY_DEFAULTS: dict[Severity, tuple[Impact, Urgency]] = {
    Severity.critical: (Impact.high, Urgency.high),
    Severity.error: (Impact.medium, Urgency.high),
    Severity.warning: (Impact.medium, Urgency.medium),
    Severity.info: (Impact.low, Urgency.low),
}


@dataclass(frozen=True, slots=True)
class Classification:
    impact: Impact
    urgency: Urgency
    priority: str

    @property
    def paging_urgency(self) -> str:
        """High-urgency incidents page at once; low urgency may wait (notification rules)."""
        return "high" if self.urgency == Urgency.high else "low"


def priority_for(
    impact: Impact, urgency: Urgency, matrix: dict[tuple[Impact, Urgency], str] = DEFAULT_MATRIX
) -> str:
    return matrix[(impact, urgency)]


def classify_by_severity(severity: Severity) -> Classification:
    impact, urgency = SEVERITY_DEFAULTS[severity]
    return Classification(impact=impact, urgency=urgency, priority=priority_for(impact, urgency))
