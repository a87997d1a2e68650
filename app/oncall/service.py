"""Who a page goes to: users behind escalation targets, and how to reach them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.time import isoformat
from app.oncall import schedules
from app.oncall.models import ContactMethod, Schedule, Team, User


@dataclass(frozen=True, slots=True)
class Responder:
    user: User
    contact_methods: list[ContactMethod]


@dataclass(frozen=True, slots=True)
class ResolvedTargets:
    user_ids: list[uuid.UUID]
    # Targets that named nothing usable, with the reason, for the timeline.
    skipped: list[tuple[dict[str, Any], str]]


async def resolve_targets(
    session: AsyncSession, targets: Sequence[dict[str, Any]], *, at: datetime
) -> ResolvedTargets:
    """Expand escalation targets into user ids, each once, in target order.

    A schedule target names whoever is on call on it at ``at``; a team target names
    whoever is on call on the team's schedule. Targets that name nobody are returned in
    ``skipped`` with the reason, so the caller can record them.
    """
    user_ids: list[uuid.UUID] = []
    skipped: list[tuple[dict[str, Any], str]] = []
    for target in targets:
        kind = target.get("type")
        if kind == "user":
            found: uuid.UUID | None = uuid.UUID(str(target["id"]))
        elif kind == "schedule":
            found, reason = await _on_call_on_schedule(session, uuid.UUID(str(target["id"])), at)
            if found is None:
                skipped.append((target, reason))
        elif kind == "team":
            found, reason = await _on_call_for_team(session, uuid.UUID(str(target["id"])), at)
            if found is None:
                skipped.append((target, reason))
        else:
            found = None
            skipped.append((target, f"target type {kind!r} is not supported"))
        if found is not None and found not in user_ids:
            user_ids.append(found)
    existing = set((await session.scalars(select(User.id).where(User.id.in_(user_ids)))).all())
    for user_id in user_ids:
        if user_id not in existing:
            skipped.append(({"type": "user", "id": str(user_id)}, "user no longer exists"))
    return ResolvedTargets(user_ids=[u for u in user_ids if u in existing], skipped=skipped)


async def _on_call_on_schedule(
    session: AsyncSession, schedule_id: uuid.UUID, at: datetime
) -> tuple[uuid.UUID | None, str]:
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None:
        return None, f"schedule {schedule_id} no longer exists"
    shift = await schedules.on_call(session, schedule, at)
    if shift is None:
        return None, f"nobody is on call on schedule '{schedule.name}' at {isoformat(at)}"
    return shift.user_id, ""


async def _on_call_for_team(
    session: AsyncSession, team_id: uuid.UUID, at: datetime
) -> tuple[uuid.UUID | None, str]:
    team = await session.get(Team, team_id)
    if team is None:
        return None, f"team {team_id} no longer exists"
    if team.schedule_id is None:
        return None, f"team '{team.name}' has no schedule"
    user_id, reason = await _on_call_on_schedule(session, team.schedule_id, at)
    if user_id is None:
        return None, f"team '{team.name}': {reason}"
    return user_id, ""


async def responders(session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> list[Responder]:
    """Load users with their enabled contact methods, in the order of ``user_ids``."""
    if not user_ids:
        return []
    users = {
        user.id: user
        for user in (await session.scalars(select(User).where(User.id.in_(user_ids)))).all()
    }
    methods = (
        await session.scalars(
            select(ContactMethod)
            .where(ContactMethod.user_id.in_(user_ids), ContactMethod.enabled.is_(True))
            .order_by(ContactMethod.created_at, ContactMethod.id)
        )
    ).all()
    by_user: dict[uuid.UUID, list[ContactMethod]] = {user_id: [] for user_id in user_ids}
    for method in methods:
        by_user[method.user_id].append(method)
    return [Responder(users[u], by_user[u]) for u in user_ids if u in users]
