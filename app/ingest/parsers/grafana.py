"""Parse Grafana alerting webhook payloads (contact point type "webhook", version 1) into events.

Grafana's unified alerting posts Alertmanager's webhook fields plus its own. Each alert has
the ``values`` of the rule's expressions and dashboard, panel, silence and image links. The
request has a title, a state and a rendered message.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from app.incidents.events import AlertEvent, Link
from app.ingest.parsers import alertmanager
from app.ingest.parsers.common import (
    IngestLimits,
    ParseError,
    expect_object,
    load_json_object,
    optional_str,
)

# Per-alert URL fields and the text of the link each one becomes, in display order.
ALERT_LINKS = (
    ("dashboardURL", "Dashboard"),
    ("panelURL", "Panel"),
    ("silenceURL", "Silence"),
    ("imageURL", "Image"),
)
# Request-level fields kept in each alert's details.
REQUEST_DETAILS = ("title", "state", "message", "orgId")


def parse(body: bytes, limits: IngestLimits) -> list[AlertEvent]:
    payload = load_json_object(body)
    if "alerts" not in payload and "ruleName" in payload:
        raise ParseError(
            "body",
            "this is a legacy Grafana alerting payload (ruleName, evalMatches), which "
            "Grafana 11 removed; use a unified alerting webhook contact point",
        )
    events = alertmanager.parse_payload(payload, limits, source_name="Grafana")
    request_details = {
        name: payload[name] for name in REQUEST_DETAILS if payload.get(name) not in (None, "")
    }
    # parse_payload has checked that alerts is a list of objects of this length.
    alerts = payload["alerts"]
    return [
        _add_grafana_fields(
            event, expect_object(alert, f"alerts.{index}"), f"alerts.{index}", request_details
        )
        for index, (event, alert) in enumerate(zip(events, alerts, strict=True))
    ]


def _add_grafana_fields(
    event: AlertEvent, alert: dict[str, Any], field: str, request_details: dict[str, Any]
) -> AlertEvent:
    links = list(event.links)
    for name, text in ALERT_LINKS:
        href = optional_str(alert, name, field)
        if href:
            links.append(Link(href, text))

    details = dict(event.details)
    values = alert.get("values")
    if values is not None:
        details["values"] = expect_object(values, f"{field}.values")
    value_string = optional_str(alert, "valueString", field)
    if value_string:
        details["value_string"] = value_string
    details.update(request_details)
    return dataclasses.replace(event, links=links, details=details)
