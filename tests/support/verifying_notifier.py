"""A notifier that verifies its contact methods, registered as an entry point in tests.

It stands for the SMS, voice and e-mail notifiers: it POSTs pages and codes as JSON to
the contact method's address, a real HTTP server on 127.0.0.1 in tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import httpx

from app.notify.base import DeliveryResult, Message, NotifierContext, Target

KIND = "code_sms"


class CodeNotifier:
    kind: ClassVar[str] = KIND

    def __init__(self, context: NotifierContext) -> None:
        self.context = context

    async def _post(self, target: Target, body: dict[str, object]) -> DeliveryResult:
        try:
            response = await self.context.http.post(target.address, json=body)
        except httpx.TransportError as exc:
            return DeliveryResult(ok=False, retryable=True, error=repr(exc))
        if response.is_success:
            return DeliveryResult(ok=True, status_code=response.status_code)
        return DeliveryResult(
            ok=False, retryable=response.status_code >= 500, status_code=response.status_code
        )

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        return await self._post(target, {"page": message.to_dict()})

    async def send_verification(self, target: Target, code: str) -> DeliveryResult:
        return await self._post(target, {"verification_code": code})


def install_entry_point(directory: Path) -> Path:
    """Write a dist-info that registers CodeNotifier; put ``directory`` on sys.path to use it."""
    info = directory / "tocsin_test_notifiers-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tocsin-test-notifiers\nVersion: 0\n"
    )
    (info / "entry_points.txt").write_text(
        f"[tocsin.notifiers]\n{KIND} = tests.support.verifying_notifier:CodeNotifier\n"
    )
    return directory
