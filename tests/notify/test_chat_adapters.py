"""Slack, Teams, Mattermost, Telegram, Discord and SMS against fakes of their APIs on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.support import fakes
from tests.support.jobs import advance_clock, drain_jobs, queued_jobs
from tests.support.paging import (
    add_contact_method,
    attempt_rows,
    notification_rows,
    page_links,
    paging_context,
    trigger,
)
from tests.support.receiver import Receiver
from tests.support.verification import code_from_receiver, code_in, verify_contact_method

pytestmark = pytest.mark.asyncio

SLACK_TOKEN = "xoxb-test-token-0001"
TELEGRAM_TOKEN = "123456:TEST-telegram-token-abcdef"
TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-auth-token-test"


@dataclass(frozen=True)
class Channel:
    """How to point one notifier at the fake: contact method, instance options, protocol."""

    kind: str
    address: Callable[[Receiver], str]
    options: Callable[[Receiver], dict[str, Any]]
    respond: Callable[[], fakes.Respond] | None = None
    settings: dict[str, Any] | None = None


CHANNELS = {
    "slack-webhook": Channel(
        "slack", lambda r: f"{r.base_url}/services/T000/B000/XXXX", lambda r: {}
    ),
    "slack-api": Channel(
        "slack",
        lambda r: "C0123ABCD",
        lambda r: {"api_base_url": f"{r.base_url}/api", "token": SLACK_TOKEN},
        lambda: fakes.slack_web_api(SLACK_TOKEN),
    ),
    "teams": Channel(
        "teams",
        lambda r: f"{r.base_url}/workflows/abc/triggers/manual/paths/invoke?sig=secret",
        lambda r: {},
    ),
    "mattermost": Channel("mattermost", lambda r: f"{r.base_url}/hooks/xyz", lambda r: {}),
    "telegram": Channel(
        "telegram",
        lambda r: "-1001234567890",
        lambda r: {"api_base_url": r.base_url, "bot_token": TELEGRAM_TOKEN},
        lambda: fakes.telegram_bot_api(TELEGRAM_TOKEN),
    ),
    "discord": Channel(
        "discord",
        lambda r: f"{r.base_url}/api/webhooks/123/token-abc",
        lambda r: {},
        fakes.discord_webhook,
    ),
    "sms-twilio": Channel(
        "sms",
        lambda r: "+14155550123",
        lambda r: {
            "api_base_url": r.base_url,
            "account_sid": TWILIO_SID,
            "auth_token": TWILIO_TOKEN,
            "from_number": "+14155550100",
        },
        lambda: fakes.twilio_api(TWILIO_SID, TWILIO_TOKEN),
    ),
    "sms-gateway": Channel(
        "sms",
        lambda r: "+4915112345678",
        lambda r: {
            "provider": "http",
            "gateway_url": f"{r.base_url}/send",
            "gateway_token": "gateway-token",
            "from_number": "Tocsin",
        },
    ),
}


async def setup_channel(
    name: str,
    receiver: Receiver,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    app: FastAPI,
    raw_db: asyncpg.Connection,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Add the channel's contact method, verified when its notifier sends codes."""
    channel = CHANNELS[name]
    if channel.respond is not None:
        receiver.respond = channel.respond()
    method = await add_contact_method(
        client,
        auth,
        demo,
        kind=channel.kind,
        address=channel.address(receiver),
        settings=channel.settings,
    )
    options = {channel.kind: channel.options(receiver)}
    if channel.kind == "sms":
        method = await verify_contact_method(
            app,
            client,
            auth,
            raw_db,
            method["id"],
            options=options,
            read_code=code_from_receiver(receiver),
        )
    return method, options


@pytest.mark.parametrize("name", list(CHANNELS))
async def test_retries_after_500_and_429(
    name: str,
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    _, options = await setup_channel(name, receiver, client, auth, demo, app, raw_db)
    receiver.statuses.extend([500, 429])
    receiver.headers_for_status[429] = {"Retry-After": "30"}
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, options)
        await trigger(client, alertmanager_path, "DiskFull", "Disk full")
        await drain_jobs(raw_db, context)
        await advance_clock(raw_db, timedelta(seconds=10))
        await drain_jobs(raw_db, context)
        assert len(receiver.requests) == 2
        [retry] = [
            job for job in await queued_jobs(raw_db) if job["entrypoint"] == "notification.deliver"
        ]
        assert timedelta(seconds=25) < retry["due_in"] <= timedelta(seconds=30)
        await advance_clock(raw_db, timedelta(seconds=31))
        await drain_jobs(raw_db, context)

    assert len(receiver.requests) == 3
    [notification] = await notification_rows(raw_db, CHANNELS[name].kind)
    assert notification["status"] == "sent", notification["last_error"]
    attempts = await attempt_rows(raw_db, notification["id"])
    assert [row["outcome"] for row in attempts] == ["retry", "retry", "success"]
    assert [row["status_code"] for row in attempts][:2] == [500, 429]


@pytest.mark.parametrize("name", list(CHANNELS))
async def test_no_retry_after_400(
    name: str,
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    _, options = await setup_channel(name, receiver, client, auth, demo, app, raw_db)
    receiver.statuses.append(400)
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, options)
        await trigger(client, alertmanager_path, "DiskFull", "Disk full")
        await drain_jobs(raw_db, context, include_delayed=True)

    assert len(receiver.requests) == 1
    [notification] = await notification_rows(raw_db, CHANNELS[name].kind)
    assert notification["status"] == "failed"
    [attempt] = await attempt_rows(raw_db, notification["id"])
    assert attempt["status_code"] == 400
    assert attempt["outcome"] == "failed"


async def page_and_resolve(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    options: dict[str, dict[str, Any]],
    *,
    acknowledge: bool = True,
) -> str:
    """Page, acknowledge and resolve one incident, running every job on the way."""
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, options)
        incident_id = await trigger(client, alertmanager_path, "DiskFull", "Disk <full> & hot")
        await drain_jobs(raw_db, context)
        if acknowledge:
            response = await client.post(f"/v1/incidents/{incident_id}/acknowledge", headers=auth)
            assert response.status_code == 200, response.text
            await drain_jobs(raw_db, context)
        response = await client.post(f"/v1/incidents/{incident_id}/resolve", headers=auth)
        assert response.status_code == 200, response.text
        await drain_jobs(raw_db, context)
    return incident_id


async def test_slack_api_posts_blocks_then_updates(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    _, options = await setup_channel("slack-api", receiver, client, auth, demo, app, raw_db)
    incident_id = await page_and_resolve(app, client, auth, alertmanager_path, raw_db, options)

    post, ack, resolve = receiver.requests
    assert post.path == "/api/chat.postMessage"
    assert post.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    body = post.json()
    assert body["channel"] == "C0123ABCD"
    assert body["text"] == "[P1] Triggered: #1 Disk &lt;full&gt; &amp; hot"
    header, fields, actions, context = body["blocks"]
    assert header["type"] == "header"
    assert {"type": "mrkdwn", "text": "*Service*\nDemo service"} in fields["fields"]
    links = await page_links(raw_db, "slack")
    buttons = actions["elements"]
    assert {button["type"] for button in buttons} == {"button"}
    assert buttons[0]["text"]["text"] == "Acknowledge"
    assert buttons[0]["url"] == links["acknowledge"]
    # The interactivity endpoint's contract: the action after "tocsin:", the incident as value.
    assert buttons[0]["action_id"] == "tocsin:acknowledge"
    assert buttons[0]["value"] == incident_id
    assert {button["url"] for button in buttons} == set(links.values())
    assert context["type"] == "context"

    assert ack.path == "/api/chat.update"
    assert resolve.path == "/api/chat.update"
    notifications = await notification_rows(raw_db, "slack")
    first_message = json.loads(notifications[0]["external_ref"])
    assert first_message["channel"] == "C0123ABCD"
    assert ack.json()["ts"] == first_message["ts"]
    assert resolve.json()["ts"] == first_message["ts"]
    assert ack.json()["text"].startswith("[P1] Acknowledged:")
    assert resolve.json()["text"].startswith("[P1] Resolved:")
    assert [row["status"] for row in notifications] == ["sent", "sent", "sent"]


async def test_slack_escapes_mrkdwn(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    _, options = await setup_channel("slack-webhook", receiver, client, auth, demo, app, raw_db)
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, options)
        await trigger(client, alertmanager_path, "Esc", "x")
        await raw_db.execute("UPDATE services SET name = 'a <b> & c'")
        await drain_jobs(raw_db, context)

    [request] = receiver.requests
    fields = request.json()["blocks"][1]["fields"]
    assert {"type": "mrkdwn", "text": "*Service*\na &lt;b&gt; &amp; c"} in fields


async def test_slack_webhook_address_is_stored_masked(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    method, _ = await setup_channel("slack-webhook", receiver, client, auth, demo, app, raw_db)

    assert method["address"] == f"{receiver.base_url}/***"
    row = await raw_db.fetchrow(
        "SELECT address, secret_settings_encrypted FROM contact_methods WHERE id = $1",
        method["id"],
    )
    assert "XXXX" not in row["address"]
    assert "XXXX" not in row["secret_settings_encrypted"]


async def test_slack_webhook_posts_new_messages(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    _, options = await setup_channel("slack-webhook", receiver, client, auth, demo, app, raw_db)
    await page_and_resolve(app, client, auth, alertmanager_path, raw_db, options)

    assert [request.path for request in receiver.requests] == ["/services/T000/B000/XXXX"] * 3
    texts = [request.json()["text"] for request in receiver.requests]
    assert [text.split(":")[0] for text in texts] == [
        "[P1] Triggered",
        "[P1] Acknowledged",
        "[P1] Resolved",
    ]


async def test_teams_sends_adaptive_card(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    _, options = await setup_channel("teams", receiver, client, auth, demo, app, raw_db)
    receiver.statuses.append(202)
    await page_and_resolve(app, client, auth, alertmanager_path, raw_db, options, acknowledge=False)

    first = receiver.requests[0]
    assert first.path == "/workflows/abc/triggers/manual/paths/invoke"
    assert first.query == "sig=secret"
    body = first.json()
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    title, facts = card["body"]
    assert title["text"] == "[P1] Triggered: #1 Disk <full> & hot"
    assert title["color"] == "Attention"
    assert {"title": "Service", "value": "Demo service"} in facts["facts"]
    links = await page_links(raw_db, "teams")
    assert card["actions"][0] == {
        "type": "Action.OpenUrl",
        "title": "Acknowledge",
        "url": links["acknowledge"],
    }
    # Teams shows at most six actions; the first ones in the render order are kept.
    assert len(card["actions"]) == min(6, len(links))
    assert {action["url"] for action in card["actions"]} <= set(links.values())
    resolved = receiver.requests[1].json()["attachments"][0]["content"]["body"][0]
    assert resolved["color"] == "Good"


async def test_mattermost_sends_attachment(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    receiver_method = await add_contact_method(
        client,
        auth,
        demo,
        kind="mattermost",
        address=f"{receiver.base_url}/hooks/xyz",
        settings={"channel": "town-square", "username": "tocsin"},
    )
    assert receiver_method["settings"] == {"channel": "town-square", "username": "tocsin"}
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, {})
        await trigger(client, alertmanager_path, "DiskFull", "Disk full")
        await drain_jobs(raw_db, context)

    [request] = receiver.requests
    assert request.path == "/hooks/xyz"
    body = request.json()
    assert body["channel"] == "town-square"
    assert body["username"] == "tocsin"
    [attachment] = body["attachments"]
    assert attachment["color"] == "#D92D20"
    assert attachment["title"] == "[P1] Triggered: #1 Disk full"
    links = await page_links(raw_db, "mattermost")
    assert attachment["title_link"] == links["view"]
    assert {"short": True, "title": "Status", "value": "triggered"} in attachment["fields"]
    assert f"[Acknowledge]({links['acknowledge']})" in attachment["text"]
    assert f"[View]({links['view']})" in attachment["text"]


async def test_telegram_replies_to_first_message(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    _, options = await setup_channel("telegram", receiver, client, auth, demo, app, raw_db)
    await page_and_resolve(app, client, auth, alertmanager_path, raw_db, options)

    first, ack, resolve = receiver.requests
    assert first.path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    body = first.json()
    assert body["chat_id"] == "-1001234567890"
    assert body["parse_mode"] == "HTML"
    assert body["text"].startswith("<b>[P1] Triggered: #1 Disk &lt;full&gt; &amp; hot</b>\n")
    assert body["reply_markup"]["inline_keyboard"][0][0]["text"] == "Acknowledge"
    assert "reply_parameters" not in body
    sent = (await notification_rows(raw_db, "telegram"))[0]
    assert sent["event"] == "incident.triggered"
    first_id = json.loads(sent["external_ref"])["message_id"]
    assert ack.json()["reply_parameters"]["message_id"] == first_id
    assert resolve.json()["reply_parameters"]["message_id"] == first_id


async def test_telegram_uses_retry_after_from_body(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    _, options = await setup_channel("telegram", receiver, client, auth, demo, app, raw_db)
    limited = True

    def respond(request: Any) -> Any:
        nonlocal limited
        if limited:
            limited = False
            return fakes.telegram_rate_limited(45)
        return fakes.telegram_bot_api(TELEGRAM_TOKEN)(request)

    receiver.respond = respond
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, options)
        await trigger(client, alertmanager_path, "DiskFull", "Disk full")
        await drain_jobs(raw_db, context)
        [retry] = [
            job for job in await queued_jobs(raw_db) if job["entrypoint"] == "notification.deliver"
        ]

    assert timedelta(seconds=40) < retry["due_in"] <= timedelta(seconds=45)
    [notification] = await notification_rows(raw_db, "telegram")
    assert notification["status"] == "retrying"
    assert "Too Many Requests" in notification["last_error"]
    assert TELEGRAM_TOKEN not in notification["last_error"]


async def test_discord_edits_the_first_message(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    _, options = await setup_channel("discord", receiver, client, auth, demo, app, raw_db)
    await page_and_resolve(app, client, auth, alertmanager_path, raw_db, options)

    first, ack, resolve = receiver.requests
    assert (first.method, first.path, first.query) == (
        "POST",
        "/api/webhooks/123/token-abc",
        "wait=true",
    )
    body = first.json()
    assert body["allowed_mentions"] == {"parse": []}
    [embed] = body["embeds"]
    assert embed["title"] == "[P1] Triggered: #1 Disk <full> & hot"
    assert embed["color"] == 0xD92D20
    first_message = json.loads((await notification_rows(raw_db, "discord"))[0]["external_ref"])
    assert ack.method == "PATCH"
    assert ack.path == f"/api/webhooks/123/token-abc/messages/{first_message['message_id']}"
    assert resolve.method == "PATCH"
    assert resolve.json()["embeds"][0]["color"] == 0x12B76A


async def test_twilio_sms_fits_two_segments(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    _, options = await setup_channel("sms-twilio", receiver, client, auth, demo, app, raw_db)
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, options)
        await trigger(client, alertmanager_path, "Long", "Disk full " * 60)
        await drain_jobs(raw_db, context)

    [request] = receiver.requests
    form = request.form()
    assert form["To"] == "+14155550123"
    assert form["From"] == "+14155550100"
    assert form["Body"].startswith("P1 #1 Disk full Disk full")
    links = await page_links(raw_db, "sms")
    assert form["Body"].endswith(
        f"...\nAck: {links['acknowledge']}\nReply 1a to ack, 1r to resolve"
    )
    assert len(form["Body"]) <= 2 * 153
    [notification] = await notification_rows(raw_db, "sms")
    assert notification["external_ref"] is not None


async def test_sms_gateway_posts_json(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    _, options = await setup_channel("sms-gateway", receiver, client, auth, demo, app, raw_db)
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, options)
        await trigger(client, alertmanager_path, "DiskFull", "Disk full")
        await drain_jobs(raw_db, context)

    [request] = receiver.requests
    assert request.path == "/send"
    assert request.headers["authorization"] == "Bearer gateway-token"
    body = request.json()
    assert body["to"] == "+4915112345678"
    assert body["from"] == "Tocsin"
    links = await page_links(raw_db, "sms")
    assert body["text"].startswith(f"P1 #1 Disk full (Demo service)\nAck: {links['acknowledge']}")


async def test_sms_pages_only_once_verified(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    channel = CHANNELS["sms-gateway"]
    method = await add_contact_method(
        client, auth, demo, kind="sms", address=channel.address(receiver)
    )
    assert method["verified_at"] is None
    async with httpx.AsyncClient() as http:
        context = paging_context(app, http, {"sms": channel.options(receiver)})
        unverified = await trigger(client, alertmanager_path, "DiskFull", "Disk full")
        await drain_jobs(raw_db, context)
        unverified_requests = list(receiver.requests)
        resolved = await client.post(f"/v1/incidents/{unverified}/resolve", headers=auth)
        assert resolved.status_code == 200, resolved.text
        await drain_jobs(raw_db, context)

        started = await client.post(
            f"/v1/contact-methods/{method['id']}/verification", headers=auth
        )
        assert started.status_code == 202, started.text
        await drain_jobs(raw_db, context)
        [code_request] = receiver.requests
        code = code_in(code_request.json()["text"])
        confirmed = await client.post(
            f"/v1/contact-methods/{method['id']}/verification/confirm",
            json={"code": code},
            headers=auth,
        )
        assert confirmed.status_code == 200, confirmed.text

        await trigger(client, alertmanager_path, "CpuHot", "CPU hot")
        await drain_jobs(raw_db, context)

    assert unverified_requests == []
    assert code_request.path == "/send"
    assert code_request.headers["authorization"] == "Bearer gateway-token"
    assert code_request.json() == {
        "to": "+4915112345678",
        "from": "Tocsin",
        "text": f"Tocsin verification code: {code}. Enter it in Tocsin to get pages at this "
        "number.",
    }
    assert code_request.headers["idempotency-key"].startswith("verification:")
    assert code not in code_request.headers["idempotency-key"]
    assert confirmed.json()["verified_at"] is not None
    page = receiver.requests[-1].json()
    assert page["text"].startswith("P1 #2 CPU hot")
    [notification] = await notification_rows(raw_db, "sms")
    assert notification["status"] == "sent"


async def test_changed_number_needs_verification_again(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    demo: dict[str, Any],
    raw_db: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    method, _ = await setup_channel("sms-twilio", receiver, client, auth, demo, app, raw_db)
    assert method["verified_at"] is not None

    renamed = await client.patch(
        f"/v1/contact-methods/{method['id']}", json={"name": "Work phone"}, headers=auth
    )
    moved = await client.patch(
        f"/v1/contact-methods/{method['id']}", json={"address": "+14155550199"}, headers=auth
    )

    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["verified_at"] is not None
    assert moved.status_code == 200, moved.text
    assert moved.json()["verified_at"] is None
