from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy import func, select

from app import deletion
from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep
from app.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, fetch_page
from app.api.retry import TransactionRetryRoute
from app.core.errors import Conflict, NotFound, problem_responses
from app.core.security import SecretBox
from app.core.time import utcnow
from app.notify.registry import verifying_kinds
from app.notify.schemas import SecretRotated, VerificationRead
from app.oncall import contact_methods
from app.oncall.models import ContactMethod, User
from app.oncall.schemas import (
    ContactMethodCreate,
    ContactMethodCreated,
    ContactMethodRead,
    ContactMethodUpdate,
    UserCreate,
    UserRead,
    UserUpdate,
)
from app.oncall.user_routes import add_user_routes

router = APIRouter(tags=["users"], route_class=TransactionRetryRoute)

Reader = Annotated[Principal, Depends(require(Scope.config_read))]
Writer = Annotated[Principal, Depends(require(Scope.config_write))]


async def _get_user(session: SessionDep, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.", field="user_id")
    return user


async def _check_email_free(session: SessionDep, email: str, user_id: uuid.UUID | None) -> None:
    existing = await session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if existing is not None and existing.id != user_id:
        raise Conflict(f"A user with the e-mail address {email} already exists.", field="email")


@router.get("/users", response_model=Page[UserRead], responses=problem_responses(400, 401, 403))
async def list_users(
    session: SessionDep, _: Reader, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[UserRead]:
    """List users, oldest first."""
    rows, next_cursor = await fetch_page(
        session,
        select(User),
        time_column=User.created_at,
        id_column=User.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[UserRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_user(
    body: UserCreate, session: SessionDep, response: Response, _: Writer
) -> UserRead:
    """Create a user."""
    await _check_email_free(session, body.email, None)
    user = User(**body.model_dump())
    session.add(user)
    await session.flush()
    response.headers["Location"] = f"/v1/users/{user.id}"
    return UserRead.model_validate(user)


@router.get("/users/{user_id}", response_model=UserRead, responses=problem_responses(401, 403, 404))
async def get_user(user_id: uuid.UUID, session: SessionDep, _: Reader) -> UserRead:
    """Get a user."""
    return UserRead.model_validate(await _get_user(session, user_id))


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, session: SessionDep, _: Writer
) -> UserRead:
    """Change a user; fields left out keep their values."""
    user = await _get_user(session, user_id)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("email"):
        await _check_email_free(session, changes["email"], user.id)
    for name, value in changes.items():
        setattr(user, name, value)
    await session.flush()
    return UserRead.model_validate(user)


@router.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
async def delete_user(user_id: uuid.UUID, session: SessionDep, _: Writer) -> None:
    """Delete a user and their contact methods. A user that an escalation level, a rotation,
    upcoming calendar shifts or a team still names is a 409 listing them."""
    await deletion.delete_user(session, await _get_user(session, user_id))


@router.get(
    "/users/{user_id}/contact-methods",
    response_model=Page[ContactMethodRead],
    responses=problem_responses(400, 401, 403, 404),
)
async def list_contact_methods(
    user_id: uuid.UUID,
    session: SessionDep,
    _: Reader,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[ContactMethodRead]:
    """List a user's contact methods, oldest first."""
    await _get_user(session, user_id)
    rows, next_cursor = await fetch_page(
        session,
        select(ContactMethod).where(ContactMethod.user_id == user_id),
        time_column=ContactMethod.created_at,
        id_column=ContactMethod.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(
        items=[ContactMethodRead.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.post(
    "/users/{user_id}/contact-methods",
    status_code=status.HTTP_201_CREATED,
    response_model=ContactMethodCreated,
    responses=problem_responses(401, 403, 404, 422),
)
async def create_contact_method(
    user_id: uuid.UUID,
    body: ContactMethodCreate,
    session: SessionDep,
    request: Request,
    response: Response,
    _: Writer,
) -> ContactMethodCreated:
    """Add a way to reach a user. For a webhook the answer holds the signing secret once."""
    await _get_user(session, user_id)
    # Run in a thread because validating a webhook template waits for a child process.
    saved = await asyncio.to_thread(
        contact_methods.new_contact_method,
        _secret_box(request),
        user_id=user_id,
        kind=body.kind,
        name=body.name,
        address=body.address,
        secret=body.secret,
        settings=body.settings,
    )
    session.add(saved.method)
    await session.flush()
    response.headers["Location"] = f"/v1/contact-methods/{saved.method.id}"
    return ContactMethodCreated(
        **ContactMethodRead.model_validate(saved.method).model_dump(), secret=saved.secret
    )


def _secret_box(request: Request) -> SecretBox:
    return SecretBox(request.app.state.settings.signing_key())


async def _get_contact_method(session: SessionDep, method_id: uuid.UUID) -> ContactMethod:
    method = await session.get(ContactMethod, method_id)
    if method is None:
        raise NotFound(f"Contact method {method_id} does not exist.", field="contact_method_id")
    return method


@router.patch(
    "/contact-methods/{contact_method_id}",
    response_model=ContactMethodRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def update_contact_method(
    contact_method_id: uuid.UUID,
    body: ContactMethodUpdate,
    session: SessionDep,
    request: Request,
    _: Writer,
) -> ContactMethodRead:
    """Change a contact method; a new address, secret or settings is validated again."""
    method = await _get_contact_method(session, contact_method_id)
    changes = body.model_dump(exclude_unset=True)
    if {"address", "secret", "settings"} & set(changes):
        # Run in a thread because validating a webhook template waits for a child process.
        await asyncio.to_thread(
            contact_methods.change_contact_method,
            _secret_box(request),
            method,
            address=changes.pop("address", None),
            secret=changes.pop("secret", None),
            settings=changes.pop("settings", None),
        )
    for name, value in changes.items():
        setattr(method, name, value)
    await session.flush()
    return ContactMethodRead.model_validate(method)


@router.delete(
    "/contact-methods/{contact_method_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_contact_method(
    contact_method_id: uuid.UUID, session: SessionDep, _: Writer
) -> None:
    """Delete a contact method; pages still queued for it are cancelled."""
    await session.delete(await _get_contact_method(session, contact_method_id))


@router.post(
    "/contact-methods/{contact_method_id}/rotate-secret",
    response_model=SecretRotated,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def rotate_contact_method_secret(
    contact_method_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    _: Writer,
    grace_hours: Annotated[
        int, Query(ge=0, le=168, description="How long the old secret keeps signing, in hours")
    ] = 24,
) -> SecretRotated:
    """Replace a webhook's signing secret; requests carry both signatures during the grace."""
    method = await _get_contact_method(session, contact_method_id)
    secret, expires_at = contact_methods.rotate_secret(
        _secret_box(request), method, timedelta(hours=grace_hours)
    )
    await session.flush()
    return SecretRotated(secret=secret, previous_secret_expires_at=expires_at)


@router.post(
    "/contact-methods/{contact_method_id}/test",
    response_model=VerificationRead,
    responses=problem_responses(401, 403, 404, 409),
)
async def send_test_message(
    contact_method_id: uuid.UUID, session: SessionDep, request: Request, _: Writer
) -> VerificationRead:
    """Send a test message now. On success the contact method is marked verified, unless its
    notifier verifies with a code: the gateway accepting a message does not show that the
    owner receives it."""
    method = await _get_contact_method(session, contact_method_id)
    result = await contact_methods.verify(method, _secret_box(request), request.app.state.settings)
    if result.ok and method.kind not in verifying_kinds():
        method.verified_at = utcnow()
        await session.flush()
    return VerificationRead(
        ok=result.ok,
        status_code=result.status_code,
        error=result.error,
        verified_at=method.verified_at,
    )


add_user_routes(router)
