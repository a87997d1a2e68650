"""Who a page goes to: users behind escalation targets, and how to reach them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.oncall.models import ContactMethod, User


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
    session: AsyncSession, targets: Sequence[dict[str, Any]]
) -> ResolvedTargets:
    """Expand escalation targets into user ids, each once, in target order."""
    user_ids: list[uuid.UUID] = []
    skipped: list[tuple[dict[str, Any], str]] = []
    for target in targets:
        if target.get("type") == "user":
            user_id = uuid.UUID(str(target["id"]))
            if user_id not in user_ids:
                user_ids.append(user_id)
        else:
            skipped.append((target, f"target type {target.get('type')!r} is not supported"))
    existing = set((await session.scalars(select(User.id).where(User.id.in_(user_ids)))).all())
    for user_id in user_ids:
        if user_id not in existing:
            skipped.append(({"type": "user", "id": str(user_id)}, "user no longer exists"))
    return ResolvedTargets(user_ids=[u for u in user_ids if u in existing], skipped=skipped)


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
