"""Send pages by SMS through Twilio's REST API or a generic HTTP SMS gateway.

A page fits in ``max_segments`` segments (two by default): the text is cut, the one
action link it carries is not.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, ClassVar, Literal

import httpx
import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field, SecretStr

from app.notify import render
from app.notify.adapters.http import basic_auth_header, classify_response, post
from app.notify.base import (
    INCIDENT_RESOLVED,
    INCIDENT_TRIGGERED,
    NOTIFICATION_DIGEST,
    BaseNotifier,
    ContactInput,
    DeliveryResult,
    InvalidContact,
    Message,
    NotifierOptions,
    Target,
)
from app.notify.sms_text import fit

# E.164: a plus sign, a country code not starting with 0, at most 15 digits in all.
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_gateway_templates = SandboxedEnvironment(autoescape=False, undefined=jinja2.StrictUndefined)
# The one link an SMS carries, in order of preference.
SMS_LINKS = ("acknowledge", "view")
# The gateway template's ``event`` for a text that carries a verification code.
VERIFICATION_EVENT = "contact_method.verification"


class SmsOptions(NotifierOptions):
    provider: Literal["twilio", "http"] = "twilio"
    from_number: str | None = None
    max_segments: int = Field(default=2, ge=1, le=10)
    # Twilio.
    api_base_url: str = "https://api.twilio.com"
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    messaging_service_sid: str | None = None
    # Generic gateway: a POST of gateway_body_template (JSON by default) to gateway_url.
    gateway_url: str | None = None
    gateway_token: SecretStr | None = None
    gateway_token_header: str = "Authorization"  # noqa: S105 - a header name
    gateway_token_prefix: str = "Bearer "  # noqa: S105 - the scheme, not a token
    gateway_body_template: str = (
        '{"to": {{ to | tojson }}, "from": {{ from_number | tojson }}, "text": {{ text | tojson }}}'
    )
    gateway_content_type: str = "application/json"


def normalize_phone_number(value: str) -> str:
    """Strip spaces, dots, dashes and brackets; the result must be E.164."""
    return re.sub(r"[\s().-]", "", value)


# Actions offered as SMS reply codes, with the word shown after each code.
REPLY_WORDS = (("acknowledge", "to ack"), ("resolve", "to resolve"))


def sms_text(message: Message, max_segments: int) -> str:
    """Compose the SMS: state, priority, incident and service, then one short link."""
    incident = message.incident
    if message.event == NOTIFICATION_DIGEST:
        body = f"Tocsin: {render.headline(message)}. " + "; ".join(render.digest_lines(message))
    else:
        state = {INCIDENT_TRIGGERED: "", INCIDENT_RESOLVED: "RESOLVED "}.get(
            message.event, f"{render.event_label(message).upper()} "
        )
        priority = f"{incident['priority']} " if incident.get("priority") else ""
        service = (incident.get("service") or {}).get("name")
        body = f"{state}{priority}{render.incident_name(incident)}"
        if service:
            body += f" ({service})"
    suffix = ""
    for name in SMS_LINKS:
        url = message.links.get(name)
        if url:
            label = "Ack" if name == "acknowledge" else "View"
            suffix = f"\n{label}: {url}"
            break
    # Reply codes let the responder act by answering the text (Twilio inbound webhook).
    codes = incident.get("reply_codes") or {}
    replies = [f"{codes[name]} {word}" for name, word in REPLY_WORDS if codes.get(name)]
    if replies and message.event == INCIDENT_TRIGGERED:
        suffix += "\nReply " + ", ".join(replies)
    return fit(body, suffix, max_segments)


def verification_text(code: str) -> str:
    return f"Tocsin verification code: {code}. Enter it in Tocsin to get pages at this number."


class SmsNotifier(BaseNotifier):
    kind: ClassVar[str] = "sms"
    # Acknowledgements are not texted, because each SMS costs money and the responder who
    # acknowledged needs no message about it.
    events: ClassVar[frozenset[str]] = frozenset({INCIDENT_TRIGGERED, INCIDENT_RESOLVED})
    options_model: ClassVar[type[NotifierOptions]] = SmsOptions
    options: SmsOptions

    @classmethod
    def validate_contact(cls, contact: ContactInput) -> ContactInput:
        number = normalize_phone_number(contact.address)
        if not _E164.match(number):
            raise InvalidContact(
                "address",
                f"Give the phone number in E.164 form, such as +14155550123, got "
                f"{contact.address!r}.",
            )
        unknown = sorted(set(contact.settings) - {"throttle"})
        if unknown:
            raise InvalidContact(
                f"settings.{unknown[0]}", f"Unknown SMS setting {unknown[0]!r}; only throttle."
            )
        contact.address = number
        return contact

    def render(self, message: Message, target: Target) -> str:
        return sms_text(message, self.options.max_segments)

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        if failure := self.options_failure():
            return failure
        text = self.render(message, target)
        if self.options.provider == "twilio":
            return await self._send_twilio(target.address, text)
        return await self._send_gateway(
            target.address, text, idempotency_key=message.idempotency_key, event=message.event
        )

    async def send_verification(self, target: Target, code: str) -> DeliveryResult:
        """Text a one-time code, so contact methods are paged only once a person enters it."""
        if failure := self.options_failure():
            return failure
        text = verification_text(code)
        if self.options.provider == "twilio":
            return await self._send_twilio(target.address, text)
        # Every retry of one code sends the same key, and hashing keeps the code out of it.
        digest = hashlib.sha256(f"{target.address}:{code}".encode()).hexdigest()[:32]
        return await self._send_gateway(
            target.address,
            text,
            idempotency_key=f"verification:{digest}",
            event=VERIFICATION_EVENT,
        )

    async def _send_twilio(self, to: str, text: str) -> DeliveryResult:
        options = self.options
        if not options.account_sid or not options.auth_token:
            return DeliveryResult(
                ok=False,
                error="Twilio is not configured: set TOCSIN_NOTIFIERS__SMS__ACCOUNT_SID and "
                "TOCSIN_NOTIFIERS__SMS__AUTH_TOKEN",
            )
        form = {"To": to, "Body": text}
        if options.messaging_service_sid:
            form["MessagingServiceSid"] = options.messaging_service_sid
        elif options.from_number:
            form["From"] = options.from_number
        else:
            return DeliveryResult(
                ok=False,
                error="set TOCSIN_NOTIFIERS__SMS__FROM_NUMBER or "
                "TOCSIN_NOTIFIERS__SMS__MESSAGING_SERVICE_SID",
            )
        url = (
            f"{options.api_base_url.rstrip('/')}/2010-04-01/Accounts/"
            f"{options.account_sid}/Messages.json"
        )
        outcome = await post(
            self.context.http,
            url,
            data=form,
            headers={
                "Authorization": basic_auth_header(
                    options.account_sid, options.auth_token.get_secret_value()
                ),
                "User-Agent": self.context.user_agent,
            },
        )
        if isinstance(outcome, DeliveryResult):
            return outcome
        return _with_reference(classify_response(outcome), outcome, "sid")

    async def _send_gateway(
        self, to: str, text: str, *, idempotency_key: str, event: str
    ) -> DeliveryResult:
        options = self.options
        if not options.gateway_url:
            return DeliveryResult(
                ok=False, error="no SMS gateway: set TOCSIN_NOTIFIERS__SMS__GATEWAY_URL"
            )
        try:
            body = _gateway_templates.from_string(options.gateway_body_template).render(
                to=to, from_number=options.from_number or "", text=text, event=event
            )
        except jinja2.TemplateError as exc:
            return DeliveryResult(ok=False, error=f"gateway body template failed: {exc}")
        headers = {
            "Content-Type": options.gateway_content_type,
            "User-Agent": self.context.user_agent,
            "Idempotency-Key": idempotency_key,
        }
        if options.gateway_token:
            headers[options.gateway_token_header] = (
                options.gateway_token_prefix + options.gateway_token.get_secret_value()
            )
        outcome = await post(
            self.context.http, options.gateway_url, content=body.encode(), headers=headers
        )
        if isinstance(outcome, DeliveryResult):
            return outcome
        return _with_reference(classify_response(outcome), outcome, "id")


def _with_reference(result: DeliveryResult, response: httpx.Response, key: str) -> DeliveryResult:
    if not result.ok:
        return result
    try:
        data: Any = response.json()
    except (ValueError, json.JSONDecodeError):
        data = None
    reference = data.get(key) if isinstance(data, dict) else None
    return DeliveryResult(
        ok=True,
        status_code=result.status_code,
        response_excerpt=result.response_excerpt,
        external_ref={key: reference} if reference else None,
    )
