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


PRIORITIES = ("P1", "P2", "P3", "P4", "P5")


def parse_level(value: object, kind: type[Impact] | type[Urgency], field: str) -> Impact | Urgency:
    """Read an impact or urgency given as 1-3 or as high, medium or low."""
    if isinstance(value, kind):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value in (1, 2, 3):
        return kind(value)
    if isinstance(value, str) and value.strip().lower() in kind.__members__:
        return kind[value.strip().lower()]
    raise ValueError(f"{field}: expected 1, 2, 3, high, medium or low, got {value!r}")


@dataclass(frozen=True, slots=True)
class PriorityMatrix:
    """The configurable impact-by-urgency table and the defaults each severity implies."""

    cells: dict[tuple[Impact, Urgency], str]
    severity_defaults: dict[Severity, tuple[Impact, Urgency]]

    @classmethod
    def default(cls) -> PriorityMatrix:
        return cls(cells=dict(DEFAULT_MATRIX), severity_defaults=dict(SEVERITY_DEFAULTS))

    @classmethod
    def from_document(cls, document: dict[str, object] | None) -> PriorityMatrix:
        """Build from the stored JSON form (see ``to_document``); missing parts take defaults."""
        if not document:
            return cls.default()
        cells = dict(DEFAULT_MATRIX)
        rows = document.get("matrix") or {}
        assert isinstance(rows, dict)
        for impact_name, row in rows.items():
            for urgency_name, priority in row.items():
                cells[(Impact[impact_name], Urgency[urgency_name])] = str(priority)
        defaults = dict(SEVERITY_DEFAULTS)
        severities = document.get("severity_defaults") or {}
        assert isinstance(severities, dict)
        for severity_name, pair in severities.items():
            defaults[Severity(severity_name)] = (
                Impact[pair["impact"]],
                Urgency[pair["urgency"]],
            )
        return cls(cells=cells, severity_defaults=defaults)

    def to_document(self) -> dict[str, object]:
        return {
            "matrix": {
                impact.name: {urgency.name: self.cells[(impact, urgency)] for urgency in Urgency}
                for impact in Impact
            },
            "severity_defaults": {
                severity.value: {"impact": pair[0].name, "urgency": pair[1].name}
                for severity, pair in self.severity_defaults.items()
            },
        }

    def priority_for(self, impact: Impact, urgency: Urgency) -> str:
        return self.cells[(impact, urgency)]
