"""Post pages to a Discord channel through a channel webhook, as an embed.

The webhook is called with ``wait=true`` so Discord returns the message id, and later
notices about the same incident edit that message.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from app.core.text import truncate
from app.notify import render
from app.notify.adapters.http import classify_response, parse_settings, post, store_url_as_secret
from app.notify.base import (
    INCIDENT_ACKNOWLEDGED,
    INCIDENT_RESOLVED,
    BaseNotifier,
    ContactInput,
    DeliveryResult,
    Message,
    Target,
)

# Limits from Discord's message and embed reference (discord.com/developers/docs).
CONTENT_MAX_CHARS = 2000
TITLE_MAX_CHARS = 256
DESCRIPTION_MAX_CHARS = 4096
FIELD_NAME_MAX_CHARS = 256
FIELD_VALUE_MAX_CHARS = 1024
MAX_FIELDS = 25
# Discord also caps an embed at 6,000 characters in total. Title and description take
# at most 4,352 of them and the facts stay short (a service name has at most 200).


class DiscordSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(default=None, max_length=80)


def escape_markdown(text: str) -> str:
    for char in "\\*_~`|>[]()":
        text = text.replace(char, "\\" + char)
    return text


def with_query(url: str, query: str) -> str:
    parts = urlsplit(url)
    joined = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit(parts._replace(query=joined))


def message_url(webhook_url: str, message_id: str) -> str:
    parts = urlsplit(webhook_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + f"/messages/{message_id}"))


class DiscordNotifier(BaseNotifier):
    kind: ClassVar[str] = "discord"

    @classmethod
    def validate_contact(cls, contact: ContactInput) -> ContactInput:
        settings = parse_settings(DiscordSettings, contact)
        contact.settings = settings.model_dump(exclude_none=True)
        return store_url_as_secret(contact, "Discord")

    def render(self, message: Message, target: Target) -> dict[str, Any]:
        headline = render.headline(message)
        description_lines = [escape_markdown(line) for line in render.digest_lines(message)]
        description_lines += [
            f"[{escape_markdown(item.label)}]({item.url})" for item in render.link_items(message)
        ]
        embed: dict[str, Any] = {
            "title": truncate(headline, TITLE_MAX_CHARS),
            "color": int(render.color(message), 16),
            "fields": [
                {
                    "name": truncate(label, FIELD_NAME_MAX_CHARS),
                    "value": truncate(value, FIELD_VALUE_MAX_CHARS),
                    "inline": True,
                }
                for label, value in render.facts(message)[:MAX_FIELDS]
            ],
            "footer": {"text": "Tocsin"},
        }
        if description_lines:
            embed["description"] = truncate("\n".join(description_lines), DESCRIPTION_MAX_CHARS)
        if message.links.get("view"):
            embed["url"] = message.links["view"]
        payload: dict[str, Any] = {
            "content": truncate(headline, CONTENT_MAX_CHARS),
            "embeds": [embed],
            # Titles come from monitoring systems: never let them ping @everyone.
            "allowed_mentions": {"parse": []},
        }
        if target.settings.get("username"):
            payload["username"] = target.settings["username"]
        return payload

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        if failure := self.options_failure():
            return failure
        url = target.secrets.get("webhook_url")
        if not url:
            return DeliveryResult(ok=False, error="the contact method has no webhook URL")
        payload = self.render(message, target)
        message_id = (message.thread or {}).get("message_id")
        if message.event in (INCIDENT_ACKNOWLEDGED, INCIDENT_RESOLVED) and message_id:
            edit = {key: value for key, value in payload.items() if key != "username"}
            edited = await self._request("PATCH", message_url(url, str(message_id)), edit)
            if edited.ok or edited.retryable:
                return edited
            # The message was deleted: post a new one.
        return await self._request("POST", with_query(url, "wait=true"), payload)

    async def _request(self, method: str, url: str, payload: dict[str, Any]) -> DeliveryResult:
        outcome = await post(
            self.context.http,
            url,
            json=payload,
            method=method,
            headers={"User-Agent": self.context.user_agent},
        )
        if isinstance(outcome, DeliveryResult):
            return outcome
        result = classify_response(outcome)
        if result.ok:
            return DeliveryResult(
                ok=True,
                status_code=result.status_code,
                external_ref={"message_id": _message_id(outcome)},
            )
        return result


def _message_id(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return str(data["id"]) if isinstance(data, dict) and data.get("id") else None
