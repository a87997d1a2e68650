"""Turn heartbeat pings and missed intervals into events on one alert per integration.

A missed interval is a trigger of the alert ``HEARTBEAT_DEDUP_KEY``. A ping is a resolve of
the same alert, so the incident a miss opened closes with the next ping.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.core.text import truncate
from app.core.time import isoformat
from app.incidents.events import AlertEvent, EventAction, Severity
from app.ingest.parsers.common import IngestLimits, load_json_object, optional_str

HEARTBEAT_DEDUP_KEY = "heartbeat"


def parse(body: bytes, limits: IngestLimits) -> list[AlertEvent]:
    """Read a ping. The body may be empty, any text, or a JSON object with a ``message``."""
    message = ""
    if body.strip().startswith(b"{"):
        message = optional_str(load_json_object(body), "message", "") or ""
    return [
        AlertEvent(
            action=EventAction.resolve,
            dedup_key=HEARTBEAT_DEDUP_KEY,
            summary=truncate(message, limits.max_summary_length),
            raw={"message": message} if message else {},
        )
    ]


def missed(
    *,
    integration_name: str,
    last_ping_at: datetime,
    interval: timedelta,
    severity: Severity = Severity.critical,
) -> AlertEvent:
    """Build the trigger for a heartbeat whose last ping is older than its interval."""
    minutes = interval.total_seconds() / 60
    return AlertEvent(
        action=EventAction.trigger,
        dedup_key=HEARTBEAT_DEDUP_KEY,
        summary=f"Heartbeat {integration_name} missed: no ping since {isoformat(last_ping_at)}",
        severity=severity,
        source=integration_name,
        occurred_at=last_ping_at + interval,
        labels={"alertname": "HeartbeatMissed"},
        details={
            "last_ping_at": isoformat(last_ping_at),
            "interval_seconds": int(interval.total_seconds()),
            "interval_minutes": round(minutes, 2),
        },
        raw={"last_ping_at": isoformat(last_ping_at), "interval_seconds": interval.total_seconds()},
    )
