"""Decide how to reach a paged user: which contact methods, how many minutes after the page.

A user's notification rules for the incident's urgency decide. A user without usable
rules for that urgency gets the default: every usable contact method at once, so nobody
is left unpaged for lack of configuration.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.notify.registry import available_kinds, verifying_kinds
from app.oncall.models import ContactMethod, NotificationRule, User


@dataclass(frozen=True, slots=True)
class Reachability:
    """The rules that decide which contact methods can carry a page on this installation."""

    installed_kinds: frozenset[str]
    # Kinds whose notifier sends verification codes; their methods must be verified.
    verifying_kinds: frozenset[str]

    def problem(self, method: ContactMethod) -> str | None:
        """Return why ``method`` cannot carry a page, or None when it can."""
        if not method.enabled:
            return "disabled"
        if method.kind not in self.installed_kinds:
            return f"no notifier named {method.kind!r} is installed"
        if method.kind in self.verifying_kinds and method.verified_at is None:
            return "not verified"
        return None

    def usable(self, method: ContactMethod) -> bool:
        return self.problem(method) is None


@dataclass(frozen=True, slots=True)
class RuleStep:
    delay_minutes: int
    contact_method_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class UserPlan:
    user: User
    steps: list[RuleStep]
    methods: dict[uuid.UUID, ContactMethod]
    # True when the user has no usable rule for the urgency and the default applies.
    default_rules: bool

    @property
    def reachable(self) -> bool:
        return bool(self.steps)


def plan_rule_steps(
    rules: Sequence[NotificationRule],
    methods: Sequence[ContactMethod],
    urgency: str,
    reachability: Reachability,
) -> tuple[list[RuleStep], bool]:
    """Group a user's usable rules for ``urgency`` by delay; return the steps and whether
    the default (every usable method at once) was used."""
    usable = {method.id: method for method in methods if reachability.usable(method)}
    by_delay: dict[int, list[uuid.UUID]] = defaultdict(list)
    for rule in rules:
        if rule.urgency != urgency or rule.contact_method_id not in usable:
            continue
        if rule.contact_method_id not in by_delay[rule.delay_minutes]:
            by_delay[rule.delay_minutes].append(rule.contact_method_id)
    if by_delay:
        steps = [RuleStep(delay, tuple(by_delay[delay])) for delay in sorted(by_delay)]
        return steps, False
    if not usable:
        return [], True
    return [RuleStep(0, tuple(usable))], True


async def plan_users(
    session: AsyncSession,
    user_ids: Sequence[uuid.UUID],
    *,
    urgency: str,
    reachability: Reachability,
) -> list[UserPlan]:
    """Load users with their contact methods and rules; plan each one's pages, in order."""
    if not user_ids:
        return []
    users = {
        user.id: user
        for user in (await session.scalars(select(User).where(User.id.in_(user_ids)))).all()
    }
    methods = await _methods_by_user(session, user_ids)
    rules: dict[uuid.UUID, list[NotificationRule]] = defaultdict(list)
    rows = await session.scalars(
        select(NotificationRule)
        .where(NotificationRule.user_id.in_(user_ids))
        .order_by(NotificationRule.delay_minutes, NotificationRule.created_at)
    )
    for rule in rows.all():
        rules[rule.user_id].append(rule)
    plans = []
    for user_id in user_ids:
        if user_id not in users:
            continue
        own_methods = methods[user_id]
        steps, default = plan_rule_steps(rules[user_id], own_methods, urgency, reachability)
        plans.append(
            UserPlan(
                user=users[user_id],
                steps=steps,
                methods={method.id: method for method in own_methods},
                default_rules=default,
            )
        )
    return plans


async def _methods_by_user(
    session: AsyncSession, user_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[ContactMethod]]:
    rows = await session.scalars(
        select(ContactMethod)
        .where(ContactMethod.user_id.in_(user_ids))
        .order_by(ContactMethod.created_at, ContactMethod.id)
    )
    by_user: dict[uuid.UUID, list[ContactMethod]] = {user_id: [] for user_id in user_ids}
    for method in rows.all():
        by_user[method.user_id].append(method)
    return by_user


async def unreachable_users(
    session: AsyncSession, user_ids: Collection[uuid.UUID], reachability: Reachability
) -> dict[uuid.UUID, str]:
    """Return the users among ``user_ids`` that no page can reach, with the reason."""
    if not user_ids:
        return {}
    methods = await _methods_by_user(session, user_ids)
    problems: dict[uuid.UUID, str] = {}
    for user_id, own in methods.items():
        if not own:
            problems[user_id] = "has no contact method"
        elif not any(reachability.usable(method) for method in own):
            reasons = sorted({f"{m.kind}: {reachability.problem(m)}" for m in own})
            problems[user_id] = "has no usable contact method (" + "; ".join(reasons) + ")"
    return problems


def installed_reachability() -> Reachability:
    """Build the reachability rules from the notifiers installed in this process."""
    return Reachability(frozenset(available_kinds()), verifying_kinds())
