"""The notifier contract: a message value in, one delivery attempt out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx


@dataclass(frozen=True, slots=True)
class Message:
    """What a notification says, built by the caller; notifiers never read the database."""

    notification_id: str
    idempotency_key: str
    # incident.triggered, incident.acknowledged or incident.resolved
    event: str
    incident: dict[str, Any]
    recipient: dict[str, Any]
    # Action name -> URL (acknowledge, resolve, view...).
    links: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notification_id": self.notification_id,
            "idempotency_key": self.idempotency_key,
            "event": self.event,
            "incident": self.incident,
            "recipient": self.recipient,
            "links": self.links,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return cls(
            notification_id=data["notification_id"],
            idempotency_key=data["idempotency_key"],
            event=data["event"],
            incident=data["incident"],
            recipient=data["recipient"],
            links=data.get("links", {}),
        )


@dataclass(frozen=True, slots=True)
class Target:
    """Where to deliver: a contact method with its secret decrypted."""

    kind: str
    address: str
    secret: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def masked(self) -> str:
        """The address with anything that may be a credential hidden, for the delivery log."""
        if "://" in self.address:
            scheme, rest = self.address.split("://", 1)
            host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
            return f"{scheme}://{host}/***" if "/" in rest else f"{scheme}://{host}"
        if len(self.address) > 4:
            return "***" + self.address[-4:]
        return self.address


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    ok: bool
    # False for failures that another attempt cannot fix (most 4xx answers).
    retryable: bool = False
    status_code: int | None = None
    error: str | None = None
    # Seconds the receiver asked us to wait (Retry-After), if any.
    retry_after: float | None = None
    response_excerpt: str | None = None


class Notifier(Protocol):
    kind: ClassVar[str]

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        """Deliver one message once; never raise for delivery failures, report them."""
        ...


@runtime_checkable
class VerifyingNotifier(Notifier, Protocol):
    """A notifier that can prove a person receives what it sends (SMS, voice, e-mail).

    Contact methods of such a notifier are paged only after their owner has entered the
    code it delivered. Notifiers without this method deliver to unverified contact methods.
    """

    async def send_verification(self, target: Target, code: str) -> DeliveryResult:
        """Deliver ``code`` to ``target`` once; report failures instead of raising."""
        ...


@dataclass(frozen=True, slots=True)
class NotifierContext:
    """What a notifier gets when it is built: shared clients and settings."""

    http: httpx.AsyncClient
    user_agent: str
