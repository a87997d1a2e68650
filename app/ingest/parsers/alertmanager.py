"""Parse Prometheus Alertmanager webhook payloads (version 4) into events."""

from __future__ import annotations

from typing import Any

from app.incidents.events import AlertEvent, EventAction, Link
from app.ingest.parsers.common import (
    IngestLimits,
    ParseError,
    annotation_map,
    check_alert_count,
    expect_list,
    expect_object,
    fingerprint_labels,
    load_json_object,
    normalize_severity,
    optional_str,
    parse_timestamp,
    string_map,
    summary_with_overflow,
)

# Annotation names that people use for the one-line text of an alert, best first.
SUMMARY_ANNOTATIONS = ("summary", "title", "message", "description")
# Label names that say which machine or job raised the alert, best first.
SOURCE_LABELS = ("instance", "host", "hostname", "pod", "job")


def parse(body: bytes, limits: IngestLimits) -> list[AlertEvent]:
    payload = load_json_object(body)
    return parse_payload(payload, limits, source_name="Alertmanager")


def parse_payload(
    payload: dict[str, Any], limits: IngestLimits, *, source_name: str
) -> list[AlertEvent]:
    """Turn an Alertmanager-shaped payload into events; Grafana's webhook shares this shape."""
    alerts = expect_list(payload.get("alerts"), "alerts")
    check_alert_count(len(alerts), "alerts", limits)
    group_key = optional_str(payload, "groupKey", "body")
    external_url = optional_str(payload, "externalURL", "body")
    common_labels = string_map(payload.get("commonLabels"), "commonLabels", limits)
    group_details: dict[str, Any] = {
        "receiver": optional_str(payload, "receiver", "body"),
        "group_key": group_key,
        "group_labels": string_map(payload.get("groupLabels"), "groupLabels", limits),
        "external_url": external_url,
    }
    truncated = payload.get("truncatedAlerts")
    if truncated is not None and (not isinstance(truncated, int) or isinstance(truncated, bool)):
        raise ParseError("truncatedAlerts", "expected a whole number")
    if truncated:
        group_details["truncated_alerts"] = truncated

    events = []
    for index, item in enumerate(alerts):
        field = f"alerts.{index}"
        alert = expect_object(item, field)
        events.append(
            _parse_alert(
                alert,
                field,
                limits,
                group_key=group_key,
                common_labels=common_labels,
                group_details=group_details,
                source_name=source_name,
            )
        )
    return events


def _parse_alert(
    alert: dict[str, Any],
    field: str,
    limits: IngestLimits,
    *,
    group_key: str | None,
    common_labels: dict[str, str],
    group_details: dict[str, Any],
    source_name: str,
) -> AlertEvent:
    status = optional_str(alert, "status", field) or "firing"
    if status not in ("firing", "resolved"):
        raise ParseError(f"{field}.status", f"expected 'firing' or 'resolved', got {status!r}")
    labels = string_map(alert.get("labels"), f"{field}.labels", limits) or dict(common_labels)
    annotations, cut = annotation_map(alert.get("annotations"), f"{field}.annotations", limits)
    starts_at = parse_timestamp(alert.get("startsAt"), f"{field}.startsAt")
    ends_at = parse_timestamp(alert.get("endsAt"), f"{field}.endsAt")
    fingerprint = optional_str(alert, "fingerprint", field) or fingerprint_labels(labels)
    severity, severity_raw = normalize_severity(labels.get("severity"), f"{field}.labels.severity")

    summary = next((annotations[name] for name in SUMMARY_ANNOTATIONS if annotations.get(name)), "")
    if not summary:
        summary = labels.get("alertname") or f"Alert from {source_name}"
    details: dict[str, Any] = {
        "annotations": annotations,
        **{key: value for key, value in group_details.items() if value},
    }
    if cut:
        details["truncated_annotations"] = cut
    summary, details = summary_with_overflow(summary, details, limits)

    return AlertEvent(
        action=EventAction.trigger if status == "firing" else EventAction.resolve,
        dedup_key=fingerprint,
        summary=summary,
        severity=severity,
        severity_raw=severity_raw,
        source=next((labels[name] for name in SOURCE_LABELS if labels.get(name)), None),
        occurred_at=starts_at,
        ended_at=ends_at if status == "resolved" else None,
        group_key=group_key,
        labels=labels,
        details=details,
        links=_links(alert, annotations, group_details.get("external_url"), source_name),
        raw=alert,
    )


def _links(
    alert: dict[str, Any],
    annotations: dict[str, str],
    external_url: str | None,
    source_name: str,
) -> list[Link]:
    links = []
    generator_url = alert.get("generatorURL")
    if isinstance(generator_url, str) and generator_url:
        links.append(Link(generator_url, "Source"))
    if annotations.get("runbook_url"):
        links.append(Link(annotations["runbook_url"], "Runbook"))
    if annotations.get("dashboard_url"):
        links.append(Link(annotations["dashboard_url"], "Dashboard"))
    if external_url:
        links.append(Link(external_url, source_name))
    return links
