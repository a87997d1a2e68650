"""SMS replies through Twilio's incoming-message webhook: ``42a`` acknowledges incident #42.

A reply code works only from a phone number that Tocsin paged about that incident (an
``sms`` contact method with that address) within the action link lifetime, by a page or a
digest that was sent. Any other code gets a reply that calls it unknown or stale.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from datetime import datetime
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.actions import catalog, registry
from app.actions.web import parse_form, read_body
from app.api.deps import SessionDep, SettingsDep
from app.core.config import Settings
from app.core.errors import Conflict, Forbidden, NotFound, problem_responses
from app.core.logging import get_logger
from app.core.time import utcnow
from app.oncall.models import User

log = get_logger(__name__)

router = APIRouter(prefix="/callbacks", tags=["callbacks"])

SMS_CONTACT_KIND = "sms"
# Twilio's own limit for an incoming request body is far below this.
MAX_BODY_BYTES = 64 * 1024
_REPLY_CODE = re.compile(r"^\s*#?(\d{1,18})\s*([a-z])\s*[.!]?\s*$", re.IGNORECASE)

_PAGED_PHONE = text(
    """
    SELECT n.incident_id, n.user_id
    FROM notifications n
    JOIN contact_methods c ON c.id = n.contact_method_id
    JOIN incidents i ON i.id = n.incident_id
    WHERE i.number = :number
      AND c.kind = :kind
      AND regexp_replace(c.address, '[^0-9+]', '', 'g') = :phone
      AND n.user_id IS NOT NULL
      AND n.created_at >= :since
      -- The phone must have shown the incident: the page itself, or a digest listing it.
      AND (
        n.status = 'sent'
        OR EXISTS (
          SELECT 1 FROM notifications d WHERE d.id = n.digest_id AND d.status = 'sent'
        )
      )
    ORDER BY n.created_at DESC
    LIMIT 1
    """
)


def normalize_phone(value: str) -> str:
    """Keep ``+`` and digits: ``+1 (415) 555-0100`` and ``+14155550100`` compare equal."""
    return re.sub(r"[^0-9+]", "", value)


def expected_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's X-Twilio-Signature: Base64 of HMAC-SHA1 over the URL and the sorted
    parameters, each name followed by its value."""
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def public_url(settings: Settings, request: Request) -> str:
    """Return the URL Twilio posted to and signed: the public one, also behind a proxy."""
    url = settings.public_base_url + request.url.path
    return f"{url}?{request.url.query}" if request.url.query else url


def twiml(message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Message>{escape(message)}</Message></Response>"
    )
    return Response(body, media_type="application/xml")


def _help() -> str:
    letters = ", ".join(
        f"{spec.reply_letter} {spec.label.lower()}"
        for spec in catalog.ACTIONS.values()
        if spec.reply_letter
    )
    return f"Reply with the incident number and a letter, e.g. 42a. Letters: {letters}."


async def _paged_user(
    session: AsyncSession, *, number: int, phone: str, since: datetime
) -> tuple[uuid.UUID, uuid.UUID] | None:
    row = (
        await session.execute(
            _PAGED_PHONE,
            {"number": number, "kind": SMS_CONTACT_KIND, "phone": phone, "since": since},
        )
    ).first()
    return (row.incident_id, row.user_id) if row else None


@router.post(
    "/twilio/sms",
    response_class=Response,
    responses={
        200: {
            "description": "TwiML with the reply to send back",
            "content": {"application/xml": {}},
        },
        **problem_responses(403, 404, 413),
    },
    summary="Twilio incoming SMS",
)
async def twilio_sms(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Act on a reply code such as ``42a`` sent from a phone that was paged about #42.

    Send as Twilio does: a form body signed with the account's auth token
    (``TOCSIN_ACTIONS__TWILIO_AUTH_TOKEN``) over the URL under ``TOCSIN_PUBLIC_URL``.
    """
    auth_token = settings.actions.twilio_auth_token
    if auth_token is None:
        raise NotFound(
            "Twilio callbacks are off; set TOCSIN_ACTIONS__TWILIO_AUTH_TOKEN to the Twilio "
            "account's auth token."
        )
    params = parse_form(await read_body(request, MAX_BODY_BYTES))
    signature = request.headers.get("x-twilio-signature", "")
    expected = expected_signature(
        auth_token.get_secret_value(), public_url(settings, request), params
    )
    if not signature or not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Forbidden(
            "X-Twilio-Signature is missing or does not match; check that TOCSIN_PUBLIC_URL is "
            "the URL configured in Twilio.",
            field="headers",
        )

    phone = normalize_phone(params.get("From", ""))
    match = _REPLY_CODE.match(params.get("Body", ""))
    if match is None:
        return twiml(_help())
    number, letter = int(match.group(1)), match.group(2).lower()
    spec = catalog.by_reply_letter(letter)
    if spec is None:
        return twiml(f"Unknown code {number}{letter}. {_help()}")

    now = utcnow()
    paged = None
    if phone:
        paged = await _paged_user(
            session, number=number, phone=phone, since=now - settings.actions.link_ttl
        )
    user = await session.get(User, paged[1]) if paged else None
    if paged is None or user is None:
        log.info("sms.code_rejected", incident_number=number, reason="unknown or stale")
        return twiml(
            f"Code {number}{letter} is unknown or stale: this number was not paged about "
            f"incident #{number} recently."
        )
    try:
        result = await registry.perform(
            session, incident_id=paged[0], spec=spec, actor=registry.user_actor(user, "sms")
        )
    except Conflict as error:
        return twiml(f"#{number}: nothing was changed. {error.detail}")
    log.info(
        "sms.action",
        incident_id=str(paged[0]),
        action=spec.name,
        user_id=str(user.id),
        changed=result.changed,
    )
    return twiml(f"#{number}: {registry.describe_result(result, now)}")
