"""Verify contact methods: send a one-time code through the notifier, check what the user enters.

Only notifiers that implement ``send_verification`` (SMS, voice, e-mail) take part; their
contact methods are paged only once verified. The code is stored encrypted, expires, and
allows a few attempts, so it cannot be guessed through the API.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import Conflict, Unprocessable
from app.core.logging import get_logger
from app.core.security import SecretBox, constant_time_equal
from app.core.time import utcnow
from app.jobs.queue import CONTACT_METHOD_VERIFICATION, Job
from app.notify.base import Target, VerifyingNotifier
from app.notify.registry import supports_verification
from app.oncall.models import ContactMethod

log = get_logger(__name__)

CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=15)
MAX_ATTEMPTS = 5


def verification_job(contact_method_id: uuid.UUID, issued: str) -> Job:
    # One job per issued code: requesting a new code sends again, a retried job does not.
    return Job(
        CONTACT_METHOD_VERIFICATION,
        {"contact_method_id": contact_method_id},
        dedupe_key=f"{CONTACT_METHOD_VERIFICATION}:{contact_method_id}:{issued}",
    )


def start(method: ContactMethod, box: SecretBox, *, verifying_kinds: frozenset[str]) -> Job:
    """Issue a new code on ``method`` and return the job that sends it."""
    if method.kind not in verifying_kinds:
        raise Conflict(
            f"Contact methods of kind {method.kind!r} need no verification: the notifier "
            "cannot send codes.",
            field="contact_method_id",
        )
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    now = utcnow()
    method.verification_code_encrypted = box.encrypt(code)
    method.verification_expires_at = now + CODE_LIFETIME
    method.verification_attempts = 0
    return verification_job(method.id, now.isoformat())


def confirm(method: ContactMethod, code: str, box: SecretBox) -> None:
    """Mark ``method`` verified if ``code`` matches the pending one; raise otherwise."""
    now = utcnow()
    if method.verified_at is not None and method.verification_code_encrypted is None:
        raise Conflict(
            "The contact method is already verified; there is nothing to confirm.",
            field="code",
        )
    if (
        method.verification_code_encrypted is None
        or method.verification_expires_at is None
        or method.verification_expires_at <= now
    ):
        raise Conflict(
            "No verification code is pending or the code expired; request a new one.",
            field="code",
        )
    if method.verification_attempts >= MAX_ATTEMPTS:
        raise Conflict(
            f"The code was entered wrong {MAX_ATTEMPTS} times; request a new one.", field="code"
        )
    expected = box.decrypt(method.verification_code_encrypted)
    if not constant_time_equal(expected, code.strip()):
        method.verification_attempts += 1
        left = MAX_ATTEMPTS - method.verification_attempts
        raise Unprocessable(f"The code is wrong; {left} attempts left.", field="code")
    method.verified_at = now
    method.verification_code_encrypted = None
    method.verification_expires_at = None
    method.verification_attempts = 0


async def send_code(
    sessionmaker: async_sessionmaker[AsyncSession],
    notifiers: Mapping[str, object],
    box: SecretBox,
    contact_method_id: uuid.UUID,
) -> None:
    """Deliver the pending code of a contact method (a job handler)."""
    async with sessionmaker() as session:
        method = await session.scalar(
            select(ContactMethod).where(ContactMethod.id == contact_method_id)
        )
        if (
            method is None
            or method.verification_code_encrypted is None
            or method.verification_expires_at is None
            or method.verification_expires_at <= utcnow()
        ):
            log.info("verification.skipped", contact_method_id=str(contact_method_id))
            return
        code = box.decrypt(method.verification_code_encrypted)
        secret = box.decrypt(method.secret_encrypted) if method.secret_encrypted else None
        target = Target(
            kind=method.kind, address=method.address, secret=secret, settings=method.settings
        )
    notifier = notifiers.get(target.kind)
    if notifier is None or not supports_verification(notifier):
        log.error(
            "verification.unsupported", contact_method_id=str(contact_method_id), kind=target.kind
        )
        return
    result = await cast(VerifyingNotifier, notifier).send_verification(target, code)
    if result.ok:
        log.info("verification.sent", contact_method_id=str(contact_method_id), kind=target.kind)
        return
    log.warning(
        "verification.failed",
        contact_method_id=str(contact_method_id),
        kind=target.kind,
        error=result.error,
        retryable=result.retryable,
    )
    if result.retryable:
        # The worker retries the job with backoff.
        raise RuntimeError(f"sending the verification code failed: {result.error}")
