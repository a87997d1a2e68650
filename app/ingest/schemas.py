from __future__ import annotations

import uuid

from pydantic import BaseModel, Field


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
