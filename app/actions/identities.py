from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import or_, select, text, true
from sqlalchemy.exc import IntegrityError

from app.actions.models import ChatIdentity
from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep
from app.api.retry import TransactionRetryRoute
from app.core.errors import Conflict, NotFound, problem_responses
from app.core.schemas import RequestModel
from app.oncall.models import User

router = APIRouter(tags=["users"], route_class=TransactionRetryRoute)

Reader = Annotated[Principal, Depends(require(Scope.config_read))]
Writer = Annotated[Principal, Depends(require(Scope.config_write))]

SlackId = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z0-9]{1,64}$", max_length=64)
]


class ChatIdentityCreate(RequestModel):
    provider: Literal["slack"] = "slack"
    external_user_id: SlackId = Field(description="The Slack member id, e.g. U024BE7LH")
    team_id: Annotated[str, StringConstraints(pattern=r"^([A-Z0-9]{1,64})?$")] = Field(
        default="", description="The Slack team (workspace) id, e.g. T024BE7LD; empty: any"
    )


class ChatIdentityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    provider: str
    team_id: str
    external_user_id: str
    created_at: datetime


async def _get_user(session: SessionDep, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.", field="user_id")
    return user


@router.get(
    "/users/{user_id}/chat-identities",
    response_model=list[ChatIdentityRead],
    responses=problem_responses(401, 403, 404),
)
async def list_chat_identities(
    user_id: uuid.UUID, session: SessionDep, _: Reader
) -> list[ChatIdentityRead]:
    """List the chat accounts that act as this user when they press Tocsin's buttons."""
    await _get_user(session, user_id)
    rows = await session.scalars(
        select(ChatIdentity)
        .where(ChatIdentity.user_id == user_id)
        .order_by(ChatIdentity.created_at, ChatIdentity.id)
    )
    return [ChatIdentityRead.model_validate(row) for row in rows]


@router.post(
    "/users/{user_id}/chat-identities",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatIdentityRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_chat_identity(
    user_id: uuid.UUID,
    body: ChatIdentityCreate,
    session: SessionDep,
    response: Response,
    _: Writer,
) -> ChatIdentityRead:
    """Link a Slack member to this user, so their button presses act as the user."""
    await _get_user(session, user_id)
    # A link without a workspace covers every workspace, so it overlaps the member's links
    # in each one. Overlapping links to two users would make a click act as either of them.
    # The lock serializes concurrent links of one member, which the check below reads.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"chat-identity:{body.provider}:{body.external_user_id}"},
    )
    overlapping = await session.scalar(
        select(ChatIdentity.user_id).where(
            ChatIdentity.provider == body.provider,
            ChatIdentity.external_user_id == body.external_user_id,
            ChatIdentity.user_id != user_id,
            or_(ChatIdentity.team_id == "", ChatIdentity.team_id == body.team_id)
            if body.team_id
            else true(),
        )
    )
    if overlapping is not None:
        raise Conflict(
            f"Slack member {body.external_user_id} is already linked to user {overlapping} "
            "in this or every workspace; unlink it there first.",
            field="external_user_id",
        )
    identity = ChatIdentity(user_id=user_id, **body.model_dump())
    session.add(identity)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"Slack member {body.external_user_id} is already linked to a user.",
            field="external_user_id",
        ) from exc
    response.headers["Location"] = f"/v1/chat-identities/{identity.id}"
    return ChatIdentityRead.model_validate(identity)


@router.delete(
    "/chat-identities/{chat_identity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_chat_identity(chat_identity_id: uuid.UUID, session: SessionDep, _: Writer) -> None:
    """Unlink a chat account; its button presses stop acting as the user at once."""
    identity = await session.get(ChatIdentity, chat_identity_id)
    if identity is None:
        raise NotFound(
            f"Chat identity {chat_identity_id} does not exist.", field="chat_identity_id"
        )
    await session.delete(identity)
