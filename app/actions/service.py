"""Open and use action links: verify a token against the database, perform its action once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.actions import catalog, registry, tokens
from app.actions.models import ActionLinkUse
from app.core.config import Settings
from app.core.logging import get_logger
from app.incidents import service as incidents
from app.incidents.models import Incident
from app.oncall.models import User
from app.services.models import Service

log = get_logger(__name__)

# Rows of used links are kept this long after the link expired, then deleted.
USE_RETENTION_AFTER_EXPIRY_DAYS = 7
# At most this many old rows are deleted per use, so no request pays for a backlog.
USE_CLEANUP_BATCH = 100


@dataclass(frozen=True, slots=True)
class OpenedLink:
    spec: catalog.ActionSpec
    incident: Incident
    service: Service
    user: User
    claims: tokens.LinkClaims
    mac: bytes


async def open_link(
    session: AsyncSession, settings: Settings, token: str, *, now: datetime
) -> OpenedLink:
    """Verify ``token`` and load what it names; raise a LinkError subclass otherwise."""
    parsed = tokens.parse(token)
    keyring = tokens.Keyring.from_settings(settings)
    tokens.check_key(parsed, keyring)
    incident = await session.scalar(
        select(Incident).where(Incident.number == parsed.claims.incident_number)
    )
    if incident is None:
        # The same answer as a bad signature, so a forged link cannot probe which
        # incident numbers exist.
        raise tokens.LinkInvalid(f"no incident #{parsed.claims.incident_number}")
    claims = tokens.verify(parsed, keyring=keyring, incident_id=incident.id, now=now)
    spec = catalog.by_code(claims.action_code)
    if spec is None:
        raise tokens.LinkInvalid(f"unknown action code {claims.action_code}")
    user = await session.get(User, claims.user_id)
    if user is None:
        # The signature is valid, so saying why reveals nothing to someone who forged it.
        raise tokens.LinkUserGone(f"user {claims.user_id} no longer exists")
    service = await session.get(Service, incident.service_id)
    assert service is not None  # incidents are deleted with their service
    return OpenedLink(
        spec=spec, incident=incident, service=service, user=user, claims=claims, mac=parsed.mac
    )


async def previous_use(session: AsyncSession, link: OpenedLink) -> ActionLinkUse | None:
    return await session.get(ActionLinkUse, link.mac)


async def use_link(
    session: AsyncSession, link: OpenedLink, *, now: datetime
) -> tuple[registry.ActionResult, ActionLinkUse | None]:
    """Perform the link's action unless the link was used before.

    Returns the result and, for a link used before, its earlier use. Two concurrent
    requests with one link race on the primary key, so only one performs the action.
    """
    inserted = await session.scalar(
        insert(ActionLinkUse)
        .values(
            mac=link.mac,
            incident_id=link.incident.id,
            user_id=link.user.id,
            action=link.spec.name,
            used_at=now,
            expires_at=link.claims.expires_at,
        )
        .on_conflict_do_nothing(index_elements=["mac"])
        .returning(ActionLinkUse.mac)
    )
    if inserted is None:
        earlier = await previous_use(session, link)
        incident = await incidents.get_incident(session, link.incident.id)
        return registry.ActionResult(spec=link.spec, incident=incident, changed=False), earlier

    result = await registry.perform(
        session,
        incident_id=link.incident.id,
        spec=link.spec,
        actor=registry.user_actor(link.user, "link"),
    )
    outcome = registry.describe_result(result, now)
    use = await session.get(ActionLinkUse, link.mac)
    assert use is not None
    use.outcome = outcome
    await _delete_old_uses(session, now)
    log.info(
        "action_link.used",
        incident_id=str(link.incident.id),
        user_id=str(link.user.id),
        action=link.spec.name,
        changed=result.changed,
    )
    return result, None


async def _delete_old_uses(session: AsyncSession, now: datetime) -> None:
    cutoff = now - timedelta(days=USE_RETENTION_AFTER_EXPIRY_DAYS)
    old = (
        select(ActionLinkUse.mac)
        .where(ActionLinkUse.expires_at < cutoff)
        .limit(USE_CLEANUP_BATCH)
        .scalar_subquery()
    )
    await session.execute(delete(ActionLinkUse).where(ActionLinkUse.mac.in_(old)))
