"""Find the integration an ingest request is for, by its key."""

from __future__ import annotations

import asyncpg

from app.core.errors import BadRequest, NotFound, Unauthorized
from app.core.security import hash_key
from app.incidents.grouping import GroupingSettings
from app.incidents.ingest import IntegrationContext, LifecycleSettings

# The endpoint each format posts to, for error messages that tell the sender where to go.
ENDPOINTS = {
    "alertmanager": "POST /ingest/alertmanager/{key}",
    "grafana": "POST /ingest/grafana/{key}",
    "pagerduty": "POST /v2/enqueue with routing_key",
    "opsgenie": "POST /v2/alerts with Authorization: GenieKey {key}",
    "generic": "POST /ingest/generic/{key}",
    "heartbeat": "POST /ingest/heartbeat/{key}",
}


async def resolve_integration(
    connection: asyncpg.Connection, key: str, *, kind: str
) -> IntegrationContext:
    """Return the enabled integration of ``kind`` that has ``key``, or raise a 4xx error."""
    row = await connection.fetchrow(
        """
        SELECT i.id, i.name, i.kind, i.enabled,
               s.id AS service_id, s.name AS service_name, s.escalation_policy_id,
               s.grouping_mode, s.grouping_fields, s.grouping_window_seconds,
               s.alert_threshold_count, s.alert_threshold_window_seconds,
               s.flap_threshold, s.flap_window_seconds, s.flap_settle_seconds,
               s.reopen_window_seconds, s.acknowledge_timeout_seconds
        FROM integrations i JOIN services s ON s.id = i.service_id
        WHERE i.key_hash = $1
        """,
        hash_key(key),
    )
    if row is None:
        raise NotFound(
            "No integration has this key. Check the URL; `tocsin demo --json` or "
            "GET /v1/services/{id}/integrations lists integrations.",
            field="integration_key",
        )
    if not row["enabled"]:
        raise Unauthorized(
            f"The integration '{row['name']}' is disabled; enable it to accept events.",
            field="integration_key",
        )
    if row["kind"] != kind:
        raise BadRequest(
            f"This key belongs to a {row['kind']} integration, not {kind}; "
            f"send its events with {ENDPOINTS[row['kind']]}.",
            field="integration_key",
        )
    return IntegrationContext(
        integration_id=row["id"],
        integration_name=row["name"],
        kind=row["kind"],
        service_id=row["service_id"],
        service_name=row["service_name"],
        escalation_policy_id=row["escalation_policy_id"],
        lifecycle=LifecycleSettings(
            grouping=GroupingSettings(
                mode=row["grouping_mode"],
                fields=tuple(row["grouping_fields"] or ()),
                window_seconds=row["grouping_window_seconds"],
            ),
            threshold_count=row["alert_threshold_count"],
            threshold_window_seconds=row["alert_threshold_window_seconds"],
            flap_threshold=row["flap_threshold"],
            flap_window_seconds=row["flap_window_seconds"],
            flap_settle_seconds=row["flap_settle_seconds"],
            reopen_window_seconds=row["reopen_window_seconds"],
            acknowledge_timeout_seconds=row["acknowledge_timeout_seconds"],
        ),
    )
