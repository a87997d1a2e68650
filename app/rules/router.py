from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import func, select, tuple_

from app.api.auth import Principal, Scope, require
from app.api.deps import RawConnectionDep, SessionDep, SettingsDep
from app.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, fetch_page
from app.api.retry import TransactionRetryRoute
from app.core.errors import BadRequest, problem_responses
from app.rules import explain as explainer
from app.rules import replay as replayer
from app.rules import service
from app.rules.engine import RuleSet
from app.rules.models import Rule, RuleAuditEntry
from app.rules.priority import PriorityMatrix
from app.rules.schemas import (
    AuditEntryRead,
    ExplainIn,
    ExplainOut,
    PriorityMatrixIn,
    PriorityMatrixRead,
    ReplayIn,
    ReplayOut,
    RuleCreate,
    RuleRead,
    RuleReorder,
    RuleUpdate,
)
from app.rules.snapshot import compile_stored_rules
from app.rules.timeline import from_json

router = APIRouter(tags=["rules"], route_class=TransactionRetryRoute)

Reader = Annotated[Principal, Depends(require(Scope.config_read))]
Writer = Annotated[Principal, Depends(require(Scope.config_write))]

# Sorts global rules (no service) before every service's rules.
_NIL = uuid.UUID(int=0)


def _read(rule: Rule) -> RuleRead:
    return RuleRead(
        id=rule.id,
        service_id=rule.service_id,
        position=rule.position,
        name=rule.name,
        description=rule.description,
        enabled=rule.enabled,
        continue_=rule.continue_,
        version=rule.version,
        conditions=rule.conditions,
        actions=rule.actions,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


def _encode_cursor(rule: Rule) -> str:
    raw = json.dumps([str(rule.service_id or _NIL), rule.position]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[uuid.UUID, int]:
    try:
        scope, position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return uuid.UUID(scope), int(position)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadRequest(
            "The cursor is invalid; pass the next_cursor value of a previous page unchanged.",
            field="cursor",
        ) from exc


@router.get("/rules", response_model=Page[RuleRead], responses=problem_responses(400, 401, 403))
async def list_rules(
    session: SessionDep,
    _: Reader,
    service_id: Annotated[
        uuid.UUID | None, Query(description="Only the rules of this service")
    ] = None,
    scope: Annotated[
        Literal["all", "global", "service"], Query(description="global, service or all")
    ] = "all",
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[RuleRead]:
    """List rules in evaluation order: global rules first, then each service's rules."""
    scope_key = func.coalesce(Rule.service_id, _NIL)
    statement = select(Rule).order_by(scope_key, Rule.position)
    if service_id is not None:
        statement = statement.where(Rule.service_id == service_id)
    if scope == "global":
        statement = statement.where(Rule.service_id.is_(None))
    elif scope == "service":
        statement = statement.where(Rule.service_id.is_not(None))
    if cursor:
        statement = statement.where(tuple_(scope_key, Rule.position) > _decode_cursor(cursor))
    rows = list(await session.scalars(statement.limit(limit + 1)))
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return Page(items=[_read(rule) for rule in rows[:limit]], next_cursor=next_cursor)


@router.post(
    "/rules",
    status_code=status.HTTP_201_CREATED,
    response_model=RuleRead,
    responses=problem_responses(401, 403, 422),
)
async def create_rule(
    body: RuleCreate, session: SessionDep, response: Response, principal: Writer
) -> RuleRead:
    """Create a rule. Regexes, time conditions, CEL and templates are checked now: an error
    returns 422 naming the field and the position inside it."""
    rule = await service.create_rule(session, body, actor=principal.as_actor())
    response.headers["Location"] = f"/v1/rules/{rule.id}"
    return _read(rule)


@router.get(
    "/rules/audit-log",
    response_model=Page[AuditEntryRead],
    responses=problem_responses(400, 401, 403),
)
async def list_rule_changes(
    session: SessionDep,
    _: Reader,
    entity_id: Annotated[
        uuid.UUID | None, Query(description="Only the changes of this rule, window or silence")
    ] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[AuditEntryRead]:
    """List changes to rules, the priority matrix, maintenance windows and silences,
    newest first."""
    statement = select(RuleAuditEntry)
    if entity_id is not None:
        statement = statement.where(RuleAuditEntry.entity_id == entity_id)
    rows, next_cursor = await fetch_page(
        session,
        statement,
        time_column=RuleAuditEntry.at,
        id_column=RuleAuditEntry.id,
        limit=limit,
        cursor=cursor,
        newest_first=True,
    )
    return Page(items=[AuditEntryRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/rules/reorder",
    response_model=list[RuleRead],
    responses=problem_responses(401, 403, 422),
)
async def reorder_rules(
    body: RuleReorder, session: SessionDep, principal: Writer
) -> list[RuleRead]:
    """Set the order of every rule of one scope (a service, or the global rules)."""
    rules = await service.reorder_rules(
        session, body.service_id, body.rule_ids, actor=principal.as_actor()
    )
    return [_read(rule) for rule in rules]


@router.post(
    "/rules/explain",
    response_model=ExplainOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def explain_rules(
    body: ExplainIn, session: SessionDep, settings: SettingsDep, _: Reader
) -> Any:
    """Show how a payload would be classified: the normalized events, every rule with the
    condition that matched or failed, silences, maintenance windows and the result.
    Nothing is stored."""
    return await explainer.explain(session, body, settings)


@router.post(
    "/rules/replay",
    response_model=ReplayOut,
    responses=problem_responses(401, 403, 422),
)
async def replay_rules(body: ReplayIn, connection: RawConnectionDep, _: Reader) -> Any:
    """Run a draft rule set over the alerts stored in a time range and report the incidents
    whose priority, route or suppression would change, and the pages that would or would
    not have been sent. Read-only."""
    drafts = service.draft_specs(body.rules) if body.rules is not None else None
    specs, matrix_document = await replayer.load_stored(connection)
    matrix = (
        PriorityMatrix.from_document(body.priority_matrix.model_dump(mode="json"))
        if body.priority_matrix is not None
        else PriorityMatrix.from_document(matrix_document)
    )
    rules = compile_stored_rules(drafts if drafts is not None else specs)
    return await replayer.replay(
        connection,
        RuleSet.build([rule for rule in rules if rule.enabled], matrix),
        since=body.since,
        until=body.until,
        service_id=body.service_id,
        limit=body.limit,
    )


@router.get("/rules/{rule_id}", response_model=RuleRead, responses=problem_responses(401, 403, 404))
async def get_rule(rule_id: uuid.UUID, session: SessionDep, _: Reader) -> RuleRead:
    """Get a rule."""
    return _read(await service.get_rule(session, rule_id))


@router.patch(
    "/rules/{rule_id}", response_model=RuleRead, responses=problem_responses(401, 403, 404, 422)
)
async def update_rule(
    rule_id: uuid.UUID, body: RuleUpdate, session: SessionDep, principal: Writer
) -> RuleRead:
    """Change a rule; its version goes up by one. Fields left out keep their values."""
    rule = await service.update_rule(session, rule_id, body, actor=principal.as_actor())
    return _read(rule)


@router.delete(
    "/rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_rule(rule_id: uuid.UUID, session: SessionDep, principal: Writer) -> None:
    """Delete a rule; the rules after it move up."""
    await service.delete_rule(session, rule_id, actor=principal.as_actor())


def _matrix_read(matrix: PriorityMatrix, version: int, updated_at: Any) -> PriorityMatrixRead:
    return PriorityMatrixRead.model_validate(
        {**matrix.to_document(), "version": version, "updated_at": updated_at}
    )


@router.get(
    "/priority-matrix",
    response_model=PriorityMatrixRead,
    responses=problem_responses(401, 403),
)
async def get_priority_matrix(session: SessionDep, _: Reader) -> PriorityMatrixRead:
    """Return the impact-by-urgency matrix and the impact and urgency of each severity."""
    matrix, row = await service.get_matrix(session)
    return _matrix_read(matrix, row.version if row else 0, row.updated_at if row else None)


@router.put(
    "/priority-matrix",
    response_model=PriorityMatrixRead,
    responses=problem_responses(401, 403, 422),
)
async def put_priority_matrix(
    body: PriorityMatrixIn, session: SessionDep, principal: Writer
) -> PriorityMatrixRead:
    """Replace the matrix and the severity defaults; alerts classified later use them."""
    row = await service.put_matrix(session, body, actor=principal.as_actor())
    return _matrix_read(
        PriorityMatrix.from_document(from_json(row.document)), row.version, row.updated_at
    )
