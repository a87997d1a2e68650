from __future__ import annotations

import secrets
import uuid
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy import func, select

from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep
from app.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, fetch_page
from app.core.errors import Conflict, NotFound, Unprocessable, problem_responses
from app.core.security import SecretBox
from app.notify.registry import available_kinds
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

router = APIRouter(tags=["users"])

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
    responses=problem_responses(401, 403, 404),
)
async def delete_user(user_id: uuid.UUID, session: SessionDep, _: Writer) -> None:
    """Delete a user and their contact methods."""
    await session.delete(await _get_user(session, user_id))


def _validate_address(kind: str, address: str) -> None:
    if kind != "webhook":
        return
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unprocessable(
            f"A webhook needs an http or https URL, got {address!r}.", field="address"
        )


@router.get(
    "/users/{user_id}/contact-methods",
    response_model=list[ContactMethodRead],
    responses=problem_responses(401, 403, 404),
)
async def list_contact_methods(
    user_id: uuid.UUID, session: SessionDep, _: Reader
) -> list[ContactMethodRead]:
    """List a user's contact methods."""
    await _get_user(session, user_id)
    rows = await session.scalars(
        select(ContactMethod)
        .where(ContactMethod.user_id == user_id)
        .order_by(ContactMethod.created_at)
    )
    return [ContactMethodRead.model_validate(row) for row in rows]


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
    kinds = available_kinds()
    if body.kind not in kinds:
        raise Unprocessable(
            f"Unknown contact method kind {body.kind!r}; installed notifiers: {', '.join(kinds)}.",
            field="kind",
        )
    _validate_address(body.kind, body.address)
    secret = body.secret
    if body.kind == "webhook" and secret is None:
        secret = secrets.token_urlsafe(32)
    box = SecretBox(request.app.state.settings.signing_key())
    method = ContactMethod(
        user_id=user_id,
        kind=body.kind,
        name=body.name,
        address=body.address,
        secret_encrypted=box.encrypt(secret) if secret else None,
        settings=body.settings,
    )
    session.add(method)
    await session.flush()
    response.headers["Location"] = f"/v1/contact-methods/{method.id}"
    return ContactMethodCreated(
        **ContactMethodRead.model_validate(method).model_dump(), secret=secret
    )


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
    contact_method_id: uuid.UUID, body: ContactMethodUpdate, session: SessionDep, _: Writer
) -> ContactMethodRead:
    """Rename, enable or disable a contact method."""
    method = await _get_contact_method(session, contact_method_id)
    for name, value in body.model_dump(exclude_unset=True).items():
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


add_user_routes(router)
