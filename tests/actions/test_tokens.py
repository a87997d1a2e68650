from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.actions import catalog, tokens
from app.core.config import Settings

NOW = datetime(2026, 12, 4, 9, 14, tzinfo=UTC)
INCIDENT_ID = uuid.UUID("01938f2e-7a00-7000-8000-000000000042")
USER_ID = uuid.UUID("01938f2e-7a00-7000-8000-0000000000a1")
KEY_A = b"a" * 32
KEY_B = b"b" * 32


def keyring(signing: int = 1, revoked: frozenset[int] = frozenset()) -> tokens.Keyring:
    return tokens.Keyring(keys={1: KEY_A, 2: KEY_B}, signing_key_id=signing, revoked=revoked)


def make_token(ring: tokens.Keyring | None = None, *, number: int = 42) -> str:
    return tokens.sign(
        ring or keyring(),
        action_code=catalog.ACKNOWLEDGE.code,
        incident_number=number,
        incident_id=INCIDENT_ID,
        user_id=USER_ID,
        expires_at=NOW + timedelta(hours=24),
    )


def check(token: str, ring: tokens.Keyring | None = None, **overrides: object) -> tokens.LinkClaims:
    options: dict[str, object] = {"incident_id": INCIDENT_ID, "now": NOW}
    options.update(overrides)
    return tokens.verify(tokens.parse(token), keyring=ring or keyring(), **options)  # type: ignore[arg-type]


def decode(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode()


class TestSignAndVerify:
    def test_round_trip_returns_claims(self) -> None:
        claims = check(make_token())
        assert claims.action_code == catalog.ACKNOWLEDGE.code
        assert claims.incident_number == 42
        assert claims.user_id == USER_ID
        assert claims.expires_at == NOW + timedelta(hours=24)

    def test_token_fits_in_an_sms(self) -> None:
        token = make_token(number=1_234_567)
        assert len(token) <= 60
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

    @pytest.mark.parametrize("number", [1, 127, 128, 16_383, 16_384, 2**40, 2**62])
    def test_incident_numbers_round_trip(self, number: int) -> None:
        assert check(make_token(number=number)).incident_number == number

    def test_link_for_other_incident_id_is_invalid(self) -> None:
        # The same number in another database (restored, rebuilt) names another incident.
        other = uuid.UUID("01938f2e-7a00-7000-8000-000000000043")
        with pytest.raises(tokens.LinkInvalid):
            check(make_token(), incident_id=other)


class TestExpiry:
    def test_valid_until_the_second_before_expiry(self) -> None:
        check(make_token(), now=NOW + timedelta(hours=24) - timedelta(seconds=1))

    def test_expired_link_raises_410(self) -> None:
        with pytest.raises(tokens.LinkExpired) as caught:
            check(make_token(), now=NOW + timedelta(hours=24))
        assert caught.value.status == 410

    def test_signature_checked_before_expiry(self) -> None:
        data = decode(make_token())
        data[-1] ^= 0x01
        with pytest.raises(tokens.LinkInvalid):
            check(encode(data), now=NOW + timedelta(days=2))


class TestKeyRotation:
    def test_links_signed_with_previous_key_still_verify(self) -> None:
        old_link = make_token(keyring(signing=1))
        rotated = keyring(signing=2)
        assert check(old_link, rotated).user_id == USER_ID
        assert tokens.parse(make_token(rotated)).key_id == 2

    def test_revoked_key_is_rejected(self) -> None:
        old_link = make_token(keyring(signing=1))
        with pytest.raises(tokens.LinkKeyRevoked) as caught:
            check(old_link, keyring(signing=2, revoked=frozenset({1})))
        assert caught.value.status == 403

    def test_removed_key_is_rejected(self) -> None:
        old_link = make_token(keyring(signing=1))
        without_key_1 = tokens.Keyring(keys={2: KEY_B}, signing_key_id=2)
        with pytest.raises(tokens.LinkKeyRevoked):
            check(old_link, without_key_1)

    def test_same_key_id_with_new_secret_is_invalid(self) -> None:
        link = make_token(keyring(signing=1))
        replaced = tokens.Keyring(keys={1: b"c" * 32}, signing_key_id=1)
        with pytest.raises(tokens.LinkInvalid):
            check(link, replaced)

    def test_settings_keyring_signs_with_highest_configured_key(self) -> None:
        settings = Settings(
            secret_key="s" * 40,
            actions={"link_keys": {"3": "k" * 40, "7": "m" * 40}},
        )
        ring = tokens.Keyring.from_settings(settings)
        assert ring.signing_key_id == 7
        assert set(ring.keys) == {0, 3, 7}

    def test_settings_reject_revoking_the_signing_key(self) -> None:
        with pytest.raises(ValueError, match="link_revoked_key_ids"):
            Settings(secret_key="s" * 40, actions={"link_revoked_key_ids": [0]})


# Byte offsets in a token for incident number 42, whose varint takes one byte.
FIELDS = {
    "version": 0,
    "key_id": 1,
    "action": 2,
    "expiry": 5,
    "incident_number": 7,
    "user_id": 12,
    "mac": 30,
}


class TestTampering:
    @pytest.mark.parametrize("field", sorted(FIELDS))
    def test_changing_any_field_fails(self, field: str) -> None:
        data = decode(make_token())
        data[FIELDS[field]] ^= 0x04
        with pytest.raises(tokens.LinkError) as caught:
            check(encode(data))
        assert caught.value.status == 403

    def test_moving_expiry_later_fails(self) -> None:
        data = decode(make_token())
        data[3:7] = int((NOW + timedelta(days=30)).timestamp()).to_bytes(4, "big")
        with pytest.raises(tokens.LinkInvalid):
            check(encode(data), now=NOW + timedelta(days=2))

    def test_swapping_action_for_resolve_fails(self) -> None:
        data = decode(make_token())
        data[2] = catalog.RESOLVE.code
        with pytest.raises(tokens.LinkInvalid):
            check(encode(data))

    def test_truncated_token_fails(self) -> None:
        with pytest.raises(tokens.LinkInvalid):
            tokens.parse(make_token()[:-3])

    def test_extended_token_fails(self) -> None:
        with pytest.raises(tokens.LinkInvalid):
            tokens.parse(make_token() + "AAAA")

    @pytest.mark.parametrize("token", ["", "not a token", "%%%", "A" * 500, "AAAA"])
    def test_malformed_tokens_fail(self, token: str) -> None:
        with pytest.raises(tokens.LinkInvalid):
            tokens.parse(token)

    def test_unused_bits_of_last_character_must_be_zero(self) -> None:
        token = make_token()
        # 40 bytes need 53 full characters and a 54th that carries 2 bits.
        assert len(token) == 54
        last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(token[-1])
        respelled = (
            token[:-1]
            + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last | 0b0001]
        )
        assert respelled != token
        with pytest.raises(tokens.LinkInvalid):
            tokens.parse(respelled)

    def test_non_canonical_number_fails(self) -> None:
        data = decode(make_token())
        # 42 written in two bytes: 0xAA 0x00 instead of 0x2A.
        padded = data[:7] + bytearray([0xAA, 0x00]) + data[8:]
        with pytest.raises(tokens.LinkInvalid):
            tokens.parse(encode(padded))


def test_catalog_codes_are_unique_and_stable() -> None:
    # Links already sent carry these codes: changing one breaks them.
    assert {name: spec.code for name, spec in catalog.ACTIONS.items()} == {
        "acknowledge": 1,
        "resolve": 2,
        "snooze-15m": 3,
        "snooze-1h": 4,
        "snooze-4h": 5,
        "escalate": 6,
        "view": 7,
        "take": 8,
    }
