"""The e-mail notifier against aiosmtpd on 127.0.0.1: plain, STARTTLS with login, and TLS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from fastapi import FastAPI

from tests.support.fakes import Certificate, SmtpRecorder, self_signed_certificate
from tests.support.jobs import drain_jobs
from tests.support.paging import (
    add_contact_method,
    attempt_rows,
    notification_rows,
    page_links,
    paging_context,
    trigger,
)
from tests.support.receiver import free_port
from tests.support.verification import code_from_smtp, code_in, verify_contact_method

pytestmark = pytest.mark.asyncio

SMTP_USER = "tocsin"
SMTP_PASSWORD = "smtp-password-for-tests"


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok)


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return self_signed_certificate(tmp_path)


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpRecorder, int]]:
    recorder = SmtpRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield recorder, controller.port
    finally:
        controller.stop()


def email_options(port: int, **extra: Any) -> dict[str, dict[str, Any]]:
    return {
        "email": {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "from_address": "Tocsin <pager@tocsin.example>",
            **extra,
        }
    }


async def add_verified_email(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
    recorder: SmtpRecorder,
    options: dict[str, dict[str, Any]],
    *,
    address: str = "oncall@example.com",
) -> dict[str, Any]:
    """Add an e-mail contact method to the demo user and verify it through ``recorder``."""
    method = await add_contact_method(client, auth, demo, kind="email", address=address)
    return await verify_contact_method(
        app,
        client,
        auth,
        raw_db,
        method["id"],
        options=options,
        read_code=code_from_smtp(recorder),
    )


async def page_and_resolve(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    options: dict[str, dict[str, Any]],
) -> str:
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, options)
        incident_id = await trigger(client, alertmanager_path, "DiskFull", "Disk <full>")
        await drain_jobs(raw_db, context)
        response = await client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
        assert response.status_code == 200
        await drain_jobs(raw_db, context)
    return incident_id


async def test_mails_form_one_thread(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    smtp: tuple[SmtpRecorder, int],
) -> None:
    recorder, port = smtp
    await add_verified_email(
        app,
        client,
        auth,
        demo,
        raw_db,
        recorder,
        email_options(port),
        address="Oncall@Example.COM",
    )
    incident_id = await page_and_resolve(
        app, client, auth, alertmanager_path, raw_db, email_options(port)
    )

    triggered, resolved = recorder.messages
    assert recorder.envelopes[0] == ("pager@tocsin.example", ["Oncall@example.com"])
    assert triggered["Subject"] == "[Tocsin] #1 Disk <full>"
    assert resolved["Subject"] == triggered["Subject"]
    root = f"<incident.{incident_id}@tocsin.example>"
    for mail in (triggered, resolved):
        assert mail["In-Reply-To"] == root
        assert mail["References"] == root
        assert mail["Auto-Submitted"] == "auto-generated"
    assert triggered["Message-ID"] != resolved["Message-ID"]
    assert triggered["Message-ID"].endswith("@tocsin.example>")
    assert triggered["X-Tocsin-Event"] == "incident.triggered"
    assert resolved["X-Tocsin-Event"] == "incident.resolved"

    text = triggered.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    html = triggered.get_body(preferencelist=("html",)).get_content()
    view = (await page_links(raw_db, "email"))["view"]
    assert text.startswith("[P1] Triggered: #1 Disk <full>\n")
    assert f"View: {view}" in text
    assert "Disk &lt;full&gt;" in html
    assert "<full>" not in html
    assert f'href="{view}"' in html
    assert "Resolved" in resolved.get_body(preferencelist=("plain",)).get_content()


async def test_starttls_with_login(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    certificate: Certificate,
) -> None:
    recorder = SmtpRecorder()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=check_login,
        auth_required=True,
    )
    controller.start()
    try:
        options = email_options(
            controller.port,
            security="starttls",
            ca_file=str(certificate.cert_file),
            username=SMTP_USER,
            password=SMTP_PASSWORD,
        )
        await add_verified_email(app, client, auth, demo, raw_db, recorder, options)
        async with httpx.AsyncClient() as http:
            context = paging_context(app, http, options)
            await trigger(client, alertmanager_path, "DiskFull", "Disk full")
            await drain_jobs(raw_db, context)
    finally:
        controller.stop()

    assert len(recorder.messages) == 1
    [notification] = await notification_rows(raw_db, "email")
    assert notification["status"] == "sent"
    [attempt] = await attempt_rows(raw_db, notification["id"])
    assert attempt["status_code"] == 250


async def test_implicit_tls(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    certificate: Certificate,
) -> None:
    recorder = SmtpRecorder()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=free_port(),
        ssl_context=certificate.server_context(),
    )
    controller.start()
    try:
        options = email_options(controller.port, security="tls", ca_file=str(certificate.cert_file))
        await add_verified_email(app, client, auth, demo, raw_db, recorder, options)
        async with httpx.AsyncClient() as http:
            context = paging_context(app, http, options)
            await trigger(client, alertmanager_path, "DiskFull", "Disk full")
            await drain_jobs(raw_db, context)
    finally:
        controller.stop()

    assert len(recorder.messages) == 1
    [notification] = await notification_rows(raw_db, "email")
    assert notification["status"] == "sent"


async def test_untrusted_certificate_fails(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    certificate: Certificate,
    smtp: tuple[SmtpRecorder, int],
) -> None:
    # The address is verified through a plain server; the page goes to an untrusted one.
    plain_recorder, plain_port = smtp
    await add_verified_email(
        app, client, auth, demo, raw_db, plain_recorder, email_options(plain_port)
    )
    recorder = SmtpRecorder()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=free_port(),
        ssl_context=certificate.server_context(),
    )
    controller.start()
    try:
        async with httpx.AsyncClient() as http:
            context = paging_context(app, http, email_options(controller.port, security="tls"))
            await trigger(client, alertmanager_path, "DiskFull", "Disk full")
            await drain_jobs(raw_db, context)
    finally:
        controller.stop()

    assert recorder.messages == []
    [notification] = await notification_rows(raw_db, "email")
    assert notification["status"] == "retrying"
    assert "SMTP connection failed" in notification["last_error"]


async def test_451_is_retried_and_550_is_not(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    smtp: tuple[SmtpRecorder, int],
) -> None:
    recorder, port = smtp
    await add_verified_email(app, client, auth, demo, raw_db, recorder, email_options(port))
    recorder.replies.extend(["451 4.3.0 Try again later", "550 5.1.1 Mailbox unavailable"])
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, email_options(port))
        await trigger(client, alertmanager_path, "DiskFull", "Disk full")
        await drain_jobs(raw_db, context, include_delayed=True)

    assert recorder.attempts == 2
    assert recorder.messages == []
    [notification] = await notification_rows(raw_db, "email")
    assert notification["status"] == "failed"
    attempts = await attempt_rows(raw_db, notification["id"])
    assert [(row["outcome"], row["status_code"]) for row in attempts] == [
        ("retry", 451),
        ("failed", 550),
    ]


async def test_email_pages_only_once_verified(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    smtp: tuple[SmtpRecorder, int],
) -> None:
    recorder, port = smtp
    method = await add_contact_method(client, auth, demo, kind="email", address="ada@example.com")
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, email_options(port))
        await trigger(client, alertmanager_path, "DiskFull", "Disk full")
        await drain_jobs(raw_db, context)
        unverified_mails = list(recorder.messages)

        started = await client.post(
            f"/v1/contact-methods/{method['id']}/verification", headers=auth
        )
        assert started.status_code == 202, started.text
        await drain_jobs(raw_db, context)
        [mail] = recorder.messages
        text = mail.get_content()
        code = code_in(text)
        confirmed = await client.post(
            f"/v1/contact-methods/{method['id']}/verification/confirm",
            json={"code": code},
            headers=auth,
        )
        assert confirmed.status_code == 200, confirmed.text

        await trigger(client, alertmanager_path, "CpuHot", "CPU hot")
        await drain_jobs(raw_db, context)

    assert unverified_mails == []
    assert recorder.envelopes[0] == ("pager@tocsin.example", ["ada@example.com"])
    assert mail["Subject"] == "[Tocsin] Your verification code"
    assert mail["X-Tocsin-Event"] == "contact_method.verification"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert text.startswith(f"Your Tocsin verification code is {code}.")
    assert len(recorder.messages) == 2
    assert recorder.messages[1]["Subject"] == "[Tocsin] #2 CPU hot"
    [notification] = await notification_rows(raw_db, "email")
    assert notification["status"] == "sent"


async def test_invalid_address_is_rejected(
    client: httpx.AsyncClient, auth: dict[str, str], demo: dict[str, Any]
) -> None:
    user_id = demo["users"][0]["id"]
    response = await client.post(
        f"/v1/users/{user_id}/contact-methods",
        json={"kind": "email", "address": "not-an-address"},
        headers=auth,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "address"
    assert "Invalid e-mail address" in response.json()["detail"]
