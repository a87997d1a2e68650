"""Rules and the priority matrix: validation, ordering and the audit log of changes."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.core.errors import FieldError, NotFound, Unprocessable
from app.core.time import utcnow
from app.escalation.models import EscalationPolicy
from app.rules.engine import Rule as CompiledRule
from app.rules.engine import RuleCompileError, compile_rule
from app.rules.models import PriorityMatrixSetting, Rule, RuleAuditEntry
from app.rules.priority import PriorityMatrix
from app.rules.schemas import PriorityMatrixIn, RuleCreate, RuleDraft, RuleUpdate
from app.rules.snapshot import bump_revision
from app.services.models import Service

# Rules per scope; each one is checked against every alert, so the list stays readable.
MAX_RULES_PER_SCOPE = 500


def rule_document(rule: Rule) -> dict[str, Any]:
    """Return the stored rule in the API's shape, for the audit log and the engine."""
    return {
        "id": str(rule.id),
        "version": rule.version,
        "name": rule.name,
        "description": rule.description,
        "service_id": str(rule.service_id) if rule.service_id else None,
        "position": rule.position,
        "enabled": rule.enabled,
        "continue": rule.continue_,
        "conditions": rule.conditions,
        "actions": rule.actions,
    }


def compile_or_reject(spec: dict[str, Any], *, prefix: str = "") -> CompiledRule:
    """Compile a rule, turning a compile error into a 422 that names the field."""
    try:
        return compile_rule(spec)
    except RuleCompileError as exc:
        field = prefix + exc.field
        raise Unprocessable(
            f"{field}: {exc.message}",
            field=field,
            errors=[FieldError(field=field, message=exc.message, type="invalid_rule")],
        ) from exc


async def check_references(
    session: AsyncSession, spec: dict[str, Any], *, prefix: str = ""
) -> None:
    """Reject a rule whose scope or route names a service or policy that does not exist.

    The rows found are locked FOR KEY SHARE, so a concurrent delete of one of them waits
    for this commit and then sees the rule (app/deletion.py).
    """
    key_share = {"read": True, "key_share": True}
    service_ids = {
        f"{prefix}service_id": spec.get("service_id"),
        f"{prefix}actions.route.service_id": (spec["actions"].get("route") or {}).get("service_id"),
    }
    for field, value in service_ids.items():
        if value is None:
            continue
        if await session.get(Service, uuid.UUID(str(value)), with_for_update=key_share) is None:
            raise Unprocessable(f"Service {value} does not exist.", field=field)
    policy_id = (spec["actions"].get("route") or {}).get("escalation_policy_id")
    if policy_id is not None and (
        await session.get(EscalationPolicy, uuid.UUID(policy_id), with_for_update=key_share) is None
    ):
        raise Unprocessable(
            f"Escalation policy {policy_id} does not exist.",
            field=f"{prefix}actions.route.escalation_policy_id",
        )


def spec_from_input(body: RuleCreate | RuleDraft, *, version: int = 1) -> dict[str, Any]:
    rule_id = getattr(body, "id", None)
    return {
        "id": str(rule_id or uuid.uuid4()),
        "version": version,
        "name": body.name,
        "description": body.description,
        "service_id": str(body.service_id) if body.service_id else None,
        "position": body.position or 0,
        "enabled": body.enabled,
        "continue": body.continue_,
        "conditions": body.conditions.model_dump(mode="json", exclude_defaults=True),
        "actions": body.actions.model_dump(mode="json", exclude_defaults=True),
    }


def _scope(service_id: uuid.UUID | None) -> ColumnElement[bool]:
    return Rule.service_id.is_(None) if service_id is None else Rule.service_id == service_id


async def _lock_rules(session: AsyncSession) -> None:
    # A new revision token, taken first: its row lock serialises every rule change.
    await bump_revision(await raw_connection(session))


async def _scope_size(session: AsyncSession, service_id: uuid.UUID | None) -> int:
    count = await session.scalar(select(func.count()).select_from(Rule).where(_scope(service_id)))
    return int(count or 0)


async def _audit(
    session: AsyncSession,
    *,
    actor: dict[str, Any],
    entity_type: str,
    entity_id: uuid.UUID | None,
    action: str,
    version: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    session.add(
        RuleAuditEntry(
            at=utcnow(),
            actor=actor,
            entity_type=entity_type,
            entity_id=entity_id,
            action=action,
            version=version,
            before=before,
            after=after,
        )
    )


audit = _audit


async def get_rule(session: AsyncSession, rule_id: uuid.UUID) -> Rule:
    rule = await session.get(Rule, rule_id)
    if rule is None:
        raise NotFound(f"Rule {rule_id} does not exist.", field="rule_id")
    return rule


async def _insert_at(
    session: AsyncSession, service_id: uuid.UUID | None, position: int | None
) -> int:
    """Make room at ``position`` (the end when None or past it) and return the position."""
    size = await _scope_size(session, service_id)
    if size >= MAX_RULES_PER_SCOPE:
        raise Unprocessable(
            f"This scope already has {size} rules, the maximum; merge or delete some.",
            field="service_id",
        )
    target = size if position is None else min(position, size)
    await session.execute(
        update(Rule)
        .where(_scope(service_id), Rule.position >= target)
        .values(position=Rule.position + 1)
        .execution_options(synchronize_session=False)
    )
    return target


async def _close_gap(session: AsyncSession, service_id: uuid.UUID | None, position: int) -> None:
    await session.execute(
        update(Rule)
        .where(_scope(service_id), Rule.position > position)
        .values(position=Rule.position - 1)
        .execution_options(synchronize_session=False)
    )


async def create_rule(session: AsyncSession, body: RuleCreate, *, actor: dict[str, Any]) -> Rule:
    spec = spec_from_input(body)
    compile_or_reject(spec)
    await check_references(session, spec)
    await _lock_rules(session)
    position = await _insert_at(session, body.service_id, body.position)
    rule = Rule(
        id=uuid.UUID(spec["id"]),
        service_id=body.service_id,
        position=position,
        name=body.name,
        description=body.description,
        enabled=body.enabled,
        continue_=body.continue_,
        version=1,
        conditions=spec["conditions"],
        actions=spec["actions"],
    )
    session.add(rule)
    await session.flush()
    await _audit(
        session,
        actor=actor,
        entity_type="rule",
        entity_id=rule.id,
        action="created",
        version=1,
        after=rule_document(rule),
    )
    return rule


async def update_rule(
    session: AsyncSession, rule_id: uuid.UUID, body: RuleUpdate, *, actor: dict[str, Any]
) -> Rule:
    await _lock_rules(session)
    rule = await get_rule(session, rule_id)
    await session.refresh(rule)
    before = rule_document(rule)
    changes = body.model_dump(exclude_unset=True, by_alias=False)
    merged = RuleCreate.model_validate(
        {
            **{key: value for key, value in before.items() if key not in ("id", "version")},
            "conditions": rule.conditions,
            "actions": rule.actions,
            **{
                ("continue" if key == "continue_" else key): value for key, value in changes.items()
            },
        }
    )
    spec = spec_from_input(merged, version=rule.version + 1)
    compile_or_reject(spec)
    await check_references(session, spec)

    if "service_id" in changes and changes["service_id"] != rule.service_id:
        old_scope, old_position = rule.service_id, rule.position
        rule.position = -1
        await session.flush()
        await _close_gap(session, old_scope, old_position)
        rule.position = await _insert_at(session, merged.service_id, changes.get("position"))
        rule.service_id = merged.service_id
    elif changes.get("position") is not None and changes["position"] != rule.position:
        size = await _scope_size(session, rule.service_id)
        target = min(changes["position"], size - 1)
        old_position = rule.position
        rule.position = -1
        await session.flush()
        await _close_gap(session, rule.service_id, old_position)
        await session.execute(
            update(Rule)
            .where(_scope(rule.service_id), Rule.position >= target, Rule.id != rule.id)
            .values(position=Rule.position + 1)
            .execution_options(synchronize_session=False)
        )
        rule.position = target

    rule.name = merged.name
    rule.description = merged.description
    rule.enabled = merged.enabled
    rule.continue_ = merged.continue_
    rule.conditions = spec["conditions"]
    rule.actions = spec["actions"]
    rule.version += 1
    rule.updated_at = utcnow()
    await session.flush()
    await _audit(
        session,
        actor=actor,
        entity_type="rule",
        entity_id=rule.id,
        action="updated",
        version=rule.version,
        before=before,
        after=rule_document(rule),
    )
    return rule


async def delete_rule(session: AsyncSession, rule_id: uuid.UUID, *, actor: dict[str, Any]) -> None:
    await _lock_rules(session)
    rule = await get_rule(session, rule_id)
    before = rule_document(rule)
    await session.delete(rule)
    await session.flush()
    await _close_gap(session, rule.service_id, rule.position)
    await _audit(
        session,
        actor=actor,
        entity_type="rule",
        entity_id=rule.id,
        action="deleted",
        version=rule.version,
        before=before,
    )


async def reorder_rules(
    session: AsyncSession,
    service_id: uuid.UUID | None,
    rule_ids: list[uuid.UUID],
    *,
    actor: dict[str, Any],
) -> list[Rule]:
    """Put every rule of one scope in the given order."""
    await _lock_rules(session)
    rules = list(
        await session.scalars(select(Rule).where(_scope(service_id)).order_by(Rule.position))
    )
    current = [rule.id for rule in rules]

    if len(set(rule_ids)) != len(rule_ids):
        raise Unprocessable("rule_ids lists a rule more than once.", field="rule_ids")
    if set(rule_ids) != set(current):
        missing = [str(rule_id) for rule_id in current if rule_id not in rule_ids]
        foreign = [str(rule_id) for rule_id in rule_ids if rule_id not in current]
        raise Unprocessable(
            "rule_ids must list every rule of the scope exactly once"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not in this scope: {', '.join(foreign)}" if foreign else ""),
            field="rule_ids",
        )

    by_id = {rule.id: rule for rule in rules}
    now = utcnow()
    for position, rule_id in enumerate(rule_ids):
        rule = by_id[rule_id]
        if rule.position != position:
            # Decisions and the audit log cite (rule id, version), so a move is a new version.
            rule.position = position
            rule.version += 1
            rule.updated_at = now
    await session.flush()
    await _audit(
        session,
        actor=actor,
        entity_type="rule",
        entity_id=service_id,
        action="reordered",
        before={
            "service_id": str(service_id) if service_id else None,
            "rule_ids": [str(rule_id) for rule_id in current],
        },
        after={
            "service_id": str(service_id) if service_id else None,
            "rule_ids": [str(rule_id) for rule_id in rule_ids],
            "versions": {str(rule_id): by_id[rule_id].version for rule_id in rule_ids},
        },
    )
    return [by_id[rule_id] for rule_id in rule_ids]


async def stored_rule_specs(
    session: AsyncSession, *, include_disabled: bool = True
) -> list[dict[str, Any]]:
    statement = select(Rule).order_by(Rule.service_id.nulls_first(), Rule.position)
    if not include_disabled:
        statement = statement.where(Rule.enabled.is_(True))
    return [rule_document(rule) for rule in await session.scalars(statement)]


def draft_specs(drafts: list[RuleDraft]) -> list[dict[str, Any]]:
    """Number a draft rule set per scope in list order, and check each rule (422)."""
    counters: dict[uuid.UUID | None, int] = {}
    specs = []
    for index, draft in enumerate(drafts):
        spec = spec_from_input(draft)
        spec["position"] = counters.get(draft.service_id, 0)
        counters[draft.service_id] = spec["position"] + 1
        compile_or_reject(spec, prefix=f"rules.{index}.")
        specs.append(spec)
    return specs


async def get_matrix(session: AsyncSession) -> tuple[PriorityMatrix, PriorityMatrixSetting | None]:
    row = await session.get(PriorityMatrixSetting, 1)
    return PriorityMatrix.from_document(row.document if row else None), row


async def put_matrix(
    session: AsyncSession, body: PriorityMatrixIn, *, actor: dict[str, Any]
) -> PriorityMatrixSetting:
    await _lock_rules(session)
    document = body.model_dump(mode="json")
    row = await session.get(PriorityMatrixSetting, 1, with_for_update=True)
    before = row.document if row else PriorityMatrix.default().to_document()
    if row is None:
        row = PriorityMatrixSetting(id=1, document=document, version=1, updated_at=utcnow())
        session.add(row)
    else:
        row.document = document
        row.version += 1
        row.updated_at = utcnow()
    await session.flush()
    await _audit(
        session,
        actor=actor,
        entity_type="priority_matrix",
        entity_id=None,
        action="updated",
        version=row.version,
        before=before,
        after=document,
    )
    return row
