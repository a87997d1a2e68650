"""Demo data: one service with integrations, a responder paged in the console, an admin API key.

Keys are derived from the instance secret, so running the demo again prints the same keys
without storing them in clear anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.keys import create_api_key
from app.api.models import ApiKey
from app.core.config import Settings
from app.core.security import API_KEY_PREFIX, hash_key
from app.escalation.models import EscalationLevel, EscalationPolicy
from app.oncall.models import ContactMethod, User
from app.services import service as services
from app.services.models import Integration, Service

DEMO_SERVICE = "Demo service"
DEMO_POLICY = "Demo escalation policy"
DEMO_USER_EMAIL = "oncall@example.com"
DEMO_INTEGRATION_KINDS = (
    "alertmanager",
    "grafana",
    "pagerduty",
    "opsgenie",
    "generic",
    "heartbeat",
)
# Settings of the demo integrations that need some; a heartbeat needs its interval.
DEMO_INTEGRATION_SETTINGS: dict[str, dict[str, Any]] = {"heartbeat": {"interval_seconds": 300}}


def derived_secret(settings: Settings, purpose: str, length: int) -> str:
    digest = hmac.new(settings.signing_key(), f"tocsin demo {purpose}".encode(), hashlib.sha256)
    return digest.hexdigest()[:length]


async def _ensure_user(session: AsyncSession) -> User:
    user = await session.scalar(select(User).where(func.lower(User.email) == DEMO_USER_EMAIL))
    if user is None:
        user = User(name="Demo Responder", email=DEMO_USER_EMAIL, time_zone="UTC")
        session.add(user)
        await session.flush()
    has_log = await session.scalar(
        select(ContactMethod.id).where(
            ContactMethod.user_id == user.id, ContactMethod.kind == "log"
        )
    )
    if has_log is None:
        session.add(ContactMethod(user_id=user.id, kind="log", name="Server console"))
        await session.flush()
    return user


async def _ensure_policy(session: AsyncSession, user: User) -> EscalationPolicy:
    policy = await session.scalar(
        select(EscalationPolicy).where(func.lower(EscalationPolicy.name) == DEMO_POLICY.lower())
    )
    if policy is None:
        policy = EscalationPolicy(name=DEMO_POLICY, description="Pages the demo responder.")
        session.add(policy)
        await session.flush()
        session.add(
            EscalationLevel(
                policy_id=policy.id,
                position=0,
                delay_minutes=5,
                targets=[{"type": "user", "id": str(user.id)}],
            )
        )
        await session.flush()
    return policy


async def ensure_demo(session: AsyncSession, settings: Settings) -> dict[str, Any]:
    """Create the demo objects that are missing and return the keys and URLs to use them."""
    user = await _ensure_user(session)
    policy = await _ensure_policy(session, user)
    service = await services.find_service_by_name(session, DEMO_SERVICE)
    if service is None:
        service = await services.create_service(
            session,
            name=DEMO_SERVICE,
            description="Created by `tocsin demo`.",
            escalation_policy_id=policy.id,
        )

    integrations: dict[str, dict[str, str]] = {}
    for kind in DEMO_INTEGRATION_KINDS:
        key = derived_secret(settings, f"integration {kind}", 32)
        existing = await session.scalar(
            select(Integration).where(Integration.key_hash == hash_key(key))
        )
        if existing is None:
            await services.create_integration(
                session,
                service,
                name=f"Demo {kind}",
                kind=kind,
                settings=DEMO_INTEGRATION_SETTINGS.get(kind, {}),
                key=key,
            )
        integrations[kind] = {
            "key": key,
            "url": services.ingest_url(settings.public_base_url, kind, key),
        }

    api_key = API_KEY_PREFIX + "demo_" + derived_secret(settings, "api key", 40)
    if await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(api_key))) is None:
        await create_api_key(session, name="Demo admin", scopes=["admin"], key=api_key)

    return {
        "api_key": api_key,
        "services": [{"id": str(service.id), "name": service.name, "integrations": integrations}],
        "users": [{"id": str(user.id), "name": user.name, "email": user.email}],
        "escalation_policies": [{"id": str(policy.id), "name": policy.name}],
    }


async def has_services(session: AsyncSession) -> bool:
    return await session.scalar(select(Service.id).limit(1)) is not None
