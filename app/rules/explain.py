"""Explain how the rules classify a payload: the normalized events, every rule considered
with the conditions that matched or failed, the silences and windows, and the result.
Nothing is written."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import raw_connection
from app.core.errors import NotFound, Unprocessable
from app.core.time import utcnow
from app.incidents.events import EventAction
from app.ingest.parsers.common import IngestLimits, ParseError
from app.rules import service as rules_service
from app.rules.classify import live_until_resolved, matching_silences
from app.rules.engine import AlertFacts, RuleSet, evaluate
from app.rules.formats import available_formats
from app.rules.schemas import ExplainIn
from app.rules.snapshot import Snapshot, compile_stored_rules, current_snapshot
from app.services.models import Integration, Service


def limits_from(settings: Settings) -> IngestLimits:
    return IngestLimits(
        max_alerts=settings.ingest_max_alerts,
        max_labels=settings.ingest_max_labels,
        max_label_length=settings.ingest_max_label_length,
        max_summary_length=settings.ingest_max_summary_length,
    )


async def _source(
    session: AsyncSession, body: ExplainIn
) -> tuple[Service, Integration | None, str]:
    integration = None
    if body.integration_id is not None:
        integration = await session.get(Integration, body.integration_id)
        if integration is None:
            raise NotFound(
                f"Integration {body.integration_id} does not exist.", field="integration_id"
            )
        service = await session.get(Service, integration.service_id)
    elif body.service_id is not None:
        service = await session.get(Service, body.service_id)
    else:
        raise Unprocessable(
            "Give integration_id, or service_id with format, to say where the payload arrives.",
            field="integration_id",
        )
    if service is None:
        raise NotFound(f"Service {body.service_id} does not exist.", field="service_id")
    payload_format = body.format or (integration.kind if integration else None)
    formats = available_formats()
    if payload_format is None or payload_format not in formats:
        names = ", ".join(sorted(formats))
        raise Unprocessable(
            f"Unknown or missing format {payload_format!r}; use one of {names}.", field="format"
        )
    return service, integration, payload_format


async def _rule_set(session: AsyncSession, body: ExplainIn) -> RuleSet:
    matrix, _ = await rules_service.get_matrix(session)
    if body.rules is not None:
        specs = rules_service.draft_specs(body.rules)
    else:
        specs = await rules_service.stored_rule_specs(session)
    # Compiling up to a thousand draft rules, and evaluating them below, runs in a thread,
    # so a large draft or payload delays this request, not every request.
    rules = await asyncio.to_thread(compile_stored_rules, specs)
    return RuleSet.build(rules, matrix)


async def explain(session: AsyncSession, body: ExplainIn, settings: Settings) -> dict[str, Any]:
    service, integration, payload_format = await _source(session, body)
    raw = json.dumps(body.payload, ensure_ascii=False).encode()
    try:
        events = available_formats()[payload_format](raw, limits_from(settings))
    except ParseError as exc:
        field = f"payload.{exc.field}" if exc.field != "body" else "payload"
        raise Unprocessable(f"{field}: {exc.message}", field=field) from exc
    rule_set = await _rule_set(session, body)
    connection = await raw_connection(session)
    snapshot = await current_snapshot(connection)
    at = body.at or utcnow()

    explained = []
    for event in events:
        facts = AlertFacts.from_event(
            event,
            integration=integration.name if integration else "",
            integration_kind=payload_format,
            service_id=service.id,
            service=service.name,
        )
        evaluation = await asyncio.to_thread(evaluate, rule_set, facts, at, explain=True)
        decision = evaluation.decision
        silences, window = await _holds(connection, snapshot, facts, decision.service_id, at)
        explained.append(
            {
                "event": facts.to_document(),
                "rules": [trace.to_document() for trace in evaluation.trace],
                "decision": decision.to_document(),
                "silences": silences,
                "maintenance_window": window,
                "pages": event.action == EventAction.trigger
                and not (decision.dropped or decision.suppressed or silences or window),
            }
        )
    return {
        "format": payload_format,
        "service_id": service.id,
        "integration_id": integration.id if integration else None,
        "at": at,
        "events": explained,
    }


async def _holds(
    connection: Any, snapshot: Snapshot, facts: AlertFacts, service_id: Any, at: datetime
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    found = matching_silences(snapshot, facts, service_id, at)
    pending = {silence.id for silence in found if silence.until_resolved}
    live = await live_until_resolved(connection, pending, at, expire=False)
    silences = [
        {
            "id": silence.id,
            "comment": silence.comment,
            "created_by": silence.created_by,
            "ends_at": silence.ends_at,
            "until_resolved": silence.until_resolved,
        }
        for silence in found
        if not silence.until_resolved or silence.id in live
    ]
    window = snapshot.active_window(service_id, at)
    if window is None:
        return silences, None
    occurrence = window.occurrence_at(at)
    assert occurrence is not None
    return silences, {"id": window.id, "name": window.name, "ends_at": occurrence.ends_at}
