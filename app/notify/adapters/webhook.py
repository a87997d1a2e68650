"""POST a signed body to the contact method's URL: Tocsin's JSON or a user's Jinja2 template."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.security import hmac_sha256_hex
from app.notify import template_renderer
from app.notify.adapters.http import (
    RESPONSE_EXCERPT_CHARS,
    classify_response,
    parse_retry_after,
    post,
)
from app.notify.base import (
    INCIDENT_TRIGGERED,
    BaseNotifier,
    ContactInput,
    DeliveryResult,
    InvalidContact,
    Message,
    Target,
    build_test_message,
    describe_validation_error,
)

__all__ = [
    "RESPONSE_EXCERPT_CHARS",
    "SIGNATURE_HEADER",
    "WebhookNotifier",
    "classify_response",
    "parse_retry_after",
    "sign",
]

SIGNATURE_HEADER = "X-Tocsin-Signature"
MAX_TEMPLATE_CHARS = 65_536


class WebhookSettings(BaseModel):
    """Per contact method settings of a webhook."""

    model_config = ConfigDict(extra="forbid")

    template: str | None = Field(
        default=None,
        max_length=MAX_TEMPLATE_CHARS,
        description="Jinja2 template of the body; Tocsin's JSON document when unset",
    )
    content_type: str = Field(default="application/json", max_length=200)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the signature header value: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``.

    The HMAC covers ``"<timestamp>." + body``, so a receiver can reject old replays by
    checking the timestamp, and the body cannot be changed without the secret.
    """
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def sign_with_rotation(
    secret: str, previous_secret: str | None, timestamp: int, body: bytes
) -> str:
    """Sign with the current secret and, during a rotation, also with the previous one.

    The header then carries two ``v1`` values; a receiver accepts the request when any
    of them matches the secret it stores, so it can switch secrets at its own pace.
    """
    value = sign(secret, timestamp, body)
    if previous_secret and previous_secret != secret:
        value += f",v1={_digest(previous_secret, timestamp, body)}"
    return value


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac_sha256_hex(secret.encode(), str(timestamp).encode() + b"." + body)


def template_context(message: Message) -> dict[str, Any]:
    """Return the template variables: the message's fields, and ``message`` for all of them."""
    data = message.to_dict()
    return {**data, "message": data}


def render_template(source: str, message: Message) -> str:
    """Render a user's template in Jinja2's sandbox, in a child process limited in time,
    memory and output (MAX_RENDERED_BYTES); raises template_renderer.RenderError."""
    return template_renderer.render(source, template_context(message))


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


@dataclass(frozen=True, slots=True)
class WebhookBody:
    content: bytes
    content_type: str


class WebhookNotifier(BaseNotifier):
    kind: ClassVar[str] = "webhook"

    @classmethod
    def validate_contact(cls, contact: ContactInput) -> ContactInput:
        parts = urlsplit(contact.address)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidContact(
                "address", f"A webhook needs an http or https URL, got {contact.address!r}."
            )
        try:
            settings = WebhookSettings.model_validate(contact.settings)
        except ValidationError as exc:
            raise describe_validation_error(exc, "settings") from exc
        if settings.template is not None:
            _check_template(settings.template, settings.content_type)
        contact.settings = settings.model_dump(exclude_defaults=True)
        return contact

    def render(self, message: Message, target: Target) -> WebhookBody:
        """Build the body; raises template_renderer.RenderError when the user's template
        fails. A template blocks while a child process renders it."""
        template = target.settings.get("template")
        content_type = str(target.settings.get("content_type") or "application/json")
        if not template:
            body = json.dumps(message.to_dict(), ensure_ascii=False, separators=(",", ":"))
            return WebhookBody(body.encode(), "application/json")
        return WebhookBody(render_template(template, message).encode(), content_type)

    def headers(self, message: Message, target: Target, body: bytes) -> dict[str, str]:
        headers = {
            "User-Agent": self.context.user_agent,
            "Idempotency-Key": message.idempotency_key,
            "X-Tocsin-Event": message.event,
        }
        if target.secret:
            headers[SIGNATURE_HEADER] = sign_with_rotation(
                target.secret, target.previous_secret, int(time.time()), body
            )
        return headers

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        if failure := self.options_failure():
            return failure
        try:
            body = await asyncio.to_thread(self.render, message, target)
        except template_renderer.RenderError as exc:
            return DeliveryResult(
                ok=False, retryable=exc.retryable, error=f"body template failed: {exc.message}"
            )
        headers = self.headers(message, target, body.content)
        headers["Content-Type"] = body.content_type
        outcome = await post(
            self.context.http, target.address, content=body.content, headers=headers
        )
        if isinstance(outcome, DeliveryResult):
            return outcome
        return classify_response(outcome)


def _check_template(source: str, content_type: str) -> None:
    """Compile the template and render it for a sample page, so errors show when saving."""
    sample = build_test_message()
    sample = Message.from_dict(
        {**sample.to_dict(), "event": INCIDENT_TRIGGERED, "links": {"view": "https://tocsin"}}
    )
    try:
        rendered = render_template(source, sample)
    except template_renderer.RenderError as exc:
        if exc.message.startswith("Template syntax error"):
            raise InvalidContact("settings.template", exc.message) from exc
        raise InvalidContact(
            "settings.template", f"Template failed on a sample incident: {exc.message}"
        ) from exc
    if _is_json(content_type):
        try:
            json.loads(rendered)
        except ValueError as exc:
            raise InvalidContact(
                "settings.template",
                f"The template's output for a sample incident is not valid JSON ({exc}); "
                "quote strings with the tojson filter, e.g. {{ incident.title | tojson }}, "
                "or set settings.content_type.",
            ) from exc
