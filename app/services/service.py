"""Services and their integrations."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.security import hash_key, new_integration_key
from app.escalation.models import EscalationPolicy
from app.services.models import Integration, Service


def ingest_url(base_url: str, kind: str, key: str) -> str:
    """Return the URL a sender of ``kind`` posts to. PagerDuty and Opsgenie senders post to
    their vendor's path and carry the key in the body (routing_key) or the Authorization
    header."""
    if kind == "pagerduty":
        return f"{base_url}/v2/enqueue"
    if kind == "opsgenie":
        return f"{base_url}/v2/alerts"
    return f"{base_url}/ingest/{kind}/{key}"


async def get_service(session: AsyncSession, service_id: uuid.UUID) -> Service:
    service = await session.get(Service, service_id)
    if service is None:
        raise NotFound(f"Service {service_id} does not exist.", field="service_id")
    return service


async def check_policy_exists(session: AsyncSession, policy_id: uuid.UUID | None) -> None:
    if policy_id is not None and await session.get(EscalationPolicy, policy_id) is None:
        raise NotFound(
            f"Escalation policy {policy_id} does not exist.", field="escalation_policy_id"
        )


async def find_service_by_name(session: AsyncSession, name: str) -> Service | None:
    statement = select(Service).where(func.lower(Service.name) == name.lower())
    return await session.scalar(statement)


def check_grouping(service: Service) -> None:
    if service.grouping_mode == "by_fields" and not service.grouping_fields:
        raise Unprocessable(
            'grouping_mode by_fields needs grouping_fields, e.g. ["cluster", "alertname"].',
            field="grouping_fields",
        )


async def create_service(session: AsyncSession, **values: Any) -> Service:
    await check_policy_exists(session, values.get("escalation_policy_id"))
    values = {name: value for name, value in values.items() if value is not None}
    if await find_service_by_name(session, values["name"]) is not None:
        raise Conflict(f"A service named {values['name']!r} already exists.", field="name")
    service = Service(**values)
    check_grouping(service)
    session.add(service)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A service named {values['name']!r} already exists.", field="name") from exc
    return service


async def update_service(
    session: AsyncSession, service: Service, changes: dict[str, Any]
) -> Service:
    if "escalation_policy_id" in changes:
        await check_policy_exists(session, changes["escalation_policy_id"])
    if "name" in changes:
        existing = await find_service_by_name(session, changes["name"])
        if existing is not None and existing.id != service.id:
            raise Conflict(f"A service named {changes['name']!r} already exists.", field="name")
    for name, value in changes.items():
        if name in ("grouping_mode", "grouping_fields") and value is None:
            value = "intelligent" if name == "grouping_mode" else []
        setattr(service, name, value)
    check_grouping(service)
    await session.flush()
    return service


async def create_integration(
    session: AsyncSession,
    service: Service,
    *,
    name: str,
    kind: str,
    settings: dict[str, Any],
    key: str | None = None,
) -> tuple[Integration, str]:
    """Create an integration and return it with its key, which is stored only as a hash."""
    key = key or new_integration_key()
    integration = Integration(
        service_id=service.id,
        name=name,
        kind=kind,
        key_hash=hash_key(key),
        key_hint=key[-4:],
        settings=settings,
    )
    session.add(integration)
    await session.flush()
    return integration, key


async def get_integration(session: AsyncSession, integration_id: uuid.UUID) -> Integration:
    integration = await session.get(Integration, integration_id)
    if integration is None:
        raise NotFound(f"Integration {integration_id} does not exist.", field="integration_id")
    return integration
