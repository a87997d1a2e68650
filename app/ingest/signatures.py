"""HMAC-SHA256 signatures over raw request bodies, for integrations that have a signing secret."""

from __future__ import annotations

import secrets

from app.core.errors import Unauthorized
from app.core.security import constant_time_equal, hmac_sha256_hex

SIGNATURE_HEADER = "X-Tocsin-Signature"
SIGNATURE_PREFIX = "sha256="


def new_signing_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """Return the header value a sender puts in X-Tocsin-Signature for ``body``."""
    return SIGNATURE_PREFIX + hmac_sha256_hex(secret.encode(), body)


def verify_signature(secret: str, body: bytes, header: str | None) -> None:
    """Raise 401 unless ``header`` is the HMAC-SHA256 of the exact body bytes under ``secret``."""
    if not header:
        raise Unauthorized(
            f"Missing {SIGNATURE_HEADER}. This integration has a signing secret; send "
            f"{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw body>.",
            field=SIGNATURE_HEADER,
        )
    if not constant_time_equal(header.strip().lower(), sign(secret, body)):
        raise Unauthorized(
            f"{SIGNATURE_HEADER} does not match the body. Sign the exact bytes you send "
            "(after any JSON encoding) with the integration's signing secret.",
            field=SIGNATURE_HEADER,
        )
