"""Severity, timestamp and limit rules shared by every parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from app.incidents.events import Severity
from app.ingest.parsers import alertmanager, generic
from app.ingest.parsers.common import (
    IngestLimits,
    ParseError,
    normalize_severity,
    parse_timestamp,
    string_map,
    summary_with_overflow,
)

LIMITS = IngestLimits()


@pytest.mark.parametrize(
    ("value", "severity"),
    [
        ("critical", Severity.critical),
        ("CRITICAL", Severity.critical),
        ("  Crit ", Severity.critical),
        ("P1", Severity.critical),
        ("sev-1", Severity.critical),
        ("page", Severity.critical),
        ("error", Severity.error),
        ("ERR", Severity.error),
        ("High", Severity.error),
        ("warning", Severity.warning),
        ("WARN", Severity.warning),
        ("minor", Severity.warning),
        ("info", Severity.info),
        ("Informational", Severity.info),
        ("low", Severity.info),
        (0, Severity.critical),
        (3, Severity.error),
        (4, Severity.warning),
        (4.0, Severity.warning),
        ("6", Severity.info),
        (None, Severity.critical),
        ("", Severity.critical),
    ],
)
def test_severity_forms(value: Any, severity: Severity) -> None:
    assert normalize_severity(value, "severity", strict=True)[0] == severity


def test_severity_keeps_original() -> None:
    assert normalize_severity("WARN", "severity") == (Severity.warning, "WARN")
    assert normalize_severity(4, "severity") == (Severity.warning, "4")
    assert normalize_severity(None, "severity") == (Severity.critical, None)


@pytest.mark.parametrize("value", ["purple", 9, 2.5, True, [1], {"a": 1}])
def test_severity_unreadable_is_named(value: Any) -> None:
    with pytest.raises(ParseError) as error:
        normalize_severity(value, "payload.severity", strict=True)
    assert error.value.field == "payload.severity"


def test_severity_free_text_label_takes_default() -> None:
    # Alertmanager's severity is a label anyone may set; an unknown word is not an error.
    assert normalize_severity("sometimes", "labels.severity") == (Severity.critical, "sometimes")


INSTANT = datetime(2026, 11, 30, 8, 12, 41, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-30T08:12:41Z", INSTANT),
        ("2026-11-30T08:12:41z", INSTANT),
        ("2026-11-30T09:12:41+01:00", INSTANT),
        ("2026-11-30T03:12:41-0500", INSTANT),
        ("2026-11-30T10:12:41+02", INSTANT),
        ("2026-11-30T08:12:41", INSTANT),
        ("2026-11-30 08:12:41", INSTANT),
        ("2026-11-30T08:12:41.000000000Z", INSTANT),
        ("2026-11-30T08:12:41.123456789Z", INSTANT.replace(microsecond=123456)),
        ("2026-11-30T08:12:41,5Z", INSTANT.replace(microsecond=500000)),
        ("2026-11-30T08:12Z", INSTANT.replace(second=0)),
        (1796026361, INSTANT),
        (1796026361.25, INSTANT.replace(microsecond=250000)),
        (1796026361000, INSTANT),
        (1796026361000000, INSTANT),
        ("1796026361", INSTANT),
        ("0001-01-01T00:00:00Z", None),
        ("0001-01-01T00:00:00.000+00:00", None),
        ("0001-01-01", None),
        ("0001-01-01T05:00:00Z", datetime(1, 1, 1, 5, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_timestamp_forms(value: Any, expected: datetime | None) -> None:
    parsed = parse_timestamp(value, "startsAt")
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo == UTC


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "30/11/2026",
        "2026-13-40T00:00:00Z",
        "0001-01-01 not a time",
        "0001-01-01T00:00:00+14:00",
        -5,
        True,
        [2026],
        1e30,
    ],
)
def test_timestamp_unreadable_is_named(value: Any) -> None:
    with pytest.raises(ParseError) as error:
        parse_timestamp(value, "alerts.0.startsAt")
    assert error.value.field == "alerts.0.startsAt"


class TestLimits:
    def test_label_count(self) -> None:
        labels = {f"l{i}": "v" for i in range(5)}
        with pytest.raises(ParseError) as error:
            string_map(labels, "labels", IngestLimits(max_labels=4))
        assert "TOCSIN_INGEST_MAX_LABELS" in error.value.message

    def test_label_length(self) -> None:
        with pytest.raises(ParseError) as error:
            string_map({"a": "x" * 17}, "labels", IngestLimits(max_label_length=16))
        assert error.value.field == "labels.a"
        assert "TOCSIN_INGEST_MAX_LABEL_LENGTH" in error.value.message

    def test_summary_truncated_on_character_boundary(self) -> None:
        summary = "disk " + "👨‍👩‍👧‍👦" * 10
        short, details = summary_with_overflow(summary, {}, IngestLimits(max_summary_length=16))
        assert len(short) <= 16
        assert short.endswith("…")
        # The cut never splits the family emoji, a ZWJ sequence of seven code points.
        assert short[:-1].endswith("👦") or short[:-1].endswith("disk ")
        assert details["full_summary"] == summary

    def test_long_summary_in_parser(self) -> None:
        body = json.dumps({"title": "é" * 40, "dedup_key": "k"}).encode()
        event = generic.parse(body, IngestLimits(max_summary_length=20))[0]
        assert len(event.summary) == 20
        assert event.details["full_summary"] == "é" * 40

    def test_alerts_per_request(self) -> None:
        alerts = [{"status": "firing", "labels": {"alertname": str(i)}} for i in range(3)]
        body = json.dumps({"alerts": alerts}).encode()
        with pytest.raises(ParseError):
            alertmanager.parse(body, IngestLimits(max_alerts=2))
        assert len(alertmanager.parse(body, IngestLimits(max_alerts=3))) == 3
