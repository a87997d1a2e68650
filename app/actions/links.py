"""Mint the signed action links and SMS reply codes that a notification carries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.actions import catalog, tokens
from app.core.config import Settings
from app.core.time import utcnow
from app.escalation import engine
from app.incidents.models import Incident
from app.oncall.models import UserRole

LINK_PATH = "/a/"


def has_next_level(incident: Incident, *, next_step: int | None = None) -> bool:
    """Tell whether the frozen escalation policy still has a step to page.

    ``next_step`` defaults to the incident's next position in the policy. Paging moves
    that position only after it builds its messages, so it passes the position after the
    one it is paging.
    """
    frozen = incident.escalation_snapshot
    if frozen is None:
        return False
    step = incident.escalation_position if next_step is None else next_step
    return step < engine.total_steps(frozen)


def incident_state(incident: Incident, *, next_step: int | None = None) -> catalog.IncidentState:
    return catalog.IncidentState(
        status=incident.status, can_escalate=has_next_level(incident, next_step=next_step)
    )


def link_url(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url}{LINK_PATH}{token}"


def mint_token(
    settings: Settings,
    keyring: tokens.Keyring,
    *,
    spec: catalog.ActionSpec,
    incident: Incident,
    user_id: uuid.UUID,
    now: datetime,
) -> str:
    return tokens.sign(
        keyring,
        action_code=spec.code,
        incident_number=incident.number,
        incident_id=incident.id,
        user_id=user_id,
        expires_at=now + settings.actions.link_ttl,
    )


def action_links(
    settings: Settings,
    *,
    incident: Incident,
    recipient: dict[str, Any],
    escalation_step: int | None = None,
) -> dict[str, str]:
    """Return action name -> signed URL for the actions that apply to the incident now.

    ``escalation_step`` is the step a page is sent for. A recipient without a ``user_id``
    (a resolved notice to a deleted user, say) gets no links.
    """
    user_id = recipient.get("user_id")
    if not user_id:
        return {}
    # Observers only watch: their messages carry the view link alone.
    watch_only = recipient.get("role") == UserRole.observer
    next_step = None if escalation_step is None else escalation_step + 1
    keyring = tokens.Keyring.from_settings(settings)
    now = utcnow()
    links = {}
    for spec in catalog.applicable(incident_state(incident, next_step=next_step)):
        if watch_only and spec.changes_state:
            continue
        token = mint_token(
            settings,
            keyring,
            spec=spec,
            incident=incident,
            user_id=uuid.UUID(str(user_id)),
            now=now,
        )
        links[spec.name] = link_url(settings, token)
    return links


def reply_codes(incident: Incident, *, escalation_step: int | None = None) -> dict[str, str]:
    """Return action name -> SMS reply code such as ``42a``, for the actions that apply now."""
    next_step = None if escalation_step is None else escalation_step + 1
    return {
        spec.name: f"{incident.number}{spec.reply_letter}"
        for spec in catalog.applicable(incident_state(incident, next_step=next_step))
        if spec.reply_letter is not None
    }
