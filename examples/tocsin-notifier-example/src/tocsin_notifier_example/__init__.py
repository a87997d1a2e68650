"""Send Tocsin pages to an ntfy server (https://docs.ntfy.sh/publish/), as a JSON publish."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from app.notify import render
from app.notify.adapters.http import classify_response, post
from app.notify.base import (
    BaseNotifier,
    ContactInput,
    DeliveryResult,
    InvalidContact,
    Message,
    NotifierOptions,
    Target,
)

# ntfy topic names: letters, digits, '-' and '_', at most 64 characters.
_TOPIC = re.compile(r"^[-_A-Za-z0-9]{1,64}$")
# ntfy priorities run from 1 (min) to 5 (max); Tocsin's P1 is the most urgent.
PRIORITIES = {"P1": 5, "P2": 4, "P3": 3, "P4": 2, "P5": 1}
TAGS = {
    "incident.triggered": "rotating_light",
    "incident.acknowledged": "eyes",
    "incident.resolved": "white_check_mark",
}
# ntfy shows at most three action buttons.
MAX_ACTIONS = 3


class NtfyOptions(NotifierOptions):
    server_url: str = "https://ntfy.sh"
    token: SecretStr | None = None


class NtfyNotifier(BaseNotifier):
    kind: ClassVar[str] = "ntfy"
    options_model: ClassVar[type[NotifierOptions]] = NtfyOptions
    options: NtfyOptions

    @classmethod
    def validate_contact(cls, contact: ContactInput) -> ContactInput:
        topic = contact.address.strip()
        if not _TOPIC.match(topic):
            raise InvalidContact(
                "address", f"An ntfy topic has 1-64 letters, digits, '-' or '_', got {topic!r}."
            )
        if contact.settings:
            raise InvalidContact("settings", "The ntfy notifier takes no settings.")
        contact.address = topic
        return contact

    def render(self, message: Message, target: Target) -> dict[str, Any]:
        lines = [f"{label}: {value}" for label, value in render.facts(message)]
        lines += render.digest_lines(message)
        body: dict[str, Any] = {
            "topic": target.address,
            "title": render.headline(message),
            "message": "\n".join(lines) or render.headline(message),
            "priority": PRIORITIES.get(str(message.incident.get("priority")), 3),
            "tags": [TAGS[message.event]] if message.event in TAGS else [],
            "actions": [
                {"action": "view", "label": item.label, "url": item.url}
                for item in render.link_items(message)[:MAX_ACTIONS]
            ],
        }
        if message.links.get("view"):
            body["click"] = message.links["view"]
        return body

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        if failure := self.options_failure():
            return failure
        headers = {"User-Agent": self.context.user_agent}
        if self.options.token:
            headers["Authorization"] = f"Bearer {self.options.token.get_secret_value()}"
        outcome: httpx.Response | DeliveryResult = await post(
            self.context.http,
            self.options.server_url.rstrip("/") + "/",
            json=self.render(message, target),
            headers=headers,
        )
        if isinstance(outcome, DeliveryResult):
            return outcome
        return classify_response(outcome)
