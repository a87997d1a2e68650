"""The notifier contract: a message value in, one delivery attempt out."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

INCIDENT_TRIGGERED = "incident.triggered"
INCIDENT_ACKNOWLEDGED = "incident.acknowledged"
INCIDENT_RESOLVED = "incident.resolved"
# One message that summarises the notifications a throttle held back.
NOTIFICATION_DIGEST = "notification.digest"
# A message sent to check a contact method's settings; it is about no real incident.
NOTIFICATION_TEST = "notification.test"
INCIDENT_EVENTS = frozenset({INCIDENT_TRIGGERED, INCIDENT_ACKNOWLEDGED, INCIDENT_RESOLVED})


@dataclass(frozen=True, slots=True)
class Message:
    """What a notification says, built by the caller; notifiers never read the database."""

    notification_id: str
    idempotency_key: str
    # incident.triggered, incident.acknowledged, incident.resolved, notification.digest
    # or notification.test
    event: str
    incident: dict[str, Any]
    recipient: dict[str, Any]
    # Action name -> URL (acknowledge, resolve, view...).
    links: dict[str, str] = field(default_factory=dict)
    # What the first delivery about this incident to the same contact method returned
    # (a Slack channel and ts, a Telegram message id...), so a notifier can update or
    # reply to that message instead of posting a new one. None for the first message.
    thread: dict[str, Any] | None = None
    # For notification.digest: one summary per held notification, oldest first.
    digest: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "notification_id": self.notification_id,
            "idempotency_key": self.idempotency_key,
            "event": self.event,
            "incident": self.incident,
            "recipient": self.recipient,
            "links": self.links,
        }
        if self.thread is not None:
            data["thread"] = self.thread
        if self.digest is not None:
            data["digest"] = self.digest
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return cls(
            notification_id=data["notification_id"],
            idempotency_key=data["idempotency_key"],
            event=data["event"],
            incident=data["incident"],
            recipient=data["recipient"],
            links=data.get("links", {}),
            thread=data.get("thread"),
            digest=data.get("digest"),
        )


def build_test_message(recipient_name: str = "") -> Message:
    """Build the message a contact method's test sends: a made-up P5 incident."""
    notification_id = str(uuid.uuid4())
    return Message(
        notification_id=notification_id,
        idempotency_key=f"test:{notification_id}",
        event=NOTIFICATION_TEST,
        incident={
            "id": "00000000-0000-0000-0000-000000000000",
            "number": 0,
            "title": "Test notification from Tocsin: this contact method works",
            "status": "triggered",
            "priority": "P5",
            "urgency": "low",
            "severity": "info",
            "alert_count": 0,
            "service": {"id": None, "name": "Tocsin"},
            "created_at": None,
            "url": None,
        },
        recipient={"name": recipient_name},
    )


@dataclass(frozen=True, slots=True)
class Target:
    """Where to deliver: a contact method with its secrets decrypted."""

    kind: str
    address: str
    # The signing secret (webhook) or the main token of the contact method.
    secret: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    # Named secret settings: tokens, and URLs that carry a credential (Slack, Teams and
    # Discord webhook URLs). The address of such a contact method is stored masked.
    secrets: dict[str, str] = field(default_factory=dict)
    # The signing secret before the last rotation while its grace period lasts.
    previous_secret: str | None = None

    def masked(self) -> str:
        """Return the address with anything that may be a credential hidden, for the log."""
        if "***" in self.address:
            return self.address
        return mask_address(self.address)


def mask_address(address: str) -> str:
    """Hide the path and user info of a URL, or all but the last four characters otherwise."""
    if "://" in address:
        scheme, rest = address.split("://", 1)
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        return f"{scheme}://{host}/***" if "/" in rest else f"{scheme}://{host}"
    if len(address) > 4:
        return "***" + address[-4:]
    return address


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    ok: bool
    # False for failures that another attempt cannot fix (most 4xx answers).
    retryable: bool = False
    # The HTTP status, or the SMTP reply code for e-mail.
    status_code: int | None = None
    error: str | None = None
    # Seconds the receiver asked us to wait (Retry-After), if any.
    retry_after: float | None = None
    response_excerpt: str | None = None
    # The receiver's id of the message it stored (Slack channel and ts, Telegram message
    # id...); later messages about the same incident get it as Message.thread.
    external_ref: dict[str, Any] | None = None


class Notifier(Protocol):
    """A channel adapter. ``render`` builds the channel's payload, ``send`` delivers it once.

    The registry looks up the optional parts with ``getattr``. A class attribute
    ``events`` lists the events the notifier delivers (all incident events when absent).
    A classmethod ``validate_contact`` checks contact methods (see ``ContactInput``).
    The ``Verifiable`` and ``CallbackHandler`` methods below complete the set.
    """

    kind: ClassVar[str]

    def render(self, message: Message, target: Target) -> Any:
        """Turn the message into this channel's payload; no I/O."""
        ...

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        """Deliver one message once; never raise for delivery failures, report them."""
        ...


@runtime_checkable
class Verifiable(Protocol):
    async def verify(self, target: Target) -> DeliveryResult:
        """Send a test message to ``target`` and report whether it arrived."""
        ...


@dataclass(frozen=True, slots=True)
class InboundRequest:
    """An HTTP request a chat service sent to Tocsin (a button click, a reply)."""

    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class CallbackResponse:
    status_code: int = 200
    body: bytes = b""
    media_type: str = "text/plain"
    # The action the request asks of Tocsin, e.g. {"action": "acknowledge", ...}, or None
    # when the response is all it needs.
    action: dict[str, Any] | None = None


@runtime_checkable
class CallbackHandler(Protocol):
    async def handle_callback(self, request: InboundRequest) -> CallbackResponse:
        """Check an inbound request's authenticity and build the response."""


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
    """What a notifier gets when it is built: shared clients and its instance options."""

    http: httpx.AsyncClient
    user_agent: str
    # This notifier's part of TOCSIN_NOTIFIERS, e.g. TOCSIN_NOTIFIERS__EMAIL__HOST.
    options: Mapping[str, Any] = field(default_factory=dict)
    # Builds the SMTP client for the e-mail notifier; None means aiosmtplib.SMTP.
    smtp_factory: Callable[..., Any] | None = None


@dataclass(slots=True)
class ContactInput:
    """A contact method as a user submits it, before and after a notifier validates it.

    ``validate_contact`` may normalise the address, move secret values from ``settings``
    to ``secrets`` and replace a credential-bearing address with a masked one.
    """

    address: str
    secret: str | None
    settings: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict)


class InvalidContact(ValueError):
    """A contact method's address or settings are invalid; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotifierOptions(BaseModel):
    """Base of every built-in notifier's instance options (TOCSIN_NOTIFIERS__<KIND>__...)."""

    model_config = ConfigDict(extra="forbid")

    # The throttle, e.g. "5/15m,11/1h"; "off" turns it off. Read by the delivery code.
    throttle: str | None = None


def describe_validation_error(error: ValidationError, prefix: str) -> InvalidContact:
    """Turn the first Pydantic error into an InvalidContact naming ``prefix.<field>``."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ()))
    field_name = f"{prefix}.{location}" if location else prefix
    return InvalidContact(field_name, f"{field_name}: {first.get('msg', 'invalid value')}")


class BaseNotifier:
    """Shared parts of the built-in notifiers: options parsing, events, verify.

    Third-party notifiers may subclass it but need not: the registry only relies on
    ``kind``, ``render`` and ``send``.
    """

    kind: ClassVar[str]
    events: ClassVar[frozenset[str]] = INCIDENT_EVENTS
    options_model: ClassVar[type[NotifierOptions]] = NotifierOptions

    def __init__(self, context: NotifierContext) -> None:
        self.context = context
        self.options_error: str | None = None
        try:
            self.options = self.options_model.model_validate(dict(context.options))
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(part) for part in first.get("loc", ()))
            variable = f"TOCSIN_NOTIFIERS__{self.kind.upper()}__{name.upper()}"
            self.options_error = f"{variable}: {first.get('msg', 'invalid value')}"
            self.options = self.options_model.model_construct()

    @classmethod
    def validate_contact(cls, contact: ContactInput) -> ContactInput:
        return contact

    def options_failure(self) -> DeliveryResult | None:
        """Return a permanent failure when the instance options are invalid, else None."""
        if self.options_error is None:
            return None
        return DeliveryResult(
            ok=False, error=f"{self.kind} notifier is misconfigured: {self.options_error}"
        )

    def render(self, message: Message, target: Target) -> Any:
        raise NotImplementedError

    async def send(self, message: Message, target: Target) -> DeliveryResult:
        raise NotImplementedError

    async def verify(self, target: Target) -> DeliveryResult:
        return await self.send(build_test_message(), target)
