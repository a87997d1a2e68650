"""Find the integration an ingest request is for, by its key."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.core.errors import BadRequest, NotFound, Unauthorized
from app.core.security import hash_key
from app.incidents.ingest import LIFECYCLE_COLUMNS, IntegrationContext, lifecycle_from_row
from app.rules.snapshot import REVISION_COLUMN

# The endpoint each format posts to, for error messages that tell the sender where to go.
ENDPOINTS = {
    "alertmanager": "POST /ingest/alertmanager/{key}",
    "grafana": "POST /ingest/grafana/{key}",
    "pagerduty": "POST /v2/enqueue with routing_key",
    "opsgenie": "POST /v2/alerts with Authorization: GenieKey {key}",
    "generic": "POST /ingest/generic/{key}",
    "heartbeat": "POST /ingest/heartbeat/{key}",
}

_SELECT_INTEGRATION = f"""
SELECT i.id, i.name, i.kind, i.enabled, i.settings, i.signing_secret_encrypted,
       s.id AS service_id, s.name AS service_name, s.escalation_policy_id,
       {LIFECYCLE_COLUMNS},
       {REVISION_COLUMN}
FROM integrations i JOIN services s ON s.id = i.service_id
"""  # noqa: S608 (both columns lists are constants)


@dataclass(frozen=True, slots=True)
class ResolvedIntegration:
    """An integration found by its key: what ingest needs, plus its per-format settings."""

    context: IntegrationContext
    enabled: bool
    settings: dict[str, Any] = field(default_factory=dict)
    signing_secret_encrypted: str | None = None
    # The classification rules' revision token, read in the same statement.
    rule_revision: uuid.UUID | None = None


def _resolved(row: asyncpg.Record) -> ResolvedIntegration:
    settings = row["settings"]
    if isinstance(settings, str):
        settings = json.loads(settings)
    return ResolvedIntegration(
        context=IntegrationContext(
            integration_id=row["id"],
            integration_name=row["name"],
            kind=row["kind"],
            service_id=row["service_id"],
            service_name=row["service_name"],
            escalation_policy_id=row["escalation_policy_id"],
            lifecycle=lifecycle_from_row(row),
        ),
        enabled=row["enabled"],
        settings=settings or {},
        signing_secret_encrypted=row["signing_secret_encrypted"],
        rule_revision=row["rule_revision"],
    )


async def load_integration(
    connection: asyncpg.Connection, integration_id: uuid.UUID
) -> ResolvedIntegration | None:
    """Load an integration by id, for jobs that act on its behalf."""
    row = await connection.fetchrow(_SELECT_INTEGRATION + "WHERE i.id = $1", integration_id)
    return None if row is None else _resolved(row)


async def resolve_integration(
    connection: asyncpg.Connection, key: str, *, kind: str
) -> IntegrationContext:
    """Return the enabled integration of ``kind`` that has ``key``, or raise a 4xx error."""
    return (await find_integration(connection, key, kind=kind)).context


async def find_integration(
    connection: asyncpg.Connection, key: str, *, kind: str
) -> ResolvedIntegration:
    """Return the enabled integration of ``kind`` that has ``key`` with its settings.

    Raises 404 for an unknown key, 401 for a disabled integration and 400 for a key of
    another format, naming the endpoint that format posts to.
    """
    row = await connection.fetchrow(_SELECT_INTEGRATION + "WHERE i.key_hash = $1", hash_key(key))
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
            f"This key belongs to {_with_article(row['kind'])} integration, not {kind}; "
            f"send its events with {ENDPOINTS[row['kind']]}.",
            field="integration_key",
        )
    return _resolved(row)


def _with_article(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"
