"""Post pages to Mattermost through an incoming webhook, as a colored message attachment."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import truncate
from app.notify import render
from app.notify.adapters.http import (
    IncomingWebhookNotifier,
    parse_settings,
    store_url_as_secret,
)
from app.notify.base import ContactInput, Message, Target

# Mattermost's maximum post length: 16,383 characters, counted in code points.
MESSAGE_MAX_CHARS = 16_383
TITLE_MAX_CHARS = 1000


class MattermostSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Overrides the webhook's default channel and user name when the webhook allows it.
    channel: str | None = Field(default=None, max_length=64)
    username: str | None = Field(default=None, max_length=64)


def escape_markdown_link_text(text: str) -> str:
    return text.replace("[", "\\[").replace("]", "\\]")


class MattermostNotifier(IncomingWebhookNotifier):
    kind: ClassVar[str] = "mattermost"

    @classmethod
    def validate_contact(cls, contact: ContactInput) -> ContactInput:
        settings = parse_settings(MattermostSettings, contact)
        contact.settings = settings.model_dump(exclude_none=True)
        return store_url_as_secret(contact, "Mattermost incoming")

    def render(self, message: Message, target: Target) -> dict[str, Any]:
        links = " · ".join(
            f"[{escape_markdown_link_text(item.label)}]({item.url})"
            for item in render.link_items(message)
        )
        text_lines = [*render.digest_lines(message)]
        if links:
            text_lines.append(links)
        headline = truncate(render.headline(message), TITLE_MAX_CHARS)
        attachment: dict[str, Any] = {
            "fallback": headline,
            "color": "#" + render.color(message),
            "title": headline,
            "fields": [
                {"short": True, "title": label, "value": value}
                for label, value in render.facts(message)
            ],
            "text": truncate("\n".join(text_lines), MESSAGE_MAX_CHARS - len(headline)),
        }
        view = message.links.get("view")
        if view:
            attachment["title_link"] = view
        payload: dict[str, Any] = {"attachments": [attachment]}
        for name in ("channel", "username"):
            if target.settings.get(name):
                payload[name] = target.settings[name]
        return payload
