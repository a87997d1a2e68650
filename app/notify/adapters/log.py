"""Print pages to the server's console: the notifier for trying Tocsin out."""

from __future__ import annotations

import logging
from typing import ClassVar

from app.notify.base import DeliveryResult, Message, NotifierContext, Target

page_log = logging.getLogger("tocsin.page")


def render_text(message: Message) -> str:
    incident = message.incident
    lines = [
        f"[{message.event}] #{incident['number']} {incident['title']}",
        f"  service: {incident['service']['name']}  priority: {incident.get('priority') or '-'}"
        f"  status: {incident['status']}",
        f"  to: {message.recipient.get('name', '?')}",
    ]
    lines += [f"  {action}: {url}" for action, url in message.links.items()]
    return "\n".join(lines)


class LogNotifier:
    kind: ClassVar[str] = "log"

    def __init__(self, context: NotifierContext) -> None:
        self.context = context

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        page_log.warning("PAGE %s", render_text(message))
        return DeliveryResult(ok=True)
