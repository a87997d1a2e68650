"""POST a signed JSON body to the contact method's URL."""

from __future__ import annotations

import json
import time
from typing import ClassVar

import httpx

from app.core.security import hmac_sha256_hex
from app.notify.base import DeliveryResult, Message, NotifierContext, Target

SIGNATURE_HEADER = "X-Tocsin-Signature"
# The excerpt of a receiver's answer kept in the delivery log.
RESPONSE_EXCERPT_BYTES = 512
MAX_RETRY_AFTER_SECONDS = 3600.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the signature header value: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``.

    The HMAC covers ``"<timestamp>." + body``, so a receiver can reject old replays by
    checking the timestamp, and the body cannot be changed without the secret.
    """
    digest = hmac_sha256_hex(secret.encode(), str(timestamp).encode() + b"." + body)
    return f"t={timestamp},v1={digest}"


def parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def classify_response(response: httpx.Response) -> DeliveryResult:
    excerpt = response.text[:RESPONSE_EXCERPT_BYTES] if response.content else None
    if response.is_success:
        return DeliveryResult(ok=True, status_code=response.status_code, response_excerpt=excerpt)
    retryable = response.status_code in (408, 425, 429) or response.status_code >= 500
    return DeliveryResult(
        ok=False,
        retryable=retryable,
        status_code=response.status_code,
        error=f"receiver answered HTTP {response.status_code}",
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        response_excerpt=excerpt,
    )


class WebhookNotifier:
    kind: ClassVar[str] = "webhook"

    def __init__(self, context: NotifierContext) -> None:
        self.context = context

    def build_request(self, message: Message, target: Target) -> httpx.Request:
        body = json.dumps(message.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.context.user_agent,
            "Idempotency-Key": message.idempotency_key,
            "X-Tocsin-Event": message.event,
        }
        if target.secret:
            headers[SIGNATURE_HEADER] = sign(target.secret, int(time.time()), body)
        return self.context.http.build_request(
            "POST", target.address, content=body, headers=headers
        )

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        request = self.build_request(message, target)
        try:
            response = await self.context.http.send(request)
        except httpx.TimeoutException:
            return DeliveryResult(ok=False, retryable=True, error="timed out")
        except httpx.TransportError as exc:
            return DeliveryResult(ok=False, retryable=True, error=f"connection failed: {exc!r}")
        return classify_response(response)
