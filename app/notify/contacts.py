"""Contact method settings: validation when saved, encrypted storage of their secrets."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from app.core.security import SecretBox
from app.notify import limits, registry
from app.notify.base import ContactInput, InvalidContact, Target


def validate_contact_method(
    kind: str, address: str, secret: str | None, settings: dict[str, Any]
) -> ContactInput:
    """Check a contact method with its notifier's rules; raises InvalidContact.

    ``settings.throttle`` is common to every notifier and checked here. The notifier's
    own hook receives the other settings.
    """
    own_settings = dict(settings)
    throttle_value = own_settings.pop("throttle", None)
    if throttle_value is not None:
        if not isinstance(throttle_value, str):
            raise InvalidContact(
                "settings.throttle", "settings.throttle must be a string such as '5/15m,11/1h'."
            )
        try:
            limits.parse_limits(throttle_value)
        except ValueError as exc:
            raise InvalidContact("settings.throttle", str(exc)) from exc
    contact = registry.validate_contact(
        kind, ContactInput(address=address, secret=secret, settings=own_settings)
    )
    if throttle_value is not None:
        contact.settings["throttle"] = throttle_value
    return contact


def encrypt_secrets(box: SecretBox, secrets: dict[str, str]) -> str | None:
    return box.encrypt(json.dumps(secrets, separators=(",", ":"))) if secrets else None


def decrypt_secrets(box: SecretBox, token: str | None) -> dict[str, str]:
    if not token:
        return {}
    value = json.loads(box.decrypt(token))
    return {str(key): str(item) for key, item in value.items()} if isinstance(value, dict) else {}


def build_target(method: Any, box: SecretBox, now: datetime) -> Target:
    """Decrypt a contact method (app.oncall.models.ContactMethod) into a Target."""
    previous = None
    expires_at = method.previous_secret_expires_at
    if method.previous_secret_encrypted and (expires_at is None or expires_at > now):
        previous = box.decrypt(method.previous_secret_encrypted)
    return Target(
        kind=method.kind,
        address=method.address,
        secret=box.decrypt(method.secret_encrypted) if method.secret_encrypted else None,
        settings=dict(method.settings or {}),
        secrets=decrypt_secrets(box, method.secret_settings_encrypted),
        previous_secret=previous,
    )
