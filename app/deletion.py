"""Delete users, teams, schedules, escalation policies and services only when nothing uses them.

A deleted escalation target makes its level page nobody, and a deleted policy leaves its
services paging nobody, without any error at the time of the delete. So each delete
first looks for what still uses the object (one query) and raises ``InUse`` listing it.
This module sits above the domains because those uses cross them: escalation levels
name users, schedules and teams, and rules route to services and policies.

Each delete locks the object's row first. Rows that refer to it through a foreign key
(team members, services, incidents) take a key-share lock on it when they are inserted,
and escalation levels and rules lock the objects they name the same way, so such a use
cannot appear between the check and the delete. Calendar imports lock the users their
shifts name the same way.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    DateTime,
    Select,
    String,
    cast,
    column,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB, JSONPATH
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InUse, Reference
from app.escalation.models import EscalationLevel, EscalationPolicy
from app.incidents.models import Incident, IncidentStatus
from app.oncall.models import (
    LayerKind,
    Schedule,
    ScheduleLayer,
    ScheduleLayerMember,
    ScheduleOverride,
    Team,
    TeamMember,
    User,
)
from app.rules.models import Rule
from app.services.models import Service

# Rows of uses of an object: the type, id and name of what uses it, and how.
UseQuery = Select[str, str, str, str]
UseUnion = CompoundSelect[str, str, str, str]

# A 409 lists at most this many uses, and its detail counts the rest.
MAX_LISTED = 50


def _level_targets(kind: str, object_id: uuid.UUID) -> UseQuery:
    return select(
        literal("escalation_policy").label("type"),
        cast(EscalationPolicy.id, String).label("id"),
        EscalationPolicy.name.label("name"),
        ("target of level " + cast(EscalationLevel.position + 1, String)).label("usage"),
    ).where(
        EscalationLevel.policy_id == EscalationPolicy.id,
        EscalationLevel.targets.contains([{"type": kind, "id": str(object_id)}]),
    )


def _frozen_targets(kind: str, object_id: uuid.UUID) -> UseQuery:
    """Select the open incidents whose frozen copy of their policy still pages the object.

    Editing or deleting the policy leaves these copies alone, so without this check an
    incident could reach a level whose only target no longer exists and page nobody.
    """
    return select(
        literal("incident").label("type"),
        cast(Incident.id, String).label("id"),
        func.format("#%s %s", Incident.number, Incident.title).label("name"),
        literal("open incident whose escalation pages it").label("usage"),
    ).where(
        Incident.status.in_((IncidentStatus.triggered, IncidentStatus.acknowledged)),
        func.jsonb_path_exists(
            Incident.escalation_snapshot,
            cast(
                "$.levels[*].targets[*] ? (@.type == $type && @.id == $id)",
                JSONPATH,
            ),
            func.jsonb_build_object("type", kind, "id", str(object_id)),
        ),
    )


def _user_uses(user_id: uuid.UUID) -> UseUnion:
    shift = (
        func.jsonb_array_elements(ScheduleLayer.fixed_shifts)
        .table_valued(column("value", JSONB))
        .alias("shift")
    )
    shift_to_come = (
        select(literal(1))
        .select_from(shift)
        .where(
            shift.c.value["user_id"].astext == str(user_id),
            cast(shift.c.value["end"].astext, DateTime(timezone=True)) > func.now(),
        )
        .exists()
    )
    return union_all(
        _level_targets("user", user_id),
        _frozen_targets("user", user_id),
        select(
            literal("schedule"),
            cast(Schedule.id, String),
            Schedule.name,
            func.format('member of rotation layer "%s"', ScheduleLayer.name),
        )
        .distinct()
        .where(
            ScheduleLayerMember.user_id == user_id,
            ScheduleLayer.id == ScheduleLayerMember.layer_id,
            Schedule.id == ScheduleLayer.schedule_id,
        ),
        select(
            literal("schedule"),
            cast(Schedule.id, String),
            Schedule.name,
            func.format('has shifts to come in calendar layer "%s"', ScheduleLayer.name),
        ).where(
            ScheduleLayer.kind == LayerKind.calendar,
            Schedule.id == ScheduleLayer.schedule_id,
            shift_to_come,
        ),
        select(
            literal("schedule"),
            cast(Schedule.id, String),
            Schedule.name,
            literal("has an override of theirs that has not ended"),
        )
        .distinct()
        .where(
            ScheduleOverride.user_id == user_id,
            ScheduleOverride.end_at > func.now(),
            Schedule.id == ScheduleOverride.schedule_id,
        ),
        select(literal("team"), cast(Team.id, String), Team.name, TeamMember.role).where(
            TeamMember.user_id == user_id, Team.id == TeamMember.team_id
        ),
    )


def _schedule_uses(schedule_id: uuid.UUID) -> UseUnion:
    return union_all(
        _level_targets("schedule", schedule_id),
        _frozen_targets("schedule", schedule_id),
        select(
            literal("team"), cast(Team.id, String), Team.name, literal("the team's schedule")
        ).where(Team.schedule_id == schedule_id),
    )


def _rule_routes(route_key: str, object_id: uuid.UUID) -> UseQuery:
    return select(
        literal("rule").label("type"),
        cast(Rule.id, String).label("id"),
        Rule.name.label("name"),
        literal("routes alerts to it").label("usage"),
    ).where(Rule.actions["route"][route_key].astext == str(object_id))


def _policy_uses(policy_id: uuid.UUID) -> UseUnion:
    return union_all(
        select(
            literal("service").label("type"),
            cast(Service.id, String).label("id"),
            Service.name.label("name"),
            literal("the service's policy").label("usage"),
        ).where(Service.escalation_policy_id == policy_id),
        select(
            literal("team"), cast(Team.id, String), Team.name, literal("the team's policy")
        ).where(Team.escalation_policy_id == policy_id),
        _rule_routes("escalation_policy_id", policy_id),
    )


async def delete_user(session: AsyncSession, user: User) -> None:
    """Delete a user with their contact methods, unless a policy, schedule, team or open
    incident's escalation names them."""
    await _lock(session, User, user.id)
    references = await _references(session, _user_uses(user.id))
    _raise_if_used(
        f"User {user.name!r}",
        references,
        field="user_id",
        fix="Remove the user from each of them and resolve these incidents, then delete the user.",
    )
    await session.delete(user)


async def delete_team(session: AsyncSession, team: Team) -> None:
    """Delete a team unless an escalation level or an open incident's escalation targets it."""
    await _lock(session, Team, team.id)
    uses = union_all(_level_targets("team", team.id), _frozen_targets("team", team.id))
    references = await _references(session, uses)
    _raise_if_used(
        f"Team {team.name!r}",
        references,
        field="team_id",
        fix="Remove the team from these escalation levels and resolve these incidents, then "
        "delete the team.",
    )
    await session.delete(team)


async def delete_schedule(session: AsyncSession, schedule: Schedule) -> None:
    """Delete a schedule unless an escalation level or an open incident's escalation targets
    it, or a team uses it."""
    await _lock(session, Schedule, schedule.id)
    references = await _references(session, _schedule_uses(schedule.id))
    _raise_if_used(
        f"Schedule {schedule.name!r}",
        references,
        field="schedule_id",
        fix="Point them at another schedule or remove the schedule from them, and resolve "
        "these incidents, then delete it.",
    )
    await session.delete(schedule)


async def delete_policy(session: AsyncSession, policy: EscalationPolicy) -> None:
    """Delete an escalation policy unless a service, team or rule uses it.

    Incidents already escalating keep the copy of the levels they froze when they started.
    """
    await _lock(session, EscalationPolicy, policy.id)
    references = await _references(session, _policy_uses(policy.id))
    _raise_if_used(
        f"Escalation policy {policy.name!r}",
        references,
        field="policy_id",
        fix="Give them another policy, then delete this one.",
    )
    await session.delete(policy)


async def delete_service(session: AsyncSession, service: Service, *, force: bool) -> None:
    """Delete a service with its integrations, rules and windows, unless rules route to it.

    A service with incidents is deleted only with ``force``, and its incidents (with their
    alerts, timelines and postmortems) go with it.
    """
    await _lock(session, Service, service.id)
    references = await _references(session, _rule_routes("service_id", service.id))
    _raise_if_used(
        f"Service {service.name!r}",
        references,
        field="service_id",
        fix="Change these rules' routes, then delete the service.",
    )
    if force:
        await session.delete(service)
        return

    open_statuses = (IncidentStatus.triggered, IncidentStatus.acknowledged)
    total, still_open = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(Incident.status.in_(open_statuses)),
            ).where(Incident.service_id == service.id)
        )
    ).one()
    if total:
        raise InUse(
            f"Service {service.name!r} has {total} incidents ({still_open} open). Deleting the "
            "service deletes them too, with their alerts, timelines and postmortems. Pass "
            "force=true to delete them, or keep the service and remove its integrations.",
            field="force",
        )
    await session.delete(service)


async def _lock(session: AsyncSession, model: Any, object_id: uuid.UUID) -> None:
    await session.execute(select(model.id).where(model.id == object_id).with_for_update())


async def _references(session: AsyncSession, uses: UseQuery | UseUnion) -> list[Reference]:
    found = uses.subquery("uses")
    statement = select(found).order_by(found.c.type, found.c.name, found.c.usage)
    rows = (await session.execute(statement)).all()
    return [Reference(type=row[0], id=row[1], name=row[2], usage=row[3]) for row in rows]


def _raise_if_used(what: str, references: list[Reference], *, field: str, fix: str) -> None:
    if not references:
        return
    listed = "; ".join(
        f"{reference.type.replace('_', ' ')} {reference.name!r} ({reference.usage})"
        for reference in references[:MAX_LISTED]
    )
    more = f" and {len(references) - MAX_LISTED} more" if len(references) > MAX_LISTED else ""
    raise InUse(
        f"{what} is still used by: {listed}{more}. {fix}",
        field=field,
        references=references[:MAX_LISTED],
    )
