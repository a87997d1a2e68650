"""Post an Adaptive Card to a Microsoft Teams channel through a Workflows webhook.

The Workflows app's "When a Teams webhook request is received" trigger accepts a
message with Adaptive Card attachments.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from app.core.text import truncate
from app.notify import render
from app.notify.adapters.http import (
    IncomingWebhookNotifier,
    parse_settings,
    store_url_as_secret,
)
from app.notify.base import ContactInput, Message, Target

ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
# The card uses no element newer than schema 1.4.
ADAPTIVE_CARD_VERSION = "1.4"
TITLE_MAX_CHARS = 500
FACT_VALUE_MAX_CHARS = 500
MAX_ACTIONS = 6
# Adaptive Card text colors for the incident's new state.
EVENT_STYLES = {
    "incident.triggered": "Attention",
    "incident.acknowledged": "Warning",
    "incident.resolved": "Good",
}


class TeamsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeamsNotifier(IncomingWebhookNotifier):
    kind: ClassVar[str] = "teams"

    @classmethod
    def validate_contact(cls, contact: ContactInput) -> ContactInput:
        parse_settings(TeamsSettings, contact)
        contact.settings = {}
        return store_url_as_secret(contact, "Teams Workflows")

    def render(self, message: Message, target: Target) -> dict[str, Any]:
        body: list[dict[str, Any]] = [
            {
                "type": "TextBlock",
                "text": truncate(render.headline(message), TITLE_MAX_CHARS),
                "size": "Large",
                "weight": "Bolder",
                "color": EVENT_STYLES.get(message.event, "Default"),
                "wrap": True,
            }
        ]
        facts = [
            {"title": label, "value": truncate(value, FACT_VALUE_MAX_CHARS)}
            for label, value in render.facts(message)
        ]
        if facts:
            body.append({"type": "FactSet", "facts": facts})
        for line in render.digest_lines(message):
            body.append(
                {"type": "TextBlock", "text": truncate(line, TITLE_MAX_CHARS), "wrap": True}
            )
        actions = [
            {"type": "Action.OpenUrl", "title": item.label, "url": item.url}
            for item in render.link_items(message)[:MAX_ACTIONS]
        ]
        card: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": ADAPTIVE_CARD_VERSION,
            "body": body,
            "msteams": {"width": "Full"},
        }
        if actions:
            card["actions"] = actions
        return {
            "type": "message",
            "attachments": [
                {"contentType": ADAPTIVE_CARD_CONTENT_TYPE, "contentUrl": None, "content": card}
            ],
        }
