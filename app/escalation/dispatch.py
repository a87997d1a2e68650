"""Page users by their notification rules: notifications now, durable jobs for later rules.

The caller (the incidents domain) decides that users are paged and how a message reads.
This module turns each user's rule steps into notifications, and into
``notification.rule_step`` jobs due after the rule's delay. A rule-step job acts only if
the incident is still triggered when it fires, so acknowledge and resolve cancel it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.queue import NOTIFICATION_RULE_STEP, Job, enqueue
from app.notify import delivery
from app.notify.base import Message
from app.notify.registry import supports_verification
from app.oncall.models import ContactMethod, User
from app.oncall.notification_rules import Reachability, UserPlan

# Build the message of one page: (user, contact method, idempotency key) -> Message.
MessageFactory = Callable[[User, ContactMethod, str], Message]


def reachability_of(notifiers: Mapping[str, object]) -> Reachability:
    """Return the reachability rules for the notifiers a worker has loaded."""
    return Reachability(
        installed_kinds=frozenset(notifiers),
        verifying_kinds=frozenset(
            kind for kind, notifier in notifiers.items() if supports_verification(notifier)
        ),
    )


def idempotency_key(key_prefix: str, method_id: uuid.UUID, delay_minutes: int) -> str:
    # Rules without delay keep the plain key, so a receiver gets one key per page.
    suffix = f":+{delay_minutes}m" if delay_minutes else ""
    return f"{key_prefix}:{method_id}{suffix}"


def rule_step_job(
    *,
    incident_id: uuid.UUID,
    user_id: uuid.UUID,
    step: int,
    key_prefix: str,
    delay_minutes: int,
    method_ids: Sequence[uuid.UUID],
) -> Job:
    return Job(
        NOTIFICATION_RULE_STEP,
        {
            "incident_id": incident_id,
            "user_id": user_id,
            "step": step,
            "key_prefix": key_prefix,
            "delay_minutes": delay_minutes,
            "contact_method_ids": [str(method_id) for method_id in method_ids],
        },
        delay=timedelta(minutes=delay_minutes),
        dedupe_key=f"{NOTIFICATION_RULE_STEP}:{key_prefix}:{user_id}:{delay_minutes}",
    )


def rule_step_dedupe_prefix(incident_id: uuid.UUID) -> str:
    """Return the dedupe-key prefix shared by every rule-step job of an incident."""
    return f"{NOTIFICATION_RULE_STEP}:{incident_id}:"


@dataclass(frozen=True, slots=True)
class PageResult:
    notifications: int
    scheduled_steps: int


async def page_users(
    connection: asyncpg.Connection,
    plans: Sequence[UserPlan],
    *,
    incident_id: uuid.UUID,
    step: int,
    key_prefix: str,
    message_for: MessageFactory,
) -> PageResult:
    """Create the notifications of each user's first rule step; schedule the later steps.

    ``key_prefix`` must start with the incident id, so that every notification and job
    of the incident shares it and a repeated job creates nothing twice.
    """
    specs = []
    jobs = []
    for plan in plans:
        for rule_step in plan.steps:
            if rule_step.delay_minutes == 0:
                for method_id in rule_step.contact_method_ids:
                    method = plan.methods[method_id]
                    key = idempotency_key(key_prefix, method_id, 0)
                    specs.append(
                        _spec(
                            incident_id,
                            plan.user,
                            method,
                            step,
                            message_for(plan.user, method, key),
                        )
                    )
            else:
                jobs.append(
                    rule_step_job(
                        incident_id=incident_id,
                        user_id=plan.user.id,
                        step=step,
                        key_prefix=key_prefix,
                        delay_minutes=rule_step.delay_minutes,
                        method_ids=rule_step.contact_method_ids,
                    )
                )
    created = await delivery.create_notifications(connection, specs)
    await enqueue(connection, jobs)
    return PageResult(notifications=len(created), scheduled_steps=len(jobs))


async def run_rule_step(
    session: AsyncSession,
    connection: asyncpg.Connection,
    payload: dict[str, Any],
    *,
    incident_id: uuid.UUID,
    reachability: Reachability,
    message_for: MessageFactory,
) -> int:
    """Create the notifications of a delayed rule step; return how many were created.

    The caller has checked that the incident is still triggered. Contact methods deleted
    or made unusable since the page was planned are left out.
    """
    user = await session.get(User, uuid.UUID(payload["user_id"]))
    if user is None:
        return 0
    method_ids = [uuid.UUID(value) for value in payload["contact_method_ids"]]
    methods = (
        await session.scalars(select(ContactMethod).where(ContactMethod.id.in_(method_ids)))
    ).all()
    delay = int(payload["delay_minutes"])
    specs = []
    for method in sorted(methods, key=lambda m: method_ids.index(m.id)):
        if not reachability.usable(method):
            continue
        key = idempotency_key(payload["key_prefix"], method.id, delay)
        specs.append(
            _spec(incident_id, user, method, int(payload["step"]), message_for(user, method, key))
        )
    return len(await delivery.create_notifications(connection, specs))


def _spec(
    incident_id: uuid.UUID, user: User, method: ContactMethod, step: int, message: Message
) -> delivery.NotificationSpec:
    return delivery.NotificationSpec(
        incident_id=incident_id,
        user_id=user.id,
        contact_method_id=method.id,
        notifier=method.kind,
        event=message.event,
        escalation_step=step,
        message=message,
    )


def describe(plan: UserPlan) -> str:
    """Describe how a user is paged, e.g. ``Ada (webhook; sms after 2 min)``."""
    parts = []
    for rule_step in plan.steps:
        kinds = ", ".join(
            plan.methods[method_id].kind for method_id in rule_step.contact_method_ids
        )
        parts.append(
            kinds
            if rule_step.delay_minutes == 0
            else f"{kinds} after {rule_step.delay_minutes} min"
        )
    return f"{plan.user.name} ({'; '.join(parts)})"
