from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from app.incidents.events import EventAction, Severity
from app.ingest.parsers import alertmanager
from app.ingest.parsers.common import IngestLimits, ParseError
from tests.conftest import payload_bytes, payload_json

LIMITS = IngestLimits()


def body(**overrides: object) -> bytes:
    payload = payload_json("alertmanager/firing-two-alerts.json")
    payload.update(overrides)
    return json.dumps(payload).encode()


def test_firing_fixture() -> None:
    events = alertmanager.parse(payload_bytes("alertmanager/firing-two-alerts.json"), LIMITS)
    assert [event.dedup_key for event in events] == ["4f1c9a2b7d3e8f01", "9a7b6c5d4e3f2a10"]
    first = events[0]
    assert first.action == EventAction.trigger
    assert first.summary == "5xx rate above 5% on checkout-7d9f-abc12"
    assert first.severity == Severity.critical
    assert first.severity_raw == "critical"
    assert first.source == "checkout-7d9f-abc12:8080"
    assert first.occurred_at == datetime(2026, 11, 30, 8, 12, 41, 512000, tzinfo=UTC)
    assert first.ended_at is None
    assert first.group_key == payload_json("alertmanager/firing-two-alerts.json")["groupKey"]
    assert first.labels["instance"] == "checkout-7d9f-abc12:8080"
    assert (
        first.details["annotations"]["description"]
        == "Error ratio is 0.083 over the last 5 minutes."
    )
    assert [link.text for link in first.links] == ["Source", "Runbook", "Alertmanager"]


def test_resolved_fixture() -> None:
    events = alertmanager.parse(payload_bytes("alertmanager/resolved-one.json"), LIMITS)
    assert [event.action for event in events] == [EventAction.resolve, EventAction.trigger]
    assert events[0].ended_at == datetime(2026, 11, 30, 8, 31, 56, tzinfo=UTC)


def test_alert_without_annotations_or_fingerprint() -> None:
    alert = {"status": "firing", "labels": {"alertname": "NodeDown", "job": "node"}}
    events = alertmanager.parse(json.dumps({"alerts": [alert]}).encode(), LIMITS)
    assert events[0].summary == "NodeDown"
    assert events[0].source == "node"
    # Without a fingerprint the key is a hash of the labels, stable across deliveries.
    again = alertmanager.parse(json.dumps({"alerts": [alert]}).encode(), LIMITS)
    assert events[0].dedup_key == again[0].dedup_key
    assert len(events[0].dedup_key) == 16


def test_alert_without_labels_gets_source_title() -> None:
    events = alertmanager.parse(b'{"alerts": [{"status": "firing"}]}', LIMITS)
    assert events[0].summary == "Alert from Alertmanager"


def test_non_ascii_text_kept() -> None:
    summary = "Disk full \U0001f525 on \u05e9\u05e8\u05ea-\u05d0 \u2014 caf\u00e9"
    alert = {"status": "firing", "labels": {"alertname": "X"}, "annotations": {"summary": summary}}
    events = alertmanager.parse(
        json.dumps({"alerts": [alert]}, ensure_ascii=False).encode(), LIMITS
    )
    assert events[0].summary == summary


def test_long_summary_truncated_and_kept() -> None:
    summary = "x" * 2000
    alert = {"status": "firing", "annotations": {"summary": summary}}
    events = alertmanager.parse(
        json.dumps({"alerts": [alert]}).encode(), IngestLimits(max_summary_length=100)
    )
    assert len(events[0].summary) == 100
    assert events[0].summary.endswith("\u2026")
    assert events[0].details["full_summary"] == summary


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        (b"", "body", "empty"),
        (b'{"alerts": [', "body", "invalid JSON"),
        (b"[]", "body", "expected a JSON object, got an array"),
        (b'{"version": "4"}', "alerts", "expected an array, got null"),
        (b'{"alerts": {}}', "alerts", "expected an array"),
        (b'{"alerts": [42]}', "alerts.0", "expected an object, got a number"),
        (b'{"alerts": [{"status": "broken"}]}', "alerts.0.status", "'firing' or 'resolved'"),
        (b'{"alerts": [{"labels": {"a": [1]}}]}', "alerts.0.labels.a", "expected a string"),
        (b'{"alerts": [{"labels": "x"}]}', "alerts.0.labels", "expected an object"),
        (b'{"alerts": [{"startsAt": "yesterday"}]}', "alerts.0.startsAt", "unreadable timestamp"),
        (b'{"alerts": [], "truncatedAlerts": "1"}', "truncatedAlerts", "whole number"),
        (b"\xff\xfe", "body", "UTF-8"),
    ],
)
def test_invalid_bodies_name_the_field(raw: bytes, field: str, fragment: str) -> None:
    with pytest.raises(ParseError) as caught:
        alertmanager.parse(raw, LIMITS)
    assert caught.value.field == field
    assert fragment in caught.value.message


def test_alert_count_limit() -> None:
    alerts = [{"status": "firing", "labels": {"n": str(i)}} for i in range(3)]
    with pytest.raises(ParseError) as caught:
        alertmanager.parse(json.dumps({"alerts": alerts}).encode(), IngestLimits(max_alerts=2))
    assert "TOCSIN_INGEST_MAX_ALERTS" in caught.value.message


def test_label_limits() -> None:
    labels = {f"l{i}": "v" for i in range(5)}
    with pytest.raises(ParseError) as caught:
        alertmanager.parse(
            json.dumps({"alerts": [{"labels": labels}]}).encode(), IngestLimits(max_labels=4)
        )
    assert caught.value.field == "alerts.0.labels"
    with pytest.raises(ParseError) as caught:
        long_value = {"alerts": [{"labels": {"a": "v" * 100}}]}
        alertmanager.parse(json.dumps(long_value).encode(), IngestLimits(max_label_length=50))
    assert caught.value.field == "alerts.0.labels.a"


def test_truncated_alerts_recorded() -> None:
    events = alertmanager.parse(body(truncatedAlerts=7), LIMITS)
    assert events[0].details["truncated_alerts"] == 7


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        (rb'{"alerts": [{"labels": {"a": "x\u0000y"}}]}', "alerts.0.labels.a", "NUL"),
        (
            rb'{"alerts": [{"annotations": {"summary": "\ud800"}}]}',
            "alerts.0.annotations.summary",
            "surrogate",
        ),
        (rb'{"alerts": [{"labels": {"\u0000": "v"}}]}', "alerts.0.labels.\x00", "NUL"),
    ],
)
def test_text_postgres_cannot_store_is_rejected(raw: bytes, field: str, fragment: str) -> None:
    with pytest.raises(ParseError) as caught:
        alertmanager.parse(raw, LIMITS)
    assert caught.value.field == field
    assert fragment in caught.value.message


def test_escaped_emoji_pair_accepted() -> None:
    events = alertmanager.parse(
        rb'{"alerts": [{"annotations": {"summary": "\ud83d\udd25 hot"}}]}', LIMITS
    )
    assert events[0].summary == "\U0001f525 hot"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"alerts": [{"labels": {"v": NaN}}]}', "NaN is not valid JSON"),
        (b'{"alerts": [], "x": Infinity}', "Infinity is not valid JSON"),
        (b'{"alerts": [], "x": ' + b"9" * 5000 + b"}", "more than 4,300 digits"),
        (b'{"alerts": [], "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
    ],
)
def test_json_python_cannot_store_is_rejected(raw: bytes, fragment: str) -> None:
    with pytest.raises(ParseError) as caught:
        alertmanager.parse(raw, LIMITS)
    assert caught.value.field == "body"
    assert fragment in caught.value.message


def test_odd_severity_and_far_timestamps() -> None:
    alert = {"labels": {"severity": "\u00b2"}, "startsAt": "2026-11-30T08:00:00Z"}
    [event] = alertmanager.parse(json.dumps({"alerts": [alert]}).encode(), LIMITS)
    assert event.severity == Severity.critical
    assert event.severity_raw == "\u00b2"
    numeric = {"labels": {"severity": "10"}}
    [event] = alertmanager.parse(json.dumps({"alerts": [numeric]}).encode(), LIMITS)
    assert event.severity_raw == "10"
    far = {"startsAt": "9999-12-31T23:59:59-01:00"}
    with pytest.raises(ParseError) as caught:
        alertmanager.parse(json.dumps({"alerts": [far]}).encode(), LIMITS)
    assert caught.value.field == "alerts.0.startsAt"


def test_long_annotation_is_cut_not_rejected() -> None:
    alert = {"labels": {"alertname": "X"}, "annotations": {"description": "d" * 70_000}}
    [event] = alertmanager.parse(json.dumps({"alerts": [alert]}).encode(), LIMITS)
    description = event.details["annotations"]["description"]
    assert len(description) == LIMITS.max_annotation_length
    assert description.endswith("\u2026")
    assert event.details["truncated_annotations"] == ["description"]
