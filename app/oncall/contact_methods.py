"""Save contact methods: validate them with their notifier, encrypt their secrets, test them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from app import __version__
from app.core.config import Settings
from app.core.errors import Conflict, Unprocessable
from app.core.security import SecretBox
from app.core.time import utcnow
from app.notify import contacts, registry
from app.notify.base import (
    ContactInput,
    DeliveryResult,
    InvalidContact,
    NotifierContext,
    Verifiable,
)
from app.oncall.models import ContactMethod

# Kinds whose primary secret signs requests and is generated when left out.
SIGNING_KINDS = frozenset({"webhook"})
SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class SavedContact:
    method: ContactMethod
    # The signing secret when it was generated or set by this request, else None.
    secret: str | None


def validate(kind: str, address: str, secret: str | None, settings: dict[str, Any]) -> ContactInput:
    """Validate with the notifier's rules; raises Unprocessable naming the field."""
    try:
        return contacts.validate_contact_method(kind, address, secret, settings)
    except InvalidContact as exc:
        raise Unprocessable(exc.message, field=exc.field) from exc


def new_contact_method(
    box: SecretBox,
    *,
    user_id: Any,
    kind: str,
    name: str,
    address: str,
    secret: str | None,
    settings: dict[str, Any],
) -> SavedContact:
    contact = validate(kind, address, secret, settings)
    primary = contact.secret
    if kind in SIGNING_KINDS and primary is None:
        primary = secrets.token_urlsafe(SECRET_BYTES)
    method = ContactMethod(
        user_id=user_id,
        kind=kind,
        name=name,
        address=contact.address,
        secret_encrypted=box.encrypt(primary) if primary else None,
        secret_settings_encrypted=contacts.encrypt_secrets(box, contact.secrets),
        settings=contact.settings,
    )
    return SavedContact(method, primary)


def change_contact_method(
    box: SecretBox,
    method: ContactMethod,
    *,
    address: str | None,
    secret: str | None,
    settings: dict[str, Any] | None,
) -> None:
    """Apply a new address, secret or settings after validating the result as a whole.

    Secret settings left out keep their stored values, so a client can change a channel
    without sending the token again.
    """
    stored_secrets = contacts.decrypt_secrets(box, method.secret_settings_encrypted)
    # A masked address stands for the credential URL kept among the secrets.
    current_address = stored_secrets.get("webhook_url", method.address)
    contact = validate(
        method.kind,
        address if address is not None else current_address,
        secret,
        settings if settings is not None else dict(method.settings or {}),
    )
    if contact.address != method.address:
        # A verification proved that the old address reaches its owner, not the new one.
        method.verified_at = None
        method.verification_code_encrypted = None
        method.verification_expires_at = None
        method.verification_attempts = 0
    method.address = contact.address
    method.settings = contact.settings
    method.secret_settings_encrypted = contacts.encrypt_secrets(
        box, {**stored_secrets, **contact.secrets}
    )
    if contact.secret is not None:
        method.secret_encrypted = box.encrypt(contact.secret)
        method.previous_secret_encrypted = None
        method.previous_secret_expires_at = None


def rotate_secret(box: SecretBox, method: ContactMethod, grace: timedelta) -> tuple[str, datetime]:
    """Replace the signing secret; the old one keeps signing alongside it for ``grace``."""
    if method.kind not in SIGNING_KINDS or method.secret_encrypted is None:
        raise Conflict(
            f"Contact method {method.id} ({method.kind}) has no signing secret to rotate.",
            field="contact_method_id",
        )
    new_secret = secrets.token_urlsafe(SECRET_BYTES)
    expires_at = utcnow() + grace
    method.previous_secret_encrypted = method.secret_encrypted
    method.previous_secret_expires_at = expires_at
    method.secret_encrypted = box.encrypt(new_secret)
    return new_secret, expires_at


async def verify(method: ContactMethod, box: SecretBox, settings: Settings) -> DeliveryResult:
    """Send a test message through the contact method's notifier, from this process."""
    cls = registry.notifier_class(method.kind)
    if cls is None:
        raise Conflict(
            f"No notifier named {method.kind!r} is installed on this server.", field="kind"
        )
    target = contacts.build_target(method, box, utcnow())
    timeout = httpx.Timeout(settings.delivery_timeout_seconds)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        notifier = cls(
            NotifierContext(
                http=http,
                user_agent=f"Tocsin/{__version__}",
                options=settings.notifiers.get(method.kind, {}),
            )
        )
        if not isinstance(notifier, Verifiable):
            raise Conflict(f"The {method.kind} notifier cannot send test messages.", field="kind")
        result: DeliveryResult = await notifier.verify(target)
    return result
