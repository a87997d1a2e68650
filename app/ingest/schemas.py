from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class IngestAccepted(BaseModel):
    """The answer to an accepted batch: sent only after the events are committed."""

    status: str = "accepted"
    events_received: int
    events_ignored: int = Field(
        description="Events that changed nothing, such as a resolve with no open alert."
    )
    alerts_created: int
    alerts_updated: int
    alerts_resolved: int
    incidents: list[uuid.UUID] = Field(description="Every incident the request touched.")
    incidents_opened: list[uuid.UUID]
    incidents_resolved: list[uuid.UUID]
    dedup_keys: list[str] = Field(
        default_factory=list,
        description="The dedup key of each alert in the request, including generated ones.",
    )


class AlertmanagerAlert(BaseModel):
    status: str = Field(description="firing or resolved")
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    startsAt: str | None = None
    endsAt: str | None = Field(
        default=None, description="0001-01-01T00:00:00Z (Go's zero time) while firing"
    )
    generatorURL: str | None = None
    fingerprint: str | None = Field(
        default=None, description="The dedup key; a hash of the labels when absent"
    )


class AlertmanagerWebhook(BaseModel):
    """Prometheus Alertmanager webhook payload, version 4."""

    version: str = "4"
    groupKey: str | None = Field(default=None, description="Alerts of one group form one incident")
    truncatedAlerts: int = 0
    status: str | None = None
    receiver: str | None = None
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str | None = None
    alerts: list[AlertmanagerAlert]


class GrafanaAlert(AlertmanagerAlert):
    values: dict[str, float | None] | None = None
    valueString: str | None = None
    dashboardURL: str | None = None
    panelURL: str | None = None
    silenceURL: str | None = None
    imageURL: str | None = None


class GrafanaWebhook(BaseModel):
    """Grafana alerting webhook contact point payload, version 1."""

    version: str = "1"
    groupKey: str | None = None
    truncatedAlerts: int = 0
    status: str | None = None
    receiver: str | None = None
    orgId: int | None = None
    title: str | None = None
    state: str | None = None
    message: str | None = None
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str | None = None
    alerts: list[GrafanaAlert]


class LinkIn(BaseModel):
    href: str
    text: str = ""


class GenericAlert(BaseModel):
    """Tocsin's own alert format. Every field is optional except dedup_key to end an alert."""

    title: str | None = Field(
        default=None,
        description="One line for people; longer than TOCSIN_INGEST_MAX_SUMMARY_LENGTH "
        "characters is cut and kept whole in details.full_summary",
    )
    status: Literal["firing", "resolved", "acknowledged"] = "firing"
    dedup_key: str | None = Field(
        default=None,
        max_length=255,
        description="Identifies the alert; events with the same key update one alert. "
        "Generated and returned in dedup_keys when a firing alert has none.",
    )
    severity: str | int | None = Field(
        default=None,
        description="critical, error, warning or info, in any case; also abbreviations "
        "(crit, warn), P1-P5, sev1-sev5 and syslog numbers 0-7. Default critical.",
    )
    source: str | None = Field(default=None, description="The host or system affected")
    occurred_at: str | float | None = Field(
        default=None,
        description="RFC 3339 (no zone means UTC) or Unix epoch seconds, milliseconds or "
        "microseconds",
    )
    ended_at: str | float | None = Field(default=None, description="For a resolve")
    description: str | None = None
    group_key: str | None = Field(
        default=None, description="Alerts with the same group key share one incident"
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Flat string labels")
    links: list[LinkIn] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict, description="Any JSON object")


class PagerDutyPayload(BaseModel):
    summary: str
    source: str
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: str | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: Any = None


class PagerDutyImage(BaseModel):
    src: str
    href: str | None = None
    alt: str | None = None


class PagerDutyEvent(BaseModel):
    """PagerDuty Events API v2 event."""

    routing_key: str = Field(description="The integration key")
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, max_length=255)
    payload: PagerDutyPayload | None = Field(default=None, description="Required on trigger")
    client: str | None = None
    client_url: str | None = None
    links: list[LinkIn] = []
    images: list[PagerDutyImage] = []


class PagerDutyChangePayload(BaseModel):
    summary: str
    source: str | None = None
    timestamp: str | None = None
    custom_details: dict[str, Any] | None = None


class PagerDutyChangeEvent(BaseModel):
    """PagerDuty change event."""

    routing_key: str
    payload: PagerDutyChangePayload
    links: list[LinkIn] = []


class PagerDutyAccepted(BaseModel):
    status: str = "success"
    message: str = "Event processed"
    dedup_key: str | None = None


class PagerDutyInvalidEvent(BaseModel):
    """PagerDuty's response to an invalid event, which its client libraries read."""

    status: str = "invalid event"
    message: str = "Event object is invalid"
    errors: list[str]


class OpsgenieCreateAlert(BaseModel):
    """Opsgenie Alert API create-alert body."""

    message: str = Field(description="The alert's title")
    alias: str | None = Field(default=None, max_length=512, description="The dedup key")
    description: str | None = None
    responders: list[dict[str, Any]] = []
    visibleTo: list[dict[str, Any]] = []
    actions: list[str] = []
    tags: list[str] = []
    details: dict[str, str] = {}
    entity: str | None = None
    source: str | None = None
    priority: Literal["P1", "P2", "P3", "P4", "P5"] = "P3"
    user: str | None = None
    note: str | None = None


class OpsgenieAlertAction(BaseModel):
    """Opsgenie close, acknowledge or add-note body."""

    user: str | None = None
    source: str | None = None
    note: str | None = Field(default=None, description="Required when adding a note")


class OpsgenieAccepted(BaseModel):
    result: str = "Request will be processed"
    took: float
    requestId: str


class HeartbeatAccepted(BaseModel):
    status: str = "ok"
    next_deadline_at: datetime = Field(
        description="A miss opens an incident if no ping arrives before this instant"
    )
    incidents_resolved: list[uuid.UUID] = Field(
        default_factory=list, description="Incidents of an earlier miss that this ping resolved"
    )


class EventRead(BaseModel):
    """One event received on an integration, as the event log keeps it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    integration_id: uuid.UUID
    service_id: uuid.UUID
    received_at: datetime
    action: str = Field(description="trigger, acknowledge, resolve, note or change")
    dedup_key: str
    outcome: str = Field(
        description="What the event did: alert.created, alert.updated, alert.resolved, "
        "incident.acknowledged, note.added, change.recorded, ignored.no_open_alert, "
        "ignored.stale, ignored.no_alert"
    )
    alert_id: uuid.UUID | None
    incident_id: uuid.UUID | None
    summary: str
    payload: dict[str, Any] = Field(description="The event as the sender posted it")


class ChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    service_id: uuid.UUID
    integration_id: uuid.UUID | None
    at: datetime = Field(description="When the change happened, by the sender's clock if given")
    received_at: datetime
    summary: str
    source: str | None
    custom_details: dict[str, Any]
    links: list[dict[str, Any]]


class SigningSecretCreated(BaseModel):
    signing_secret: str = Field(
        description="Shown only in this response. Sign each body: X-Tocsin-Signature: "
        "sha256=<hex HMAC-SHA256 of the raw body>"
    )


# Models that document bodies read as raw bytes; the OpenAPI document adds them to its components.
DOCUMENTED_BODIES = (
    AlertmanagerWebhook,
    GrafanaWebhook,
    GenericAlert,
    PagerDutyEvent,
    PagerDutyChangeEvent,
    PagerDutyInvalidEvent,
    OpsgenieCreateAlert,
    OpsgenieAlertAction,
)
