"""Paging jobs: run escalation steps, send resolved notices, deliver notifications.

Every handler may run more than once for the same job (delivery is at least once), so
each one checks the current state under a row lock and writes idempotently.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.actions.links import action_links, reply_codes
from app.core.config import Settings
from app.core.db import raw_connection
from app.core.ids import uuid7
from app.core.logging import get_logger
from app.core.security import SecretBox
from app.core.time import isoformat, utcnow
from app.escalation import dispatch, engine
from app.escalation import service as escalation_service
from app.escalation import timeline as escalation_timeline
from app.incidents.models import Incident, IncidentStatus, IncidentSubscriber
from app.incidents.repository import escalation_job, insert_timeline
from app.jobs.queue import enqueue
from app.notify import delivery, throttle
from app.notify.base import DeliveryResult, Message, Notifier
from app.notify.models import Notification, NotificationStatus
from app.notify.registry import notifier_events
from app.oncall import notification_rules
from app.oncall import service as oncall
from app.oncall.models import ContactMethod, User
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


def build_message(
    settings: Settings,
    *,
    incident: Incident,
    service: Service,
    event: str,
    recipient: dict[str, Any],
    idempotency_key: str,
    escalation_step: int | None = None,
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
            "reply_codes": reply_codes(incident, escalation_step=escalation_step),
        },
        recipient=recipient,
        links=action_links(
            settings, incident=incident, recipient=recipient, escalation_step=escalation_step
        ),
    )


async def _load_policy_snapshot(
    session: AsyncSession, incident: Incident, service: Service
) -> dict[str, Any] | None:
    policy_id = incident.escalation_policy_id or service.escalation_policy_id
    return await escalation_service.load_snapshot(session, policy_id)


async def run_escalation_step(
    context: PagingContext, incident_id: uuid.UUID, step: int, epoch: int = 0
) -> None:
    """Page the targets of step ``step`` if the incident is still triggered at that step.

    ``epoch`` is the incident's escalation epoch when the step was scheduled. When
    escalation has started over since (acknowledgement timeout, end of a snooze, reopen),
    the epoch differs and the step is stale.
    """
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
        if incident.escalation_epoch != epoch:
            log.info(
                "escalation.skipped",
                incident_id=str(incident_id),
                step=step,
                reason=f"escalation started over (epoch {incident.escalation_epoch})",
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
            epoch=epoch,
        ):
            return
        service = await session.get(Service, incident.service_id)
        assert service is not None  # incidents are deleted with their service
        if incident.escalation_snapshot is None:
            incident.escalation_snapshot = await _load_policy_snapshot(session, incident, service)
        await _page_step(context, session, incident, service, step, incident.escalation_position)


async def _page_step(
    context: PagingContext,
    session: AsyncSession,
    incident: Incident,
    service: Service,
    step: int,
    position: int,
) -> None:
    connection = await raw_connection(session)
    now = utcnow()
    frozen = incident.escalation_snapshot
    plan = engine.plan_step(frozen, position) if frozen else None
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

    targets = await oncall.resolve_targets(session, plan.targets, at=now)
    plans = await notification_rules.plan_users(
        session,
        targets.user_ids,
        urgency=incident.urgency,
        reachability=dispatch.reachability_of(context.notifiers),
    )
    reachable = [plan for plan in plans if plan.reachable]
    paged = await dispatch.page_users(
        connection,
        reachable,
        incident_id=incident.id,
        step=step,
        # The epoch makes a restarted escalation page again instead of matching old keys.
        key_prefix=f"{incident.id}:incident.triggered:{incident.escalation_epoch}:{step}",
        message_for=_message_factory(context, incident, service, position),
    )

    level_name = f"level {plan.level_index + 1}" + (f" (repeat {plan.cycle})" if plan.cycle else "")
    entries = escalation_timeline.step_entries(
        incident.id, level_name, step, targets.skipped, plans, last=plan.next_step_delay is None
    )
    await insert_timeline(connection, entries, actor=SYSTEM_ACTOR, now=now)
    if not reachable:
        log.warning(
            "escalation.level_empty",
            incident_id=str(incident.id),
            step=step,
            level=plan.level_index + 1,
            skipped_targets=len(targets.skipped),
            last=plan.next_step_delay is None,
        )

    incident.escalation_step = step + 1
    incident.escalation_position = position + 1
    if plan.next_step_delay is not None:
        # An empty level must not leave the incident unpaged for a whole delay. A repeat
        # of the policy still waits the last level's delay, so that a level left empty
        # by a schedule gap does not use up every repeat at once.
        ends_cycle = frozen is not None and plan.level_index == len(frozen["levels"]) - 1
        delay = plan.next_step_delay if reachable or ends_cycle else None
        await enqueue(
            connection,
            [escalation_job(incident.id, step + 1, incident.escalation_epoch, delay)],
        )
    log.info(
        "escalation.step",
        incident_id=str(incident.id),
        step=step,
        position=position,
        users=len(reachable),
        notifications=paged.notifications,
        rule_steps=paged.scheduled_steps,
    )


def _message_factory(
    context: PagingContext, incident: Incident, service: Service, position: int | None = None
) -> dispatch.MessageFactory:
    """Build pages for one escalation position; the position decides the escalate link."""

    def message_for(user: User, method: ContactMethod, key: str) -> Message:
        return build_message(
            context.settings,
            incident=incident,
            service=service,
            event="incident.triggered",
            recipient={"user_id": str(user.id), "name": user.name, "role": user.role},
            idempotency_key=key,
            escalation_step=position,
        )

    return message_for


async def run_notification_rule_step(context: PagingContext, payload: dict[str, Any]) -> None:
    """Send a paged user's delayed rule step if the incident is still triggered."""
    incident_id = uuid.UUID(payload["incident_id"])
    async with context.sessionmaker() as session, session.begin():
        incident = await session.scalar(
            select(Incident).where(Incident.id == incident_id).with_for_update()
        )
        if incident is None or incident.status != IncidentStatus.triggered:
            log.info(
                "notification_rule.skipped", incident_id=str(incident_id), reason="not triggered"
            )
            return
        service = await session.get(Service, incident.service_id)
        assert service is not None
        await dispatch.run_rule_step(
            session,
            await raw_connection(session),
            payload,
            incident_id=incident.id,
            reachability=dispatch.reachability_of(context.notifiers),
            message_for=_message_factory(context, incident, service),
        )


# The incident states in which a notice about each event is still true.
NOTICE_STATES = {
    "incident.acknowledged": (IncidentStatus.acknowledged,),
    "incident.resolved": (IncidentStatus.resolved, IncidentStatus.closed),
}


async def send_status_notices(
    context: PagingContext, incident_id: uuid.UUID, event: str = "incident.resolved"
) -> None:
    """Tell everyone who got a page for the incident that it is acknowledged or resolved.

    Each notice carries the external reference of the first page to that contact method
    (Message.thread), so chat notifiers can update that message. Notifiers whose
    ``events`` leave out ``event`` get no notice.
    """
    async with context.sessionmaker() as session, session.begin():
        incident = await session.get(Incident, incident_id)
        if incident is None or incident.status not in NOTICE_STATES[event]:
            return
        service = await session.get(Service, incident.service_id)
        assert service is not None
        connection = await raw_connection(session)
        if event == "incident.resolved":
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
                    Notification.external_ref,
                )
                .where(
                    Notification.incident_id == incident_id,
                    Notification.event == "incident.triggered",
                    Notification.status == NotificationStatus.sent,
                )
                .ext(distinct_on(Notification.contact_method_id))
                .order_by(Notification.contact_method_id, Notification.created_at)
            )
        ).all()
        specs = []
        noticed: set[uuid.UUID] = set()
        # The state change's time keeps keys unique per change and stable across job retries.
        changed_at = incident.updated_at.timestamp()
        for user_id, method_id, notifier, message, external_ref in paged:
            # One notice per contact method, threaded on its first page.
            if method_id is None or method_id in noticed:
                continue
            noticed.add(method_id)
            if event not in notifier_events(context.notifiers.get(notifier)):
                continue
            specs.append(
                delivery.NotificationSpec(
                    incident_id=incident_id,
                    user_id=user_id,
                    contact_method_id=method_id,
                    notifier=notifier,
                    event=event,
                    escalation_step=None,
                    message=replace(
                        build_message(
                            context.settings,
                            incident=incident,
                            service=service,
                            event=event,
                            recipient=message["recipient"],
                            idempotency_key=f"{incident_id}:{event}:{changed_at}:{method_id}",
                        ),
                        thread=external_ref,
                    ),
                )
            )
        notified = {spec.contact_method_id for spec in specs}
        specs += await _subscriber_specs(session, context, incident, service, event, notified)
        await delivery.create_notifications(connection, specs)


async def _subscriber_specs(
    session: AsyncSession,
    context: PagingContext,
    incident: Incident,
    service: Service,
    event: str,
    skip_methods: set[uuid.UUID],
) -> list[delivery.NotificationSpec]:
    user_ids = list(
        (
            await session.scalars(
                select(IncidentSubscriber.user_id).where(
                    IncidentSubscriber.incident_id == incident.id
                )
            )
        ).all()
    )
    specs = []
    # The state-change time keeps the key unique per change but stable across job retries.
    changed_at = incident.updated_at.timestamp()
    for person in await oncall.responders(session, user_ids):
        for method in person.contact_methods:
            if method.id in skip_methods:
                continue
            recipient = {
                "user_id": str(person.user.id),
                "name": person.user.name,
                "role": person.user.role,
            }
            specs.append(
                delivery.NotificationSpec(
                    incident_id=incident.id,
                    user_id=person.user.id,
                    contact_method_id=method.id,
                    notifier=method.kind,
                    event=event,
                    escalation_step=None,
                    message=build_message(
                        context.settings,
                        incident=incident,
                        service=service,
                        event=event,
                        recipient=recipient,
                        idempotency_key=f"{incident.id}:{event}:{changed_at}:{method.id}",
                    ),
                )
            )
    return specs


async def deliver_notification(context: PagingContext, notification_id: uuid.UUID) -> None:
    """Make one delivery attempt; the HTTP call runs outside any database transaction."""
    async with context.sessionmaker() as session, session.begin():
        notification = await delivery.load_pending(session, notification_id)
        if notification is None:
            return
        incident = (
            await session.get(Incident, notification.incident_id)
            if notification.incident_id
            else None
        )
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
        if await hold_if_throttled(context, session, notification, prepared):
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
        # A failed page does not move this user's notification rules forward: their later
        # rule steps and the escalation's next level still run on their own timers.
        if prepared.incident_id and status in (NotificationStatus.sent, NotificationStatus.failed):
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


async def hold_if_throttled(
    context: PagingContext,
    session: AsyncSession,
    notification: Notification,
    prepared: delivery.PreparedDelivery,
) -> bool:
    """Take a throttle slot for the notification, or hold it for a digest with a timeline entry."""
    limits = throttle.limits_for(
        prepared.target.kind, prepared.target.settings, context.settings.notifiers
    )
    now = utcnow()
    free_at = await throttle.reserve_slot(session, notification, limits, now)
    if free_at is None:
        return False
    await throttle.hold(session, notification, limits, free_at, now)
    if notification.incident_id is not None:
        recipient = prepared.message.recipient.get("name", "?")
        await insert_timeline(
            await raw_connection(session),
            [
                (
                    notification.incident_id,
                    "notification.throttled",
                    f"Notification to {recipient} by {prepared.target.kind} held back by the "
                    "rate limit; a digest will summarise it",
                    {"notification_id": str(notification.id), "event": notification.event},
                )
            ],
            actor=SYSTEM_ACTOR,
            now=now,
        )
    return True
