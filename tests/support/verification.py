"""Verify a contact method as its owner would: request a code, read it, enter it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from tests.support.fakes import SmtpRecorder
from tests.support.jobs import drain_jobs
from tests.support.paging import paging_context
from tests.support.receiver import Receiver

_CODE = re.compile(r"\b(\d{6})\b")


def code_in(text: str) -> str:
    match = _CODE.search(text)
    assert match is not None, f"no 6-digit code in {text!r}"
    return match.group(1)


def code_from_receiver(receiver: Receiver) -> Callable[[], str]:
    """Take the last request off ``receiver`` (an SMS API fake) and return the code it carries.

    The request is removed, so a test's later counts see only pages.
    """

    def read() -> str:
        request = receiver.requests.pop()
        if request.headers.get("content-type", "").startswith("application/x-www-form"):
            return code_in(request.form()["Body"])
        return code_in(request.body.decode())

    return read


def code_from_smtp(recorder: SmtpRecorder) -> Callable[[], str]:
    """Take the last mail off ``recorder`` and return the code in its text.

    The mail is removed and not counted, so a test's later counts see only pages.
    """

    def read() -> str:
        mail = recorder.messages.pop()
        recorder.envelopes.pop()
        recorder.attempts -= 1
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None
        return code_in(body.get_content())

    return read


async def verify_contact_method(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    raw_db: asyncpg.Connection,
    contact_method_id: str,
    *,
    options: Mapping[str, Mapping[str, Any]],
    read_code: Callable[[], str],
) -> dict[str, Any]:
    """Run the verification flow through the API and the notifier, and return the method.

    ``options`` configure the notifier that sends the code (as for a worker), and
    ``read_code`` takes the code from the fake server that received it.
    """
    started = await client.post(
        f"/v1/contact-methods/{contact_method_id}/verification", headers=auth
    )
    assert started.status_code == 202, started.text
    async with httpx.AsyncClient() as http:
        ran = await drain_jobs(raw_db, paging_context(app, http, options))
    assert ran == ["contact_method.verification"]

    confirmed = await client.post(
        f"/v1/contact-methods/{contact_method_id}/verification/confirm",
        json={"code": read_code()},
        headers=auth,
    )
    assert confirmed.status_code == 200, confirmed.text
    method: dict[str, Any] = confirmed.json()
    assert method["verified_at"] is not None
    return method
