from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import deletion
from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep
from app.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, fetch_page
from app.api.retry import TransactionRetryRoute
from app.core.errors import Conflict, NotFound, Unprocessable, problem_responses
from app.core.time import utcnow
from app.escalation.models import EscalationLevel, EscalationPolicy
from app.escalation.schemas import (
    EscalationPolicyCreate,
    EscalationPolicyRead,
    EscalationPolicyUpdate,
    LevelIn,
    LevelRead,
)
from app.oncall.models import Schedule, Team, User
from app.oncall.notification_rules import installed_reachability, unreachable_users
from app.oncall.service import resolve_targets

router = APIRouter(
    prefix="/escalation-policies", tags=["escalation policies"], route_class=TransactionRetryRoute
)

Reader = Annotated[Principal, Depends(require(Scope.config_read))]
Writer = Annotated[Principal, Depends(require(Scope.config_write))]


async def _read(session: AsyncSession, policy: EscalationPolicy) -> EscalationPolicyRead:
    levels = (
        await session.scalars(
            select(EscalationLevel)
            .where(EscalationLevel.policy_id == policy.id)
            .order_by(EscalationLevel.position)
        )
    ).all()
    return EscalationPolicyRead(
        id=policy.id,
        name=policy.name,
        description=policy.description,
        repeat_count=policy.repeat_count,
        version=policy.version,
        levels=[
            LevelRead(
                position=level.position, delay_minutes=level.delay_minutes, targets=level.targets
            )
            for level in levels
        ],
        warnings=await _warnings(session, levels),
        created_at=policy.created_at,
        updated_at=policy.updated_at,
    )


async def _warnings(session: AsyncSession, levels: Sequence[EscalationLevel]) -> list[str]:
    """Describe targets a page cannot reach now: unreachable users, schedules on call by nobody."""
    user_ids = {
        uuid.UUID(target["id"])
        for level in levels
        for target in level.targets
        if target["type"] == "user"
    }
    problems = await unreachable_users(session, user_ids, installed_reachability())
    warnings = [
        f"User {user_id} {problem}; pages cannot reach them."
        for user_id, problem in problems.items()
    ]
    schedule_targets = [
        target for level in levels for target in level.targets if target["type"] != "user"
    ]
    if schedule_targets:
        resolved = await resolve_targets(session, schedule_targets, at=utcnow())
        warnings += [f"Right now: {reason}." for _, reason in resolved.skipped]
    return warnings


async def _get(session: AsyncSession, policy_id: uuid.UUID) -> EscalationPolicy:
    policy = await session.get(EscalationPolicy, policy_id)
    if policy is None:
        raise NotFound(f"Escalation policy {policy_id} does not exist.", field="policy_id")
    return policy


async def _check_name_free(session: AsyncSession, name: str, policy_id: uuid.UUID | None) -> None:
    existing = await session.scalar(
        select(EscalationPolicy).where(func.lower(EscalationPolicy.name) == name.lower())
    )
    if existing is not None and existing.id != policy_id:
        raise Conflict(f"An escalation policy named {name!r} already exists.", field="name")


async def _check_targets(session: AsyncSession, levels: list[LevelIn]) -> None:
    models: dict[str, type[User] | type[Schedule] | type[Team]] = {
        "user": User,
        "schedule": Schedule,
        "team": Team,
    }
    found: dict[str, set[uuid.UUID]] = {}
    for kind, model in models.items():
        ids = {target.id for level in levels for target in level.targets if target.type == kind}
        # FOR KEY SHARE makes a concurrent delete of a target wait for this commit, and the
        # delete then finds the new level naming it (app/deletion.py).
        statement = (
            select(model.id)
            .where(model.id.in_(ids))
            .order_by(model.id)
            .with_for_update(read=True, key_share=True)
        )
        found[kind] = set((await session.scalars(statement)).all()) if ids else set()
    for index, level in enumerate(levels):
        for position, target in enumerate(level.targets):
            if target.id not in found[target.type]:
                raise Unprocessable(
                    f"{target.type.capitalize()} {target.id} does not exist.",
                    field=f"levels.{index}.targets.{position}.id",
                )


async def _replace_levels(
    session: AsyncSession, policy: EscalationPolicy, levels: list[LevelIn]
) -> None:
    await _check_targets(session, levels)
    await session.execute(delete(EscalationLevel).where(EscalationLevel.policy_id == policy.id))
    for position, level in enumerate(levels):
        session.add(
            EscalationLevel(
                policy_id=policy.id,
                position=position,
                delay_minutes=level.delay_minutes,
                targets=[target.model_dump(mode="json") for target in level.targets],
            )
        )
    await session.flush()


@router.get(
    "", response_model=Page[EscalationPolicyRead], responses=problem_responses(400, 401, 403)
)
async def list_policies(
    session: SessionDep, _: Reader, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[EscalationPolicyRead]:
    """List escalation policies, oldest first."""
    rows, next_cursor = await fetch_page(
        session,
        select(EscalationPolicy),
        time_column=EscalationPolicy.created_at,
        id_column=EscalationPolicy.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[await _read(session, row) for row in rows], next_cursor=next_cursor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EscalationPolicyRead,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_policy(
    body: EscalationPolicyCreate, session: SessionDep, response: Response, _: Writer
) -> EscalationPolicyRead:
    """Create an escalation policy with its levels."""
    await _check_name_free(session, body.name, None)
    policy = EscalationPolicy(
        name=body.name, description=body.description, repeat_count=body.repeat_count
    )
    session.add(policy)
    await session.flush()
    await _replace_levels(session, policy, body.levels)
    response.headers["Location"] = f"/v1/escalation-policies/{policy.id}"
    return await _read(session, policy)


@router.get(
    "/{policy_id}", response_model=EscalationPolicyRead, responses=problem_responses(401, 403, 404)
)
async def get_policy(policy_id: uuid.UUID, session: SessionDep, _: Reader) -> EscalationPolicyRead:
    """Get an escalation policy."""
    return await _read(session, await _get(session, policy_id))


@router.patch(
    "/{policy_id}",
    response_model=EscalationPolicyRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_policy(
    policy_id: uuid.UUID, body: EscalationPolicyUpdate, session: SessionDep, _: Writer
) -> EscalationPolicyRead:
    """Change a policy. Incidents already escalating keep the version they started with."""
    policy = await _get(session, policy_id)
    changes = body.model_dump(exclude_unset=True, exclude={"levels"})
    if changes.get("name"):
        await _check_name_free(session, changes["name"], policy.id)
    for name, value in changes.items():
        setattr(policy, name, value)
    if body.levels is not None:
        await _replace_levels(session, policy, body.levels)
    policy.version += 1
    await session.flush()
    return await _read(session, policy)


@router.delete(
    "/{policy_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
async def delete_policy(policy_id: uuid.UUID, session: SessionDep, _: Writer) -> None:
    """Delete a policy. A policy that a service, team or rule uses is a 409 listing them;
    incidents already escalating keep the levels they started with."""
    await deletion.delete_policy(session, await _get(session, policy_id))
