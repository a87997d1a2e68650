"""Perform catalog actions on incidents, for links, Slack buttons, SMS replies and web pages.

Every channel goes through ``perform``: it locks the incident, performs the action only
when it applies to the current state, and reports whether anything changed, so a repeated
or late action shows what happened instead of failing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.actions import catalog
from app.actions.links import incident_state
from app.core.errors import Forbidden
from app.core.time import utcnow
from app.incidents import actions_support, escalation_actions, service
from app.incidents.actions_support import clock, snoozed_until
from app.incidents.models import Incident, IncidentStatus
from app.oncall.models import User, UserRole

Performer = Callable[[AsyncSession, Incident, catalog.ActionSpec, dict[str, Any]], Awaitable[None]]

PERFORMERS: dict[str, Performer] = {}


def register_performer(name: str, performer: Performer) -> None:
    if name not in catalog.ACTIONS:
        raise ValueError(f"no action named {name!r} is in the catalog")
    PERFORMERS[name] = performer


@dataclass(frozen=True, slots=True)
class ActionResult:
    spec: catalog.ActionSpec
    incident: Incident
    changed: bool


def user_actor(user: User, channel: str) -> dict[str, Any]:
    return {
        "type": "user",
        "id": str(user.id),
        "name": user.name,
        "channel": channel,
        "role": user.role,
    }


async def perform(
    session: AsyncSession,
    *,
    incident_id: uuid.UUID,
    spec: catalog.ActionSpec,
    actor: dict[str, Any],
) -> ActionResult:
    """Perform ``spec`` if it applies to the incident now; the caller commits.

    Raises Forbidden when an observer tries an action that changes the incident, whatever
    the channel: observers are paged and subscribed like anyone, but only watch.
    """
    if spec.changes_state and actor.get("role") == UserRole.observer:
        raise Forbidden(
            f"{actor.get('name', 'This user')} is an observer; observers can view incidents "
            "but not act on them."
        )
    incident = await service.get_incident(session, incident_id, lock=True)
    if not spec.changes_state or not spec.applies(incident_state(incident)):
        return ActionResult(spec=spec, incident=incident, changed=False)
    await PERFORMERS[spec.name](session, incident, spec, actor)
    incident = await service.get_incident(session, incident_id)
    return ActionResult(spec=spec, incident=incident, changed=True)


def when(moment: datetime | None, now: datetime | None = None) -> str:
    """``09:14 UTC`` for today (UTC), ``2026-12-03 09:14 UTC`` for another day."""
    if moment is None:
        return "an unknown time"
    now = now or utcnow()
    text = clock(moment)
    if moment.date() != now.date():
        text = f"{moment.strftime('%Y-%m-%d')} {text}"
    return text


def _name(actor: dict[str, Any] | None) -> str:
    if not actor:
        return "someone"
    return str(actor.get("name") or actor.get("type") or "someone")


def describe_state(incident: Incident, now: datetime | None = None) -> str:
    """Say what state the incident is in and who put it there, e.g. "Acknowledged by Ana at
    09:14 UTC"."""
    if incident.status in (IncidentStatus.resolved, IncidentStatus.closed):
        done = "Resolved" if incident.status == IncidentStatus.resolved else "Closed"
        return f"{done} by {_name(incident.resolved_by)} at {when(incident.resolved_at, now)}"
    if incident.status == IncidentStatus.acknowledged:
        until = snoozed_until(incident)
        by = f"by {_name(incident.acknowledged_by)} at {when(incident.acknowledged_at, now)}"
        if until is not None:
            return f"Snoozed until {when(until, now)} {by}"
        return f"Acknowledged {by}"
    return "Triggered; nobody has acknowledged it yet"


def describe_result(result: ActionResult, now: datetime | None = None) -> str:
    """Say what an action did, or why it changed nothing."""
    state = describe_state(result.incident, now)
    if result.changed:
        if result.spec.name == catalog.ESCALATE.name:
            return "Escalated: the next escalation level is being paged."
        return state
    if result.incident.status in (IncidentStatus.resolved, IncidentStatus.closed):
        return f"Nothing changed. {state}."
    if result.spec.name == catalog.ESCALATE.name:
        return f"Nothing changed: the escalation policy has no level left to page. {state}."
    return f"Nothing changed. {state}."


async def _acknowledge(
    session: AsyncSession, incident: Incident, spec: catalog.ActionSpec, actor: dict[str, Any]
) -> None:
    await service.acknowledge(session, incident.id, actor=actor)


async def _resolve(
    session: AsyncSession, incident: Incident, spec: catalog.ActionSpec, actor: dict[str, Any]
) -> None:
    await service.resolve(session, incident.id, actor=actor)


async def _snooze(
    session: AsyncSession, incident: Incident, spec: catalog.ActionSpec, actor: dict[str, Any]
) -> None:
    assert spec.snooze_for is not None
    await actions_support.snooze(session, incident.id, duration=spec.snooze_for, actor=actor)


async def _escalate(
    session: AsyncSession, incident: Incident, spec: catalog.ActionSpec, actor: dict[str, Any]
) -> None:
    await actions_support.escalate(session, incident.id, actor=actor)


async def _take(
    session: AsyncSession, incident: Incident, spec: catalog.ActionSpec, actor: dict[str, Any]
) -> None:
    user_id = uuid.UUID(str(actor["id"]))
    await escalation_actions.reassign(session, incident.id, user_id=user_id, actor=actor)
    # The taker answered the page, so the reassignment's own page to them is not sent.
    await service.acknowledge(session, incident.id, actor=actor)


register_performer(catalog.ACKNOWLEDGE.name, _acknowledge)
register_performer(catalog.TAKE.name, _take)
register_performer(catalog.RESOLVE.name, _resolve)
for _spec in catalog.ACTIONS.values():
    if _spec.snooze_for is not None:
        register_performer(_spec.name, _snooze)
register_performer(catalog.ESCALATE.name, _escalate)
