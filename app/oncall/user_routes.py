"""Routes for notification rules and contact-method verification."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep
from app.core.db import raw_connection
from app.core.errors import Conflict, NotFound, Unprocessable, problem_responses
from app.core.security import SecretBox
from app.jobs.queue import enqueue
from app.notify.registry import verifying_kinds
from app.oncall import verification
from app.oncall.models import ContactMethod, NotificationRule, Urgency, User
from app.oncall.notification_rules import installed_reachability, plan_rule_steps
from app.oncall.schemas import (
    ContactMethodRead,
    NotificationRuleCreate,
    NotificationRuleRead,
    NotificationRulesRead,
    NotificationRuleUpdate,
    VerificationConfirm,
    VerificationStarted,
)

Reader = Annotated[Principal, Depends(require(Scope.config_read))]
Writer = Annotated[Principal, Depends(require(Scope.config_write))]


async def _user(session: SessionDep, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.", field="user_id")
    return user


async def _method(session: SessionDep, method_id: uuid.UUID) -> ContactMethod:
    method = await session.get(ContactMethod, method_id)
    if method is None:
        raise NotFound(f"Contact method {method_id} does not exist.", field="contact_method_id")
    return method


async def _rule(session: SessionDep, rule_id: uuid.UUID) -> NotificationRule:
    rule = await session.get(NotificationRule, rule_id)
    if rule is None:
        raise NotFound(f"Notification rule {rule_id} does not exist.", field="rule_id")
    return rule


async def rules_read(session: SessionDep, user_id: uuid.UUID) -> NotificationRulesRead:
    rules = list(
        (
            await session.scalars(
                select(NotificationRule)
                .where(NotificationRule.user_id == user_id)
                .order_by(
                    NotificationRule.urgency,
                    NotificationRule.delay_minutes,
                    NotificationRule.created_at,
                )
            )
        ).all()
    )
    methods = list(
        (await session.scalars(select(ContactMethod).where(ContactMethod.user_id == user_id))).all()
    )
    reachability = installed_reachability()
    default_applies = {}
    warnings = []
    for urgency in Urgency:
        steps, default = plan_rule_steps(rules, methods, urgency, reachability)
        default_applies[urgency] = default
        if not steps:
            warnings.append(
                f"No usable contact method: {urgency.value}-urgency pages reach nobody."
            )
    for rule in rules:
        method = next(m for m in methods if m.id == rule.contact_method_id)
        problem = reachability.problem(method)
        if problem is not None:
            warnings.append(
                f"Rule {rule.id} uses contact method {method.id} ({method.kind}), which is "
                f"{problem}; the rule is ignored."
            )
    return NotificationRulesRead(
        items=[NotificationRuleRead.model_validate(rule) for rule in rules],
        default_applies=default_applies,
        warnings=warnings,
    )


def add_user_routes(router: APIRouter) -> None:
    """Register these routes on the users router."""

    @router.get(
        "/users/{user_id}/notification-rules",
        response_model=NotificationRulesRead,
        responses=problem_responses(401, 403, 404),
    )
    async def list_notification_rules(
        user_id: uuid.UUID, session: SessionDep, _: Reader
    ) -> NotificationRulesRead:
        """List a user's notification rules, and whether the default applies per urgency."""
        await _user(session, user_id)
        return await rules_read(session, user_id)

    @router.post(
        "/users/{user_id}/notification-rules",
        status_code=status.HTTP_201_CREATED,
        response_model=NotificationRuleRead,
        responses=problem_responses(401, 403, 404, 409, 422),
    )
    async def create_notification_rule(
        user_id: uuid.UUID,
        body: NotificationRuleCreate,
        session: SessionDep,
        response: Response,
        _: Writer,
    ) -> NotificationRuleRead:
        """Page the user through a contact method a number of minutes after they are paged."""
        await _user(session, user_id)
        method = await session.get(ContactMethod, body.contact_method_id)
        if method is None or method.user_id != user_id:
            raise Unprocessable(
                f"User {user_id} has no contact method {body.contact_method_id}.",
                field="contact_method_id",
            )
        rule = NotificationRule(
            user_id=user_id,
            contact_method_id=method.id,
            delay_minutes=body.delay_minutes,
            urgency=body.urgency,
        )
        session.add(rule)
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError as exc:
            raise Conflict(
                "The same rule (contact method, delay and urgency) already exists.",
                field="delay_minutes",
            ) from exc
        response.headers["Location"] = f"/v1/notification-rules/{rule.id}"
        return NotificationRuleRead.model_validate(rule)

    @router.patch(
        "/notification-rules/{rule_id}",
        response_model=NotificationRuleRead,
        responses=problem_responses(401, 403, 404, 409, 422),
    )
    async def update_notification_rule(
        rule_id: uuid.UUID, body: NotificationRuleUpdate, session: SessionDep, _: Writer
    ) -> NotificationRuleRead:
        """Change a rule's delay or urgency."""
        rule = await _rule(session, rule_id)
        for name, value in body.model_dump(exclude_unset=True).items():
            if value is not None:
                setattr(rule, name, value)
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError as exc:
            raise Conflict(
                "The same rule (contact method, delay and urgency) already exists.",
                field="delay_minutes",
            ) from exc
        return NotificationRuleRead.model_validate(rule)

    @router.delete(
        "/notification-rules/{rule_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=problem_responses(401, 403, 404),
    )
    async def delete_notification_rule(rule_id: uuid.UUID, session: SessionDep, _: Writer) -> None:
        """Delete a rule; pages already scheduled by it still go out."""
        await session.delete(await _rule(session, rule_id))

    @router.post(
        "/contact-methods/{contact_method_id}/verification",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=VerificationStarted,
        responses=problem_responses(401, 403, 404, 409),
    )
    async def start_verification(
        contact_method_id: uuid.UUID, session: SessionDep, request: Request, _: Writer
    ) -> VerificationStarted:
        """Send a verification code through the contact method; it expires in 15 minutes."""
        method = await _method(session, contact_method_id)
        box = SecretBox(request.app.state.settings.signing_key())
        job = verification.start(method, box, verifying_kinds=verifying_kinds())
        await session.flush()
        await enqueue(await raw_connection(session), [job])
        assert method.verification_expires_at is not None
        return VerificationStarted(
            contact_method_id=method.id, expires_at=method.verification_expires_at
        )

    @router.post(
        "/contact-methods/{contact_method_id}/verification/confirm",
        response_model=ContactMethodRead,
        responses=problem_responses(401, 403, 404, 409, 422),
    )
    async def confirm_verification(
        contact_method_id: uuid.UUID,
        body: VerificationConfirm,
        session: SessionDep,
        request: Request,
        _: Writer,
    ) -> ContactMethodRead | Response:
        """Enter the code the contact method received; the method can then carry pages."""
        method = await _method(session, contact_method_id)
        box = SecretBox(request.app.state.settings.signing_key())
        try:
            verification.confirm(method, body.code, box)
        except Unprocessable:
            # Count the wrong attempt even though the request fails.
            await session.commit()
            raise
        await session.flush()
        return ContactMethodRead.model_validate(method)
