"""Paging jobs: run escalation steps, send resolved notices, deliver notifications.

Every handler may run more than once for the same job (delivery is at least once), so
each one checks the current state under a row lock and writes idempotently.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import raw_connection
from app.core.ids import uuid7
from app.core.logging import get_logger
from app.core.security import SecretBox
from app.core.time import isoformat, utcnow
from app.escalation import engine
from app.escalation.models import EscalationLevel, EscalationPolicy
from app.incidents.ingest import insert_timeline
from app.incidents.models import Incident, IncidentStatus
from app.jobs.queue import ESCALATION_STEP, Job, enqueue
from app.notify import delivery
from app.notify.base import DeliveryResult, Message, Notifier
from app.notify.models import Notification, NotificationStatus
from app.oncall import service as oncall
from app.rules.holds import hold_escalation
from app.services.models import Service

log = get_logger(__name__)

SYSTEM_ACTOR: dict[str, Any] = {"type": "system", "id": None, "name": "Tocsin"}


@dataclass(frozen=True, slots=True)
class PagingContext:
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    notifiers: dict[str, Notifier]
    box: SecretBox


def escalation_job(incident_id: uuid.UUID, step: int, delay: Any = None) -> Job:
    return Job(
        ESCALATION_STEP,
        {"incident_id": incident_id, "step": step},
        delay=delay,
        dedupe_key=f"{ESCALATION_STEP}:{incident_id}:{step}",
    )


def build_message(
    settings: Settings,
    *,
    incident: Incident,
    service: Service,
    event: str,
    recipient: dict[str, Any],
    idempotency_key: str,
) -> Message:
    base = settings.public_base_url
    return Message(
        notification_id=str(uuid7()),
        idempotency_key=idempotency_key,
        event=event,
        incident={
            "id": str(incident.id),
            "number": incident.number,
            "title": incident.title,
            "status": incident.status,
            "priority": incident.priority,
            "urgency": incident.urgency,
            "severity": incident.severity,
            "alert_count": incident.alert_count,
            "service": {"id": str(service.id), "name": service.name},
            "created_at": isoformat(incident.created_at),
            "url": f"{base}/v1/incidents/{incident.id}",
        },
        recipient=recipient,
        links={"view": f"{base}/v1/incidents/{incident.id}"},
    )


async def _load_policy_snapshot(
    session: AsyncSession, incident: Incident, service: Service
) -> dict[str, Any] | None:
    policy_id = incident.escalation_policy_id or service.escalation_policy_id
    if policy_id is None:
        return None
    policy = await session.get(EscalationPolicy, policy_id)
    if policy is None:
        return None
    levels = (
        await session.scalars(select(EscalationLevel).where(EscalationLevel.policy_id == policy.id))
    ).all()
    return engine.snapshot(policy, list(levels))


async def run_escalation_step(context: PagingContext, incident_id: uuid.UUID, step: int) -> None:
    """Page the targets of step ``step`` if the incident is still triggered at that step."""
    async with context.sessionmaker() as session, session.begin():
        incident = await session.scalar(
            select(Incident).where(Incident.id == incident_id).with_for_update()
        )
        if incident is None or incident.status != IncidentStatus.triggered:
            log.info(
                "escalation.skipped",
                incident_id=str(incident_id),
                step=step,
                reason="incident is not triggered",
            )
            return
        if incident.escalation_step != step:
            log.info(
                "escalation.skipped",
                incident_id=str(incident_id),
                step=step,
                reason=f"superseded by step {incident.escalation_step}",
            )
            return
        if await hold_escalation(
            await raw_connection(session),
            incident_id=incident.id,
            service_id=incident.service_id,
            step=step,
        ):
            return
        service = await session.get(Service, incident.service_id)
        assert service is not None  # incidents are deleted with their service
        if incident.escalation_snapshot is None:
            incident.escalation_snapshot = await _load_policy_snapshot(session, incident, service)
        await _page_step(context, session, incident, service, step)


async def _page_step(
    context: PagingContext,
    session: AsyncSession,
    incident: Incident,
    service: Service,
    step: int,
) -> None:
    connection = await raw_connection(session)
    now = utcnow()
    frozen = incident.escalation_snapshot
    plan = engine.plan_step(frozen, step) if frozen else None
    if plan is None:
        if step == 0:
            await insert_timeline(
                connection,
                [
                    (
                        incident.id,
                        "escalation.no_policy",
                        f"Nobody paged: service '{service.name}' has no escalation policy",
                        {},
                    )
                ],
                actor=SYSTEM_ACTOR,
                now=now,
            )
            log.warning(
                "escalation.no_policy", incident_id=str(incident.id), service_id=str(service.id)
            )
        return

    targets = await oncall.resolve_targets(session, plan.targets)
    people = await oncall.responders(session, targets.user_ids)
    specs = []
    for person in people:
        for method in person.contact_methods:
            key = f"{incident.id}:incident.triggered:{step}:{method.id}"
            message = build_message(
                context.settings,
                incident=incident,
                service=service,
                event="incident.triggered",
                recipient={"user_id": str(person.user.id), "name": person.user.name},
                idempotency_key=key,
            )
            specs.append(
                delivery.NotificationSpec(
                    incident_id=incident.id,
                    user_id=person.user.id,
                    contact_method_id=method.id,
                    notifier=method.kind,
                    event="incident.triggered",
                    escalation_step=step,
                    message=message,
                )
            )
    await delivery.create_notifications(connection, specs)

    level_name = f"level {plan.level_index + 1}" + (f" (repeat {plan.cycle})" if plan.cycle else "")
    entries: list[tuple[uuid.UUID, str, str, dict[str, Any]]] = []
    for target, reason in targets.skipped:
        entries.append(
            (
                incident.id,
                "escalation.target_skipped",
                f"Skipped a target of {level_name}: {reason}",
                {"target": target},
            )
        )
    reachable = [p for p in people if p.contact_methods]
    if reachable:
        names = ", ".join(
            f"{p.user.name} ({', '.join(m.kind for m in p.contact_methods)})" for p in reachable
        )
        entries.append(
            (
                incident.id,
                "escalation.paged",
                f"Paged {level_name}: {names}",
                {"step": step, "users": [str(p.user.id) for p in reachable]},
            )
        )
    else:
        entries.append(
            (
                incident.id,
                "escalation.level_empty",
                f"Nobody reachable at {level_name}; moving to the next level",
                {"step": step},
            )
        )
    await insert_timeline(connection, entries, actor=SYSTEM_ACTOR, now=now)

    incident.escalation_step = step + 1
    if plan.next_step_delay is not None:
        # An empty level must not leave the incident unpaged for a whole delay.
        delay = plan.next_step_delay if reachable else None
        await enqueue(connection, [escalation_job(incident.id, step + 1, delay)])
    log.info(
        "escalation.step",
        incident_id=str(incident.id),
        step=step,
        users=len(reachable),
        notifications=len(specs),
    )


async def send_resolved_notices(context: PagingContext, incident_id: uuid.UUID) -> None:
    """Tell everyone who got a page for the incident that it is resolved."""
    async with context.sessionmaker() as session, session.begin():
        incident = await session.get(Incident, incident_id)
        if incident is None or incident.status not in (
            IncidentStatus.resolved,
            IncidentStatus.closed,
        ):
            return
        service = await session.get(Service, incident.service_id)
        assert service is not None
        connection = await raw_connection(session)
        # Pages still waiting for a retry are moot now.
        await connection.execute(
            """
            UPDATE notifications SET status = 'cancelled', updated_at = now(),
                   last_error = 'incident resolved before delivery'
            WHERE incident_id = $1 AND event = 'incident.triggered'
              AND status IN ('pending', 'retrying')
            """,
            incident_id,
        )
        paged = (
            await session.execute(
                select(
                    Notification.user_id,
                    Notification.contact_method_id,
                    Notification.notifier,
                    Notification.message,
                )
                .where(
                    Notification.incident_id == incident_id,
                    Notification.event == "incident.triggered",
                    Notification.status == NotificationStatus.sent,
                )
                .distinct(Notification.contact_method_id)
            )
        ).all()
        specs = []
        for user_id, method_id, notifier, message in paged:
            if method_id is None:
                continue
            specs.append(
                delivery.NotificationSpec(
                    incident_id=incident_id,
                    user_id=user_id,
                    contact_method_id=method_id,
                    notifier=notifier,
                    event="incident.resolved",
                    escalation_step=None,
                    message=build_message(
                        context.settings,
                        incident=incident,
                        service=service,
                        event="incident.resolved",
                        recipient=message["recipient"],
                        idempotency_key=f"{incident_id}:incident.resolved:{method_id}",
                    ),
                )
            )
        await delivery.create_notifications(connection, specs)


async def deliver_notification(context: PagingContext, notification_id: uuid.UUID) -> None:
    """Make one delivery attempt; the HTTP call runs outside any database transaction."""
    async with context.sessionmaker() as session, session.begin():
        notification = await delivery.load_pending(session, notification_id)
        if notification is None:
            return
        incident = await session.get(Incident, notification.incident_id)
        if (
            notification.event == "incident.triggered"
            and incident is not None
            and incident.status != IncidentStatus.triggered
        ):
            notification.status = NotificationStatus.cancelled
            notification.last_error = f"incident {incident.status} before delivery"
            log.info(
                "delivery.cancelled",
                notification_id=str(notification_id),
                reason=notification.last_error,
            )
            return
        prepared = await delivery.prepare(session, notification, context.box)
        if isinstance(prepared, str):
            notification.status = NotificationStatus.cancelled
            notification.last_error = prepared
            return

    notifier = context.notifiers.get(prepared.target.kind)
    if notifier is None:
        result = DeliveryResult(
            ok=False, error=f"no notifier named {prepared.target.kind!r} is installed"
        )
        duration_ms = 0
    else:
        result, duration_ms = await delivery.attempt_delivery(notifier, prepared)

    async with context.sessionmaker() as session, session.begin():
        status = await delivery.record_attempt(
            session,
            prepared,
            result,
            duration_ms,
            max_attempts=context.settings.delivery_max_attempts,
        )
        if status in (NotificationStatus.sent, NotificationStatus.failed):
            recipient = prepared.message.recipient.get("name", "?")
            text = (
                f"Notified {recipient} by {prepared.target.kind}"
                if status == NotificationStatus.sent
                else f"Notification to {recipient} by {prepared.target.kind} failed after "
                f"{prepared.attempt} attempts: {result.error}"
            )
            await insert_timeline(
                await raw_connection(session),
                [
                    (
                        prepared.incident_id,
                        f"notification.{status}",
                        text,
                        {"notification_id": str(prepared.notification_id), "event": prepared.event},
                    )
                ],
                actor=SYSTEM_ACTOR,
                now=utcnow(),
            )
