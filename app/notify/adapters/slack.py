"""Post pages to Slack: an incoming webhook, or the Web API (chat.postMessage, chat.update).

With the Web API the first message about an incident is updated in place when the
incident is acknowledged or resolved. An incoming webhook cannot edit, so it posts anew.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from app.core.text import truncate
from app.notify import render
from app.notify.adapters.http import failure_from_response, is_retryable_status, post
from app.notify.base import (
    INCIDENT_ACKNOWLEDGED,
    INCIDENT_RESOLVED,
    BaseNotifier,
    CallbackResponse,
    ContactInput,
    DeliveryResult,
    InboundRequest,
    InvalidContact,
    Message,
    NotifierOptions,
    Target,
    describe_validation_error,
    mask_address,
)

# Limits from Slack's Block Kit reference (docs.slack.dev/reference/block-kit).
HEADER_MAX_CHARS = 150
SECTION_MAX_CHARS = 3000
FIELD_MAX_CHARS = 2000
MAX_FIELDS = 10
BUTTON_TEXT_MAX_CHARS = 75
MAX_BUTTONS = 25
# The fallback text is one headline; the cap only matters for an absurdly long title.
FALLBACK_TEXT_MAX_CHARS = 4000
# A signed request older than this is treated as a replay.
CALLBACK_MAX_AGE_SECONDS = 300
# Web API errors that another attempt may fix; every other error is permanent.
RETRYABLE_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_CHANNEL = re.compile(r"^[#@]?[A-Za-z0-9._-]{1,80}$")


class SlackOptions(NotifierOptions):
    api_base_url: str = "https://slack.com/api"
    # The bot token (xoxb-...) used by contact methods that name a channel without a token.
    token: SecretStr | None = None
    # The app's signing secret, to check button clicks sent to the callback URL.
    signing_secret: SecretStr | None = None


class SlackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(default=None, min_length=8, max_length=512)


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackNotifier(BaseNotifier):
    kind: ClassVar[str] = "slack"
    options_model: ClassVar[type[NotifierOptions]] = SlackOptions
    options: SlackOptions

    @classmethod
    def validate_contact(cls, contact: ContactInput) -> ContactInput:
        try:
            settings = SlackSettings.model_validate(contact.settings)
        except ValidationError as exc:
            raise describe_validation_error(exc, "settings") from exc
        address = contact.address.strip()
        if "://" in address:
            parts = urlsplit(address)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidContact(
                    "address",
                    f"An incoming webhook needs an https URL, got {mask_address(address)!r}.",
                )
            # The webhook URL is the credential: store it encrypted, show it masked.
            contact.secrets["webhook_url"] = address
            contact.address = mask_address(address)
        elif _CHANNEL.match(address):
            contact.address = address
        else:
            raise InvalidContact(
                "address",
                "Give a Slack channel ID such as C0123ABCD (Web API) or an incoming "
                f"webhook URL, got {address!r}.",
            )
        if settings.token:
            contact.secrets["token"] = settings.token
        contact.settings = {}
        return contact

    def render(self, message: Message, target: Target) -> dict[str, Any]:
        """Build the chat.postMessage (or webhook) body: fallback text and blocks."""
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": truncate(render.headline(message), HEADER_MAX_CHARS),
                    "emoji": True,
                },
            }
        ]
        fields = [
            {
                "type": "mrkdwn",
                "text": truncate(f"*{label}*\n{escape_mrkdwn(value)}", FIELD_MAX_CHARS),
            }
            for label, value in render.facts(message)[:MAX_FIELDS]
        ]
        if fields:
            blocks.append({"type": "section", "fields": fields})
        digest = render.digest_lines(message)
        if digest:
            text = "\n".join(f"• {escape_mrkdwn(line)}" for line in digest)
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": truncate(text, SECTION_MAX_CHARS)},
                }
            )
        buttons = [
            {
                "type": "button",
                # The contract of the interactivity endpoint (/callbacks/slack/interactions):
                # the action's name after "tocsin:", and the incident id as the value.
                "action_id": f"tocsin:{item.name}",
                "text": {
                    "type": "plain_text",
                    "text": truncate(item.label, BUTTON_TEXT_MAX_CHARS),
                },
                "url": item.url,
                "value": str(message.incident.get("id") or item.name),
                **({"style": "primary"} if item.name == "acknowledge" else {}),
            }
            for item in render.link_items(message)[:MAX_BUTTONS]
        ]
        if buttons:
            blocks.append({"type": "actions", "elements": buttons})
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"Tocsin · {render.event_label(message)}"}],
            }
        )
        return {
            # The fallback text is parsed as mrkdwn, so sender-controlled text is escaped.
            "text": escape_mrkdwn(truncate(render.headline(message), FALLBACK_TEXT_MAX_CHARS)),
            "blocks": blocks,
        }

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        webhook_url = target.secrets.get("webhook_url")
        payload = self.render(message, target)
        if webhook_url:
            return await self._post_webhook(webhook_url, payload)
        if failure := self.options_failure():
            return failure
        token = target.secrets.get("token") or (
            self.options.token.get_secret_value() if self.options.token else None
        )
        if not token:
            return DeliveryResult(
                ok=False,
                error="no Slack token: set settings.token on the contact method or "
                "TOCSIN_NOTIFIERS__SLACK__TOKEN",
            )
        thread = message.thread or {}
        if message.event in (INCIDENT_ACKNOWLEDGED, INCIDENT_RESOLVED) and thread.get("ts"):
            updated = await self._call(
                "chat.update",
                token,
                {**payload, "channel": thread.get("channel") or target.address, "ts": thread["ts"]},
            )
            if updated.ok or updated.retryable:
                return updated
            # The original is gone or not editable: reply in its thread instead.
            payload = {**payload, "thread_ts": thread["ts"]}
        return await self._call(
            "chat.postMessage",
            token,
            {**payload, "channel": target.address, "unfurl_links": False, "unfurl_media": False},
        )

    async def _post_webhook(self, url: str, payload: dict[str, Any]) -> DeliveryResult:
        outcome = await post(
            self.context.http,
            url,
            json=payload,
            headers={"User-Agent": self.context.user_agent},
        )
        if isinstance(outcome, DeliveryResult):
            return outcome
        if outcome.is_success:
            return DeliveryResult(ok=True, status_code=outcome.status_code)
        return failure_from_response(outcome, outcome.text[:100] or None)

    async def _call(self, method: str, token: str, body: dict[str, Any]) -> DeliveryResult:
        url = f"{self.options.api_base_url.rstrip('/')}/{method}"
        outcome = await post(
            self.context.http,
            url,
            json=body,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": self.context.user_agent,
            },
        )
        if isinstance(outcome, DeliveryResult):
            return outcome
        return _api_result(outcome)

    async def handle_callback(self, request: InboundRequest) -> CallbackResponse:
        """Check a Slack interaction's signature and acknowledge it.

        The buttons are URL buttons that open the action links, so Slack only needs a
        200 response. The clicked action is returned for the log.
        """
        secret = self.options.signing_secret
        if secret is None:
            return CallbackResponse(404, b"Slack callbacks are not configured")
        if not verify_slack_signature(
            secret.get_secret_value(),
            request.headers.get("x-slack-request-timestamp", ""),
            request.body,
            request.headers.get("x-slack-signature", ""),
        ):
            return CallbackResponse(401, b"invalid or expired Slack signature")
        payload = _interaction_payload(request.body)
        if payload.get("type") == "url_verification":
            return CallbackResponse(
                200, str(payload.get("challenge", "")).encode(), media_type="text/plain"
            )
        actions = payload.get("actions") or []
        action = {
            "type": payload.get("type"),
            "actions": [str(item.get("value", "")) for item in actions if isinstance(item, dict)],
            "user": (payload.get("user") or {}).get("id"),
        }
        return CallbackResponse(200, b"", action=action)


def _api_result(response: httpx.Response) -> DeliveryResult:
    if not response.is_success:
        return failure_from_response(response)
    try:
        data = response.json()
    except ValueError:
        return DeliveryResult(
            ok=False,
            retryable=True,
            status_code=response.status_code,
            error="Slack answered with a body that is not JSON",
            response_excerpt=response.text[:200],
        )
    if data.get("ok"):
        return DeliveryResult(
            ok=True,
            status_code=response.status_code,
            external_ref={"channel": data.get("channel"), "ts": data.get("ts")},
        )
    error = str(data.get("error") or "unknown_error")
    return DeliveryResult(
        ok=False,
        retryable=error in RETRYABLE_API_ERRORS or is_retryable_status(response.status_code),
        status_code=response.status_code,
        error=f"Slack API error: {error}",
        response_excerpt=response.text[:200],
    )


def verify_slack_signature(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Check Slack's ``v0`` request signature: HMAC-SHA256 over ``v0:<timestamp>:<body>``."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - sent_at) > CALLBACK_MAX_AGE_SECONDS:
        return False
    basestring = f"v0:{timestamp}:".encode() + body
    expected = "v0=" + hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())


def _interaction_payload(body: bytes) -> dict[str, Any]:
    """Decode an interaction (form field ``payload``) or an Events API JSON body."""
    text = body.decode("utf-8", errors="replace")
    try:
        if text.lstrip().startswith("{"):
            value = json.loads(text)
        else:
            value = json.loads(parse_qs(text).get("payload", ["{}"])[0])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
