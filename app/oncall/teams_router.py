from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy import delete, func, select

from app import deletion
from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep
from app.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, fetch_page
from app.api.retry import TransactionRetryRoute
from app.core.errors import Conflict, NotFound, Unprocessable, problem_responses
from app.core.models import Base
from app.oncall import schedules
from app.oncall.models import Schedule, Team, TeamMember
from app.oncall.notification_rules import installed_reachability, unreachable_users
from app.oncall.schemas import TeamCreate, TeamMemberIn, TeamRead, TeamUpdate

router = APIRouter(prefix="/teams", tags=["teams"], route_class=TransactionRetryRoute)

Reader = Annotated[Principal, Depends(require(Scope.config_read))]
Writer = Annotated[Principal, Depends(require(Scope.config_write))]


async def _get(session: SessionDep, team_id: uuid.UUID) -> Team:
    team = await session.get(Team, team_id)
    if team is None:
        raise NotFound(f"Team {team_id} does not exist.", field="team_id")
    return team


async def _read(session: SessionDep, team: Team) -> TeamRead:
    rows = (
        await session.scalars(
            select(TeamMember)
            .where(TeamMember.team_id == team.id)
            .order_by(TeamMember.created_at, TeamMember.user_id)
        )
    ).all()
    problems = await unreachable_users(
        session, [row.user_id for row in rows], installed_reachability()
    )
    return TeamRead(
        id=team.id,
        name=team.name,
        description=team.description,
        schedule_id=team.schedule_id,
        escalation_policy_id=team.escalation_policy_id,
        members=[TeamMemberIn(user_id=row.user_id, role=row.role) for row in rows],
        warnings=[
            f"User {user_id} {problem}; pages cannot reach them."
            for user_id, problem in problems.items()
        ],
        created_at=team.created_at,
        updated_at=team.updated_at,
    )


async def _check_references(
    session: SessionDep,
    *,
    name: str | None,
    team_id: uuid.UUID | None,
    schedule_id: uuid.UUID | None,
    escalation_policy_id: uuid.UUID | None,
) -> None:
    if name:
        existing = await session.scalar(select(Team).where(func.lower(Team.name) == name.lower()))
        if existing is not None and existing.id != team_id:
            raise Conflict(f"A team named {name!r} already exists.", field="name")
    if schedule_id is not None and await session.get(Schedule, schedule_id) is None:
        raise Unprocessable(f"Schedule {schedule_id} does not exist.", field="schedule_id")
    # The escalation domain depends on this one, so its table is read without its model.
    policies = Base.metadata.tables["escalation_policies"]
    if (
        escalation_policy_id is not None
        and await session.scalar(select(policies.c.id).where(policies.c.id == escalation_policy_id))
        is None
    ):
        raise Unprocessable(
            f"Escalation policy {escalation_policy_id} does not exist.",
            field="escalation_policy_id",
        )


async def _replace_members(session: SessionDep, team: Team, members: list[TeamMemberIn]) -> None:
    user_ids = [member.user_id for member in members]
    if len(set(user_ids)) != len(user_ids):
        raise Unprocessable("A user appears twice in members.", field="members")
    await schedules.check_users_exist(session, user_ids, "members")
    await session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    for member in members:
        session.add(TeamMember(team_id=team.id, user_id=member.user_id, role=member.role))
    await session.flush()


@router.get("", response_model=Page[TeamRead], responses=problem_responses(400, 401, 403))
async def list_teams(
    session: SessionDep, _: Reader, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[TeamRead]:
    """List teams, oldest first."""
    rows, next_cursor = await fetch_page(
        session,
        select(Team),
        time_column=Team.created_at,
        id_column=Team.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[await _read(session, row) for row in rows], next_cursor=next_cursor)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamRead,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_team(
    body: TeamCreate, session: SessionDep, response: Response, _: Writer
) -> TeamRead:
    """Create a team with its members, schedule and escalation policy."""
    await _check_references(
        session,
        name=body.name,
        team_id=None,
        schedule_id=body.schedule_id,
        escalation_policy_id=body.escalation_policy_id,
    )
    team = Team(
        name=body.name,
        description=body.description,
        schedule_id=body.schedule_id,
        escalation_policy_id=body.escalation_policy_id,
    )
    session.add(team)
    await session.flush()
    await _replace_members(session, team, body.members)
    response.headers["Location"] = f"/v1/teams/{team.id}"
    return await _read(session, team)


@router.get("/{team_id}", response_model=TeamRead, responses=problem_responses(401, 403, 404))
async def get_team(team_id: uuid.UUID, session: SessionDep, _: Reader) -> TeamRead:
    """Get a team, with warnings about members no page can reach."""
    return await _read(session, await _get(session, team_id))


@router.patch(
    "/{team_id}", response_model=TeamRead, responses=problem_responses(401, 403, 404, 409, 422)
)
async def update_team(
    team_id: uuid.UUID, body: TeamUpdate, session: SessionDep, _: Writer
) -> TeamRead:
    """Change a team; fields left out keep their values, members are replaced when given."""
    team = await _get(session, team_id)
    changes = body.model_dump(exclude_unset=True, exclude={"members"})
    await _check_references(
        session,
        name=changes.get("name"),
        team_id=team.id,
        schedule_id=changes.get("schedule_id"),
        escalation_policy_id=changes.get("escalation_policy_id"),
    )
    for name, value in changes.items():
        if value is not None or name in ("schedule_id", "escalation_policy_id"):
            setattr(team, name, value)
    if body.members is not None:
        await _replace_members(session, team, body.members)
    await session.flush()
    return await _read(session, team)


@router.delete(
    "/{team_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
async def delete_team(team_id: uuid.UUID, session: SessionDep, _: Writer) -> None:
    """Delete a team. A team that an escalation level targets is a 409 listing the levels."""
    await deletion.delete_team(session, await _get(session, team_id))
