from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.incidents.events import Severity
from app.ingest.parsers.common import ParseError, normalize_severity, parse_timestamp


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("critical", Severity.critical),
        ("CRITICAL", Severity.critical),
        ("  Crit ", Severity.critical),
        ("P1", Severity.critical),
        ("sev-1", Severity.critical),
        ("error", Severity.error),
        ("Major", Severity.error),
        ("warning", Severity.warning),
        ("WARN", Severity.warning),
        ("minor", Severity.warning),
        ("info", Severity.info),
        ("low", Severity.info),
        (0, Severity.critical),
        (3, Severity.error),
        (4, Severity.warning),
        (7, Severity.info),
        ("4", Severity.warning),
        (None, Severity.critical),
        ("", Severity.critical),
    ],
)
def test_severity_forms(value: object, expected: Severity) -> None:
    severity, _ = normalize_severity(value, "severity")
    assert severity == expected


def test_severity_keeps_original_text() -> None:
    assert normalize_severity("Crit", "severity") == (Severity.critical, "Crit")


def test_unknown_severity_is_lenient_unless_strict() -> None:
    assert normalize_severity("banana", "severity", default=Severity.warning) == (
        Severity.warning,
        "banana",
    )
    with pytest.raises(ParseError) as caught:
        normalize_severity("banana", "payload.severity", strict=True)
    assert caught.value.field == "payload.severity"


@pytest.mark.parametrize("value", [True, 2.5, [1], {"a": 1}])
def test_unreadable_severity(value: object) -> None:
    with pytest.raises(ParseError):
        normalize_severity(value, "severity")


@pytest.mark.parametrize("value", [8, -1, "10"])
def test_out_of_range_number_strict_only(value: object) -> None:
    # Label values are free text: a number outside syslog's range takes the default.
    assert normalize_severity(value, "severity", default=Severity.warning)[0] == Severity.warning
    with pytest.raises(ParseError):
        normalize_severity(value, "payload.severity", strict=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-30T08:12:41Z", datetime(2026, 11, 30, 8, 12, 41, tzinfo=UTC)),
        ("2026-11-30T08:12:41.512Z", datetime(2026, 11, 30, 8, 12, 41, 512000, tzinfo=UTC)),
        ("2026-11-30T09:45:12.000+01:00", datetime(2026, 11, 30, 8, 45, 12, tzinfo=UTC)),
        ("2026-11-30T09:45:12+0100", datetime(2026, 11, 30, 8, 45, 12, tzinfo=UTC)),
        ("2026-11-30T03:45:12-05", datetime(2026, 11, 30, 8, 45, 12, tzinfo=UTC)),
        ("2026-11-30 08:12:41", datetime(2026, 11, 30, 8, 12, 41, tzinfo=UTC)),
        ("2026-11-30T08:12", datetime(2026, 11, 30, 8, 12, tzinfo=UTC)),
        ("2026-11-30T08:12:41.123456789Z", datetime(2026, 11, 30, 8, 12, 41, 123456, tzinfo=UTC)),
        (1_796_026_361, datetime(2026, 11, 30, 8, 12, 41, tzinfo=UTC)),
        (1_796_026_361_512, datetime(2026, 11, 30, 8, 12, 41, 512000, tzinfo=UTC)),
        ("1796026361", datetime(2026, 11, 30, 8, 12, 41, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        (None, None),
    ],
)
def test_timestamp_forms(value: object, expected: datetime | None) -> None:
    assert parse_timestamp(value, "ts") == expected


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-13-45T00:00:00Z", True, [], "2026-11-30T08:12:41+25:00"]
)
def test_unreadable_timestamp(value: object) -> None:
    with pytest.raises(ParseError) as caught:
        parse_timestamp(value, "payload.timestamp")
    assert caught.value.field == "payload.timestamp"
