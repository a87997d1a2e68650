"""Slack interactive buttons: verify the request, act as the mapped user, update the message.

Buttons follow one contract: ``action_id`` is ``tocsin:<action name>`` (a name from the
action catalog, e.g. ``tocsin:acknowledge``) and ``value`` is the incident id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.actions import catalog, registry
from app.actions.links import incident_state
from app.actions.models import ChatIdentity
from app.actions.slack_update import ACTION_ID_PREFIX, SlackMessageUpdate, update_job
from app.actions.web import parse_form, read_body
from app.api.deps import SessionDep, SettingsDep
from app.core.db import raw_connection
from app.core.errors import BadRequest, Conflict, NotFound, Unauthorized, problem_responses
from app.core.logging import get_logger
from app.core.time import utcnow
from app.incidents.models import Incident
from app.jobs.queue import enqueue
from app.oncall.models import User
from app.services.models import Service

log = get_logger(__name__)

router = APIRouter(prefix="/callbacks", tags=["callbacks"])

PROVIDER = "slack"
# A request whose timestamp is further from the server clock than this may be a replay.
MAX_CLOCK_SKEW_SECONDS = 300
MAX_BODY_BYTES = 256 * 1024


def verify_signature(
    secret: str, *, timestamp: str | None, signature: str | None, body: bytes, now: datetime
) -> None:
    """Check Slack's v0 signature: HMAC-SHA256 of ``v0:<timestamp>:<raw body>``.

    Raises Unauthorized for a missing, stale or wrong signature.
    """
    if not timestamp or not signature:
        raise Unauthorized(
            "Missing X-Slack-Request-Timestamp or X-Slack-Signature header.", field="headers"
        )
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise Unauthorized(
            "X-Slack-Request-Timestamp must be Unix seconds.", field="headers"
        ) from exc
    if abs(now.timestamp() - sent_at) > MAX_CLOCK_SKEW_SECONDS:
        raise Unauthorized(
            f"X-Slack-Request-Timestamp is more than {MAX_CLOCK_SKEW_SECONDS} seconds from "
            "the server's clock; the request may be a replay.",
            field="headers",
        )
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Unauthorized("X-Slack-Signature does not match the body.", field="headers")


def _parse_payload(body: bytes) -> dict[str, Any]:
    raw = parse_form(body).get("payload")
    if raw is None:
        raise BadRequest("The form has no payload field.", field="payload")
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"payload is not valid JSON: {exc}", field="payload") from exc
    if not isinstance(payload, dict):
        raise BadRequest("payload must be a JSON object.", field="payload")
    if payload.get("type") != "block_actions":
        raise BadRequest(
            f"payload.type {payload.get('type')!r} is not handled; only block_actions is.",
            field="payload.type",
        )
    return payload


def _first_action(payload: dict[str, Any]) -> tuple[catalog.ActionSpec | None, str]:
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise BadRequest("payload.actions must hold at least one action.", field="payload.actions")
    action_id = str(actions[0].get("action_id", ""))
    name = (
        action_id.removeprefix(ACTION_ID_PREFIX) if action_id.startswith(ACTION_ID_PREFIX) else ""
    )
    spec = catalog.ACTIONS.get(name)
    if spec is not None and not spec.changes_state:
        spec = None
    return spec, str(actions[0].get("value", ""))


async def find_user(session: AsyncSession, *, team_id: str, slack_user_id: str) -> User | None:
    """Find the Tocsin user mapped to a Slack member; a mapping without a team matches any."""
    identity = await session.scalar(
        select(ChatIdentity)
        .where(
            ChatIdentity.provider == PROVIDER,
            ChatIdentity.external_user_id == slack_user_id,
            ChatIdentity.team_id.in_([team_id, ""]),
        )
        # A mapping for this exact team wins over a team-less one.
        .order_by(ChatIdentity.team_id.desc())
        .limit(1)
    )
    if identity is None:
        return None
    return await session.get(User, identity.user_id)


async def _note(session: AsyncSession, response_url: str, text: str) -> None:
    if not response_url:
        return
    update = SlackMessageUpdate(response_url=response_url, text=text, replace_original=False)
    await enqueue(await raw_connection(session), [update_job(update)])


def _notifier_signing_secret(settings: Any) -> SecretStr | None:
    """The Slack notifier's signing secret (TOCSIN_NOTIFIERS__SLACK__SIGNING_SECRET), if set."""
    options = (getattr(settings, "notifiers", None) or {}).get("slack") or {}
    value = options.get("signing_secret")
    if isinstance(value, SecretStr):
        return value
    return SecretStr(str(value)) if value else None


@router.post(
    "/slack/interactions",
    response_class=Response,
    responses={
        200: {"description": "Handled; the message is updated after the commit"},
        **problem_responses(400, 401, 404, 413),
    },
    summary="Slack interactive buttons",
)
async def slack_interaction(
    request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Perform a Tocsin button's action as the Tocsin user mapped to the Slack member.

    Send as Slack does: a form body with a ``payload`` JSON field, signed with the app's
    signing secret (``TOCSIN_ACTIONS__SLACK_SIGNING_SECRET``).
    """
    secret = settings.actions.slack_signing_secret or _notifier_signing_secret(settings)
    if secret is None:
        raise NotFound(
            "Slack callbacks are off; set TOCSIN_ACTIONS__SLACK_SIGNING_SECRET to the Slack "
            "app's signing secret."
        )
    body = await read_body(request, MAX_BODY_BYTES)
    now = utcnow()
    verify_signature(
        secret.get_secret_value(),
        timestamp=request.headers.get("x-slack-request-timestamp"),
        signature=request.headers.get("x-slack-signature"),
        body=body,
        now=now,
    )
    payload = _parse_payload(body)
    spec, value = _first_action(payload)
    response_url = str(payload.get("response_url") or "")
    slack_user = payload.get("user") or {}
    slack_user_id = str(slack_user.get("id", ""))
    team_id = str((payload.get("team") or {}).get("id") or slack_user.get("team_id") or "")

    if spec is None:
        await _note(session, response_url, "This button is not a Tocsin action.")
        return Response(status_code=200)
    user = await find_user(session, team_id=team_id, slack_user_id=slack_user_id)
    if user is None:
        log.info("slack.unmapped_user", slack_user_id=slack_user_id, team_id=team_id)
        await _note(
            session,
            response_url,
            f"Your Slack account ({slack_user_id}) is not linked to a Tocsin user, so nothing "
            "was done. An admin can link it under the user's chat identities.",
        )
        return Response(status_code=200)
    try:
        incident_id = uuid.UUID(value)
    except ValueError:
        incident_id = None
    incident = await session.get(Incident, incident_id) if incident_id else None
    if incident is None:
        await _note(session, response_url, "That incident no longer exists in Tocsin.")
        return Response(status_code=200)

    try:
        result = await registry.perform(
            session, incident_id=incident.id, spec=spec, actor=registry.user_actor(user, "slack")
        )
    except Conflict as error:
        await _note(session, response_url, f"Nothing was changed: {error.detail}")
        return Response(status_code=200)
    service = await session.get(Service, result.incident.service_id)
    update = SlackMessageUpdate(
        response_url=response_url,
        text=registry.describe_result(result, now),
        replace_original=True,
        incident={
            "id": str(result.incident.id),
            "number": result.incident.number,
            "title": result.incident.title,
            "status": result.incident.status,
            "priority": result.incident.priority,
            "service": service.name if service else "",
        },
        actions=[s.name for s in catalog.applicable(incident_state(result.incident))],
    )
    if response_url:
        await enqueue(await raw_connection(session), [update_job(update)])
    log.info(
        "slack.action",
        incident_id=str(incident.id),
        action=spec.name,
        user_id=str(user.id),
        changed=result.changed,
    )
    return Response(status_code=200)
