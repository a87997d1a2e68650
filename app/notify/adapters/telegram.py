"""Send pages to a Telegram chat through the Bot API (sendMessage, HTML formatting).

Acknowledged and resolved notices reply to the first message about the incident, so
they appear attached to it in the chat.
"""

from __future__ import annotations

import html
import re
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from app.core.text import truncate, utf16_length
from app.notify import render
from app.notify.adapters.http import (
    MAX_RETRY_AFTER_SECONDS,
    failure_from_response,
    parse_settings,
    post,
)
from app.notify.base import (
    BaseNotifier,
    ContactInput,
    DeliveryResult,
    InvalidContact,
    Message,
    NotifierOptions,
    Target,
)

# sendMessage accepts 1-4096 characters after entity parsing, counted in UTF-16 units.
TEXT_MAX_UNITS = 4096
MAX_BUTTONS_PER_ROW = 3
# A numeric chat id (negative for groups and channels) or a public @channelusername.
_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")


class TelegramOptions(NotifierOptions):
    api_base_url: str = "https://api.telegram.org"
    # The bot token from @BotFather, for contact methods that do not bring their own.
    bot_token: SecretStr | None = None


class TelegramSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_token: str | None = Field(default=None, min_length=20, max_length=200)


class TelegramNotifier(BaseNotifier):
    kind: ClassVar[str] = "telegram"
    options_model: ClassVar[type[NotifierOptions]] = TelegramOptions
    options: TelegramOptions

    @classmethod
    def validate_contact(cls, contact: ContactInput) -> ContactInput:
        settings = parse_settings(TelegramSettings, contact)
        address = contact.address.strip()
        if not _CHAT_ID.match(address):
            raise InvalidContact(
                "address",
                f"A Telegram chat id is a number such as -1001234567890 or @channelname, "
                f"got {address!r}.",
            )
        contact.address = address
        if settings.bot_token:
            contact.secrets["bot_token"] = settings.bot_token
        contact.settings = {}
        return contact

    def render(self, message: Message, target: Target) -> dict[str, Any]:
        headline = render.headline(message)
        lines = [f"{label}: {value}" for label, value in render.facts(message)]
        lines += render.digest_lines(message)
        # Cut the visible text before escaping, so no HTML entity or tag is split.
        budget = TEXT_MAX_UNITS - utf16_length(headline) - 1
        body = truncate("\n".join(lines), max(budget, 0), measure=utf16_length)
        if budget < 0:
            headline = truncate(headline, TEXT_MAX_UNITS, measure=utf16_length)
        text = f"<b>{html.escape(headline, quote=False)}</b>"
        if body:
            text += "\n" + html.escape(body, quote=False)
        payload: dict[str, Any] = {
            "chat_id": target.address,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        buttons = [{"text": item.label, "url": item.url} for item in render.link_items(message)]
        if buttons:
            rows = [
                buttons[index : index + MAX_BUTTONS_PER_ROW]
                for index in range(0, len(buttons), MAX_BUTTONS_PER_ROW)
            ]
            payload["reply_markup"] = {"inline_keyboard": rows}
        reply_to = (message.thread or {}).get("message_id")
        if reply_to is not None:
            payload["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }
        return payload

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        if failure := self.options_failure():
            return failure
        token = target.secrets.get("bot_token") or (
            self.options.bot_token.get_secret_value() if self.options.bot_token else None
        )
        if not token:
            return DeliveryResult(
                ok=False,
                error="no Telegram bot token: set settings.bot_token on the contact method "
                "or TOCSIN_NOTIFIERS__TELEGRAM__BOT_TOKEN",
            )
        url = f"{self.options.api_base_url.rstrip('/')}/bot{token}/sendMessage"
        outcome = await post(
            self.context.http,
            url,
            json=self.render(message, target),
            headers={"User-Agent": self.context.user_agent},
        )
        if isinstance(outcome, DeliveryResult):
            # The token is part of the URL; never let it reach the delivery log.
            error = (outcome.error or "").replace(token, "***")
            return DeliveryResult(ok=False, retryable=outcome.retryable, error=error)
        return _result(outcome)


def _result(response: httpx.Response) -> DeliveryResult:
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if response.is_success and data.get("ok"):
        result = data.get("result") or {}
        return DeliveryResult(
            ok=True,
            status_code=response.status_code,
            external_ref={
                "message_id": result.get("message_id"),
                "chat_id": (result.get("chat") or {}).get("id"),
            },
        )
    failure = failure_from_response(response, str(data.get("description") or "") or None)
    retry_after = (data.get("parameters") or {}).get("retry_after")
    if isinstance(retry_after, int | float) and failure.retry_after is None:
        return DeliveryResult(
            ok=False,
            retryable=failure.retryable,
            status_code=failure.status_code,
            error=failure.error,
            retry_after=min(float(retry_after), MAX_RETRY_AFTER_SECONDS),
            response_excerpt=failure.response_excerpt,
        )
    return failure
