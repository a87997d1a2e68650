"""Action link tokens: compact, signed (HMAC-SHA256 with a key id) and expiring.

A token is base64url (no padding) of these bytes:

    version (1) | key id (1) | action code (1) | expiry, Unix seconds (4, big-endian)
    | incident number (unsigned LEB128, 1-9) | user id (16) | MAC (16)

The MAC is HMAC-SHA256 over every byte before it followed by the incident's UUID, cut to
128 bits. The token carries the short incident number and the MAC binds the UUID, so a
link from another database that reuses the number (a restored or rebuilt instance with
the same secret) does not verify. A typical token is 56 characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from app.core.config import Settings
from app.core.security import derive_key

FORMAT_VERSION = 1
MAC_BYTES = 16
_HEADER = struct.Struct(">BBBI")
_MAX_VARINT_BYTES = 9
_MIN_TOKEN_BYTES = _HEADER.size + 1 + 16 + MAC_BYTES
_MAX_TOKEN_BYTES = _HEADER.size + _MAX_VARINT_BYTES + 16 + MAC_BYTES
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_KEY_PURPOSE = "tocsin action links"


class LinkError(Exception):
    """A link that cannot be used; ``status`` is the HTTP status of the page that explains it."""

    status = 403
    reason = "invalid"


class LinkInvalid(LinkError):
    """Malformed, altered or signed with another key."""


class LinkKeyRevoked(LinkError):
    reason = "key_revoked"


class LinkExpired(LinkError):
    status = 410
    reason = "expired"


class LinkUserGone(LinkError):
    """A correctly signed link whose user has been deleted since it was sent."""

    status = 410
    reason = "user_gone"


@dataclass(frozen=True, slots=True)
class Keyring:
    """Link keys by id: one signs new links, every key not revoked verifies."""

    keys: Mapping[int, bytes]
    signing_key_id: int
    revoked: frozenset[int] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        config = settings.actions
        keys = {0: derive_key(settings.signing_key(), _KEY_PURPOSE)}
        for key_id, secret in config.link_keys.items():
            keys[key_id] = derive_key(secret.get_secret_value().encode(), _KEY_PURPOSE)
        return cls(
            keys=keys,
            signing_key_id=config.signing_key_id,
            revoked=frozenset(config.link_revoked_key_ids),
        )


@dataclass(frozen=True, slots=True)
class LinkClaims:
    action_code: int
    incident_number: int
    user_id: uuid.UUID
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UnverifiedLink:
    """A token split into its fields; nothing in it is trusted until ``verify`` passes."""

    claims: LinkClaims
    key_id: int
    signed_part: bytes
    mac: bytes


def _encode_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("incident numbers are positive")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _decode_varint(data: bytes, start: int) -> tuple[int, int]:
    """Return (value, index after it); reject overlong and non-canonical encodings."""
    value = 0
    for offset in range(_MAX_VARINT_BYTES):
        index = start + offset
        if index >= len(data):
            raise LinkInvalid("truncated incident number")
        byte = data[index]
        value |= (byte & 0x7F) << (7 * offset)
        if not byte & 0x80:
            if byte == 0 and offset > 0:
                raise LinkInvalid("non-canonical incident number")
            return value, index + 1
    raise LinkInvalid("incident number too long")


def _mac(key: bytes, signed_part: bytes, incident_id: uuid.UUID) -> bytes:
    return hmac.new(key, signed_part + incident_id.bytes, hashlib.sha256).digest()[:MAC_BYTES]


def sign(
    keyring: Keyring,
    *,
    action_code: int,
    incident_number: int,
    incident_id: uuid.UUID,
    user_id: uuid.UUID,
    expires_at: datetime,
) -> str:
    """Return a token that lets ``user_id`` perform one action on one incident until expiry."""
    key_id = keyring.signing_key_id
    expiry = int(expires_at.timestamp())
    signed_part = (
        _HEADER.pack(FORMAT_VERSION, key_id, action_code, expiry)
        + _encode_varint(incident_number)
        + user_id.bytes
    )
    mac = _mac(keyring.keys[key_id], signed_part, incident_id)
    return base64.urlsafe_b64encode(signed_part + mac).rstrip(b"=").decode()


def parse(token: str) -> UnverifiedLink:
    """Split a token into its fields without trusting them; raise LinkInvalid if malformed."""
    if len(token) > 4 * _MAX_TOKEN_BYTES // 3 + 4 or not _TOKEN_PATTERN.fullmatch(token):
        raise LinkInvalid("not a link token")
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise LinkInvalid("not base64url") from exc
    if not _MIN_TOKEN_BYTES <= len(data) <= _MAX_TOKEN_BYTES:
        raise LinkInvalid("wrong length")
    # The decoder ignores unused bits of the last character; without this check several
    # spellings would carry one token.
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode() != token:
        raise LinkInvalid("non-canonical base64url")

    version, key_id, action_code, expiry = _HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise LinkInvalid(f"unknown format version {version}")
    number, index = _decode_varint(data, _HEADER.size)
    if len(data) != index + 16 + MAC_BYTES:
        raise LinkInvalid("wrong length")

    user_id = uuid.UUID(bytes=data[index : index + 16])
    claims = LinkClaims(
        action_code=action_code,
        incident_number=number,
        user_id=user_id,
        expires_at=datetime.fromtimestamp(expiry, UTC),
    )
    return UnverifiedLink(
        claims=claims,
        key_id=key_id,
        signed_part=data[: index + 16],
        mac=data[index + 16 :],
    )


def check_key(link: UnverifiedLink, keyring: Keyring) -> bytes:
    """Return the key that signed ``link``; raise LinkKeyRevoked if it is revoked or unknown."""
    if link.key_id in keyring.revoked:
        raise LinkKeyRevoked(f"key {link.key_id} is revoked")
    key = keyring.keys.get(link.key_id)
    if key is None:
        raise LinkKeyRevoked(f"key {link.key_id} is not configured")
    return key


def verify(
    link: UnverifiedLink, *, keyring: Keyring, incident_id: uuid.UUID, now: datetime
) -> LinkClaims:
    """Check the key, the MAC (bound to ``incident_id``) and then the expiry."""
    key = check_key(link, keyring)
    if not hmac.compare_digest(_mac(key, link.signed_part, incident_id), link.mac):
        raise LinkInvalid("signature does not match")
    if now >= link.claims.expires_at:
        raise LinkExpired(f"expired at {link.claims.expires_at.isoformat()}")
    return link.claims
