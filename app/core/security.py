"""Keys, hashing, HMAC signatures and encryption of stored secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

API_KEY_PREFIX = "tocsin_"


def new_integration_key() -> str:
    """Return 32 hex characters, the shape PagerDuty routing keys have, so senders accept it."""
    return secrets.token_hex(16)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Hash a high-entropy key for storage and lookup.

    Keys are random 128-bit or longer values, so one SHA-256 pass is enough: a slow
    password hash would add latency on every ingest request without adding safety.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def derive_key(secret: bytes, purpose: str, length: int = 32) -> bytes:
    """Derive an independent key for one purpose from the instance secret (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode())
    return hkdf.derive(secret)


def hmac_sha256_hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def constant_time_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


class SecretBox:
    """Encrypt secrets stored in the database (notifier tokens, webhook signing secrets)."""

    def __init__(self, instance_secret: bytes) -> None:
        key = derive_key(instance_secret, "tocsin stored secrets")
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError(
                "stored secret cannot be decrypted: TOCSIN_SECRET_KEY differs from the "
                "key it was encrypted with"
            ) from exc
