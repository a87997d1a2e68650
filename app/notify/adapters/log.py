"""Print pages to the server's console: the notifier for trying Tocsin out."""

from __future__ import annotations

import logging
from typing import ClassVar

from app.core.logging import PAGE_LOGGER
from app.notify import render
from app.notify.base import BaseNotifier, DeliveryResult, Message, Target

page_log = logging.getLogger(PAGE_LOGGER)


def render_text(message: Message) -> str:
    lines = render.plain_text(message).splitlines()
    lines.insert(1, f"to: {message.recipient.get('name', '?')}")
    return "\n  ".join(lines)


class LogNotifier(BaseNotifier):
    kind: ClassVar[str] = "log"

    def render(self, message: Message, target: Target) -> str:
        return render_text(message)

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        page_log.warning("PAGE %s", self.render(message, target))
        return DeliveryResult(ok=True)
