"""Table-driven tests of the pure parsers on the real-format payloads in tests/fixtures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.incidents.events import AlertEvent, EventAction, Link, Severity
from app.ingest.parsers import alertmanager, generic, grafana, heartbeat, opsgenie, pagerduty
from app.ingest.parsers.common import IngestLimits, ParseError
from tests.conftest import PAYLOADS, payload_bytes

LIMITS = IngestLimits()


def fixed_key() -> str:
    return "generated-key"


PARSERS: dict[str, Any] = {
    "alertmanager": alertmanager.parse,
    "grafana": grafana.parse,
    "pagerduty": lambda body, limits: pagerduty.parse(body, limits, new_key=fixed_key),
    "generic": lambda body, limits: generic.parse(body, limits, new_key=fixed_key),
    "heartbeat": heartbeat.parse,
}

# (fixture, action, dedup_key, summary, severity, source) of each event, in order.
FIXTURE_EVENTS: list[tuple[str, list[tuple[str, str, str, Severity, str | None]]]] = [
    (
        "alertmanager/firing-two-alerts.json",
        [
            (
                "trigger",
                "4f1c9a2b7d3e8f01",
                "5xx rate above 5% on checkout-7d9f-abc12",
                Severity.critical,
                "checkout-7d9f-abc12:8080",
            ),
            (
                "trigger",
                "9a7b6c5d4e3f2a10",
                "5xx rate above 5% on checkout-7d9f-def34",
                Severity.critical,
                "checkout-7d9f-def34:8080",
            ),
        ],
    ),
    (
        "alertmanager/resolved-one.json",
        [
            (
                "resolve",
                "4f1c9a2b7d3e8f01",
                "5xx rate above 5% on checkout-7d9f-abc12",
                Severity.critical,
                "checkout-7d9f-abc12:8080",
            ),
            (
                "trigger",
                "9a7b6c5d4e3f2a10",
                "5xx rate above 5% on checkout-7d9f-def34",
                Severity.critical,
                "checkout-7d9f-def34:8080",
            ),
        ],
    ),
    (
        "alertmanager/truncated.json",
        [
            (
                "trigger",
                "aa00000000000001",
                "node-0001:9100 is down",
                Severity.critical,
                "node-0001:9100",
            ),
            (
                "trigger",
                "aa00000000000002",
                "node-0002:9100 is down",
                Severity.critical,
                "node-0002:9100",
            ),
        ],
    ),
    (
        "alertmanager/missing-fields.json",
        [
            ("trigger", "bb00000000000001", "BatchJobFailed", Severity.critical, "worker-3"),
            ("trigger", "bb00000000000002", "BatchJobSlow", Severity.critical, "batch"),
            ("trigger", "bb00000000000003", "no labels of its own", Severity.critical, "batch"),
            ("trigger", "bb00000000000004", "Batch queue at 100%", Severity.warning, "batch"),
        ],
    ),
    (
        "grafana/firing.json",
        [
            (
                "trigger",
                "c0ffee1234abcd56",
                "p99 latency of payment authorisation above 800 ms",
                Severity.warning,
                None,
            )
        ],
    ),
    (
        "grafana/resolved.json",
        [
            (
                "resolve",
                "c0ffee1234abcd56",
                "p99 latency of payment authorisation above 800 ms",
                Severity.warning,
                None,
            )
        ],
    ),
    (
        "pagerduty/trigger.json",
        [
            (
                "trigger",
                "db-primary-disk-usage/host-db-01",
                "Disk usage on host-db-01 /var/lib/postgresql at 93%",
                Severity.critical,
                "host-db-01",
            )
        ],
    ),
    (
        "pagerduty/trigger-minimal.json",
        [
            (
                "trigger",
                "generated-key",
                "Cron job nightly-report did not finish",
                Severity.warning,
                "cron-01",
            )
        ],
    ),
    (
        "pagerduty/acknowledge.json",
        [("acknowledge", "db-primary-disk-usage/host-db-01", "", Severity.critical, None)],
    ),
    (
        "pagerduty/resolve.json",
        [("resolve", "db-primary-disk-usage/host-db-01", "", Severity.critical, None)],
    ),
    (
        "generic/alert.json",
        [
            (
                "trigger",
                "backup-nightly/storage-02",
                "Nightly backup job failed",
                Severity.error,
                "backup-scheduler",
            )
        ],
    ),
    (
        "generic/resolved.json",
        [("resolve", "backup-nightly/storage-02", "", Severity.critical, None)],
    ),
    (
        "generic/unicode.json",
        [
            (
                "trigger",
                "unicode/🔥/שרת",
                "🔥 Disk full on שרת-ראשי — العربية ✓ 日本語",
                Severity.critical,
                "مراقبة",
            )
        ],
    ),
    (
        "heartbeat/ping.json",
        [
            (
                "resolve",
                "heartbeat",
                "backup-nightly finished in 41 minutes",
                Severity.critical,
                None,
            )
        ],
    ),
]


def summarize(event: AlertEvent) -> tuple[str, str, str, Severity, str | None]:
    return (event.action.value, event.dedup_key, event.summary, event.severity, event.source)


@pytest.mark.parametrize(
    ("fixture", "expected"), FIXTURE_EVENTS, ids=[f for f, _ in FIXTURE_EVENTS]
)
def test_fixture_events(fixture: str, expected: list[Any]) -> None:
    parse = PARSERS[fixture.split("/")[0]]
    events = parse(payload_bytes(fixture), LIMITS)
    assert [summarize(event) for event in events] == expected


def test_every_fixture_has_a_case() -> None:
    covered = {fixture for fixture, _ in FIXTURE_EVENTS} | {
        "opsgenie/create-alert.json",
        "opsgenie/close-alert.json",
        "opsgenie/acknowledge-alert.json",
        "opsgenie/add-note.json",
        "pagerduty/change.json",
    }
    on_disk = {str(path.relative_to(PAYLOADS)) for path in PAYLOADS.glob("*/*.json")}
    assert on_disk - covered == set()


class TestAlertmanager:
    def test_group_details_and_links(self) -> None:
        event = alertmanager.parse(payload_bytes("alertmanager/firing-two-alerts.json"), LIMITS)[0]
        assert event.group_key is not None
        assert event.details["receiver"] == "tocsin-checkout"
        assert Link("http://alertmanager.example.com:9093", "Alertmanager") in event.links
        assert Link("https://runbooks.example.com/checkout/high-error-rate", "Runbook") in (
            event.links
        )
        assert event.occurred_at == datetime(2026, 11, 30, 8, 12, 41, 512000, tzinfo=UTC)

    def test_truncated_alerts_kept_in_details(self) -> None:
        events = alertmanager.parse(payload_bytes("alertmanager/truncated.json"), LIMITS)
        assert {event.details["truncated_alerts"] for event in events} == {1312}

    def test_alert_without_labels_takes_common_labels(self) -> None:
        events = alertmanager.parse(payload_bytes("alertmanager/missing-fields.json"), LIMITS)
        assert events[2].labels == {"job": "batch"}
        assert events[1].details["annotations"] == {}

    def test_resolved_alert_keeps_end_time(self) -> None:
        events = alertmanager.parse(payload_bytes("alertmanager/resolved-one.json"), LIMITS)
        assert events[0].ended_at == datetime(2026, 11, 30, 8, 31, 56, tzinfo=UTC)
        assert events[1].ended_at is None

    def test_too_many_alerts_rejected(self) -> None:
        body = payload_bytes("alertmanager/firing-two-alerts.json")
        with pytest.raises(ParseError) as error:
            alertmanager.parse(body, IngestLimits(max_alerts=1))
        assert error.value.field == "alerts"
        assert "TOCSIN_INGEST_MAX_ALERTS" in error.value.message


class TestGrafana:
    def test_links_kept_as_links(self) -> None:
        event = grafana.parse(payload_bytes("grafana/firing.json"), LIMITS)[0]
        texts = {link.text: link.href for link in event.links}
        assert texts["Dashboard"] == "https://grafana.example.com/d/payments-overview?orgId=1"
        assert texts["Panel"].endswith("viewPanel=4")
        assert texts["Silence"].startswith("https://grafana.example.com/alerting/silence/new")
        assert texts["Source"].startswith("https://grafana.example.com/alerting/grafana/")
        assert texts["Grafana"] == "https://grafana.example.com/"

    def test_values_and_labels(self) -> None:
        event = grafana.parse(payload_bytes("grafana/firing.json"), LIMITS)[0]
        assert event.details["values"] == {"B": 1.21, "C": 1}
        assert event.details["value_string"].startswith("[ var='B'")
        assert event.details["state"] == "alerting"
        assert event.labels["grafana_folder"] == "Payments"
        assert event.details["annotations"]["description"] == "Current p99 is 1.21 s."

    def test_legacy_payload_named(self) -> None:
        body = json.dumps({"ruleName": "CPU", "state": "alerting", "evalMatches": []}).encode()
        with pytest.raises(ParseError) as error:
            grafana.parse(body, LIMITS)
        assert "legacy" in error.value.message

    def test_values_of_wrong_type(self) -> None:
        payload = json.loads(payload_bytes("grafana/firing.json"))
        payload["alerts"][0]["values"] = [1, 2]
        with pytest.raises(ParseError) as error:
            grafana.parse(json.dumps(payload).encode(), LIMITS)
        assert error.value.field == "alerts.0.values"


class TestPagerDuty:
    def test_trigger_fields(self) -> None:
        event = pagerduty.parse(payload_bytes("pagerduty/trigger.json"), LIMITS)[0]
        assert event.labels == {"component": "postgresql", "group": "storage", "class": "disk"}
        assert event.details["custom_details"]["used_percent"] == 93.4
        assert event.details["client"] == "Example Monitoring"
        assert event.occurred_at == datetime(2026, 11, 30, 8, 45, 12, tzinfo=UTC)
        assert event.links[0] == Link(
            "https://monitoring.example.com/hosts/host-db-01", "Example Monitoring"
        )
        assert Link("https://monitoring.example.com/hosts/host-db-01/disk", "Disk graph") in (
            event.links
        )
        assert event.details["images"][0]["src"] == "https://monitoring.example.com/render/disk.png"

    def test_routing_key_not_stored(self) -> None:
        event = pagerduty.parse(payload_bytes("pagerduty/trigger.json"), LIMITS)[0]
        assert "routing_key" not in event.raw
        assert event.raw["event_action"] == "trigger"

    def test_read_routing_key(self) -> None:
        assert pagerduty.read_routing_key({"routing_key": "abc"}) == "abc"
        assert pagerduty.read_routing_key({"service_key": "v1"}) == "v1"
        with pytest.raises(ParseError) as error:
            pagerduty.read_routing_key({})
        assert error.value.field == "routing_key"

    def test_each_trigger_without_key_gets_its_own(self) -> None:
        body = payload_bytes("pagerduty/trigger-minimal.json")
        first = pagerduty.parse(body, LIMITS)[0]
        second = pagerduty.parse(body, LIMITS)[0]
        assert first.dedup_key != second.dedup_key
        assert len(first.dedup_key) == 32

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"event_action": "trigger", "payload": {"severity": "catastrophic"}}, "severity"),
            ({"event_action": "explode"}, "event_action"),
            ({}, "event_action"),
            ({"event_action": "resolve"}, "dedup_key"),
            ({"event_action": "trigger", "dedup_key": "x" * 256}, "dedup_key"),
            ({"event_action": "trigger", "payload": "disk full"}, "payload"),
            ({"event_action": "trigger", "payload": {"timestamp": "yesterday"}}, "timestamp"),
            ({"event_action": "trigger", "links": [{"text": "no href"}]}, "links.0.href"),
            ({"event_action": "trigger", "images": [{"href": "x"}]}, "images.0.src"),
            ({"event_action": "trigger", "payload": {"summary": 5}}, "payload.summary"),
        ],
    )
    def test_invalid_event_names_field(self, payload: dict[str, Any], field: str) -> None:
        with pytest.raises(ParseError) as error:
            pagerduty.parse_event(payload, LIMITS)
        assert field in error.value.field

    def test_change_event(self) -> None:
        change = pagerduty.parse_change(payload_bytes("pagerduty/change.json"), LIMITS)
        assert change.summary == "Deployed checkout v2.14.0 to production"
        assert change.source == "ci.example.com"
        assert change.occurred_at == datetime(2026, 11, 30, 9, 31, 5, 120000, tzinfo=UTC)
        assert change.custom_details["build"] == "8812"
        assert change.links == [Link("https://ci.example.com/builds/8812", "Build 8812")]
        assert "routing_key" not in change.raw

    def test_change_event_needs_summary(self) -> None:
        with pytest.raises(ParseError) as error:
            pagerduty.parse_change(b'{"payload": {"source": "ci"}}', LIMITS)
        assert error.value.field == "payload.summary"


class TestOpsgenie:
    def test_create(self) -> None:
        event = opsgenie.parse(payload_bytes("opsgenie/create-alert.json"), LIMITS)[0]
        assert event.action == EventAction.trigger
        assert event.dedup_key == "orders-consumer-queue-depth"
        assert event.summary == "Queue depth of orders-consumer above 10000"
        assert event.severity == Severity.error
        assert event.severity_raw == "P2"
        assert event.source == "queue-monitor"
        assert event.labels == {"queue": "orders.created", "depth": "12873"}
        assert event.details["tags"] == ["orders", "queue", "prod"]
        assert event.details["entity"] == "orders-consumer"
        assert event.details["note"] == "Opened by the queue monitor"
        assert event.details["responders"] == [{"type": "team", "name": "orders"}]

    @pytest.mark.parametrize(
        ("priority", "severity"),
        [
            ("P1", Severity.critical),
            ("p2", Severity.error),
            (None, Severity.warning),
            ("P4", Severity.info),
            ("P5", Severity.info),
        ],
    )
    def test_priority_to_severity(self, priority: str | None, severity: Severity) -> None:
        body = json.dumps({"message": "m", "priority": priority}).encode()
        assert opsgenie.parse(body, LIMITS)[0].severity == severity

    def test_invalid_priority(self) -> None:
        with pytest.raises(ParseError) as error:
            opsgenie.parse(b'{"message": "m", "priority": "P9"}', LIMITS)
        assert error.value.field == "priority"

    @pytest.mark.parametrize("body", [b'{"alias": "a"}', b'{"message": "  ", "entity": "db"}'])
    def test_message_required(self, body: bytes) -> None:
        with pytest.raises(ParseError) as error:
            opsgenie.parse(body, LIMITS)
        assert error.value.field == "message"

    def test_without_alias_gets_own_key(self) -> None:
        first = opsgenie.parse(b'{"message": "m"}', LIMITS)[0]
        second = opsgenie.parse(b'{"message": "m"}', LIMITS)[0]
        assert first.dedup_key != second.dedup_key

    def test_tags_must_be_strings(self) -> None:
        with pytest.raises(ParseError) as error:
            opsgenie.parse(b'{"message": "m", "tags": ["a", 1]}', LIMITS)
        assert error.value.field == "tags.1"

    def test_close_and_acknowledge(self) -> None:
        close = opsgenie.parse_action(
            payload_bytes("opsgenie/close-alert.json"), EventAction.resolve, "orders"
        )
        assert (close.action, close.dedup_key) == (EventAction.resolve, "orders")
        assert close.summary == "Queue depth back under threshold"
        acknowledge = opsgenie.parse_action(
            payload_bytes("opsgenie/acknowledge-alert.json"), EventAction.acknowledge, "orders"
        )
        assert acknowledge.action == EventAction.acknowledge
        empty = opsgenie.parse_action(b"", EventAction.resolve, "orders")
        assert empty.summary == ""

    def test_note(self) -> None:
        note = opsgenie.parse_note(payload_bytes("opsgenie/add-note.json"))
        assert note == opsgenie.Note(
            text="Lag now 4,210 messages and falling", user="monitoring", source="queue-monitor"
        )
        with pytest.raises(ParseError) as error:
            opsgenie.parse_note(b'{"user": "x"}')
        assert error.value.field == "note"


class TestGeneric:
    def test_alert_fields(self) -> None:
        event = generic.parse(payload_bytes("generic/alert.json"), LIMITS)[0]
        assert event.labels == {"job": "backup-nightly", "host": "storage-02", "env": "prod"}
        assert event.details["description"] == "Exit code 2: target volume read-only."
        assert event.links == [Link("https://backup.example.com/runs/8812", "Run log")]
        assert event.occurred_at == datetime(2026, 11, 30, 2, 14, 9, tzinfo=UTC)

    def test_resolve_with_epoch_time(self) -> None:
        event = generic.parse(payload_bytes("generic/resolved.json"), LIMITS)[0]
        assert event.occurred_at == datetime(2026, 11, 30, 2, 20, tzinfo=UTC)

    def test_unicode_kept(self) -> None:
        raw = json.loads(payload_bytes("generic/unicode.json"))
        event = generic.parse(payload_bytes("generic/unicode.json"), LIMITS)[0]
        assert event.labels == raw["labels"]
        assert event.details["description"] == raw["description"]
        assert event.severity_raw == "CRIT"

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"status": "exploded"}, "status"),
            ({"status": "resolved"}, "dedup_key"),
            ({"severity": "purple"}, "severity"),
            ({"severity": 9}, "severity"),
            ({"occurred_at": "30/11/2026"}, "occurred_at"),
            ({"labels": ["a"]}, "labels"),
            ({"labels": {"a": {"b": 1}}}, "labels.a"),
            ({"links": "https://x"}, "links"),
            ({"details": "text"}, "details"),
            ({"title": ["list"]}, "title"),
        ],
    )
    def test_invalid_field_named(self, payload: dict[str, Any], field: str) -> None:
        with pytest.raises(ParseError) as error:
            generic.parse(json.dumps(payload).encode(), LIMITS)
        assert error.value.field == field

    def test_missing_title_falls_back(self) -> None:
        event = generic.parse(b'{"source": "cron-01"}', LIMITS)[0]
        assert event.summary == "Alert from cron-01"
        assert event.severity == Severity.critical


class TestHeartbeat:
    @pytest.mark.parametrize("body", [b"", b"ok\n", b"{}"])
    def test_ping_bodies(self, body: bytes) -> None:
        event = heartbeat.parse(body, LIMITS)[0]
        assert (event.action, event.dedup_key) == (EventAction.resolve, "heartbeat")

    def test_missed(self) -> None:
        last = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
        event = heartbeat.missed(
            integration_name="backups", last_ping_at=last, interval=timedelta(minutes=5)
        )
        assert event.action == EventAction.trigger
        assert event.dedup_key == heartbeat.HEARTBEAT_DEDUP_KEY
        assert event.occurred_at == last + timedelta(minutes=5)
        assert "2026-11-30T08:00:00Z" in event.summary


class TestMalformedBodies:
    @pytest.mark.parametrize("parser", ["alertmanager", "grafana", "pagerduty", "generic"])
    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b'{"alerts": [', "invalid JSON at line 1"),
            (b"[]", "expected a JSON object, got an array"),
            (b"", "the body is empty"),
            (b"\xff\xfe{}", "not valid UTF-8"),
            (b'"text"', "got a string"),
        ],
    )
    def test_named(self, parser: str, body: bytes, message: str) -> None:
        with pytest.raises(ParseError) as error:
            PARSERS[parser](body, LIMITS)
        assert error.value.field == "body"
        assert message in error.value.message

    def test_alerts_of_wrong_type(self) -> None:
        with pytest.raises(ParseError) as error:
            alertmanager.parse(b'{"alerts": {"a": 1}}', LIMITS)
        assert (error.value.field, error.value.message) == (
            "alerts",
            "expected an array, got an object",
        )
