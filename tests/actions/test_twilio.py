from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest

from app.core.config import Settings
from tests.actions.conftest import SMS_NUMBER, TWILIO_AUTH_TOKEN, PagedIncident, incident_status

pytestmark = pytest.mark.asyncio

PATH = "/callbacks/twilio/sms"
FROM = "+14155550100"


def twilio_signature(url: str, params: dict[str, str], token: str = TWILIO_AUTH_TOKEN) -> str:
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


async def send_sms(
    client: httpx.AsyncClient,
    settings: Settings,
    text: str,
    *,
    sender: str = FROM,
    token: str = TWILIO_AUTH_TOKEN,
) -> httpx.Response:
    params = {
        "MessageSid": "SM" + "0" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": "+14155559999",
        "Body": text,
        "NumSegments": "1",
    }
    signature = twilio_signature(settings.public_base_url + PATH, params, token)
    return await client.post(
        PATH,
        content=urlencode(params).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


async def add_sms_page(raw_db: asyncpg.Connection, paged: PagedIncident) -> None:
    """Give the demo responder an SMS contact method and record a page to it."""
    method_id = uuid.uuid4()
    await raw_db.execute(
        "INSERT INTO contact_methods (id, user_id, kind, name, address) "
        "VALUES ($1, $2, 'sms', 'Phone', $3)",
        method_id,
        paged.user_id,
        SMS_NUMBER,
    )
    await raw_db.execute(
        "INSERT INTO notifications (id, incident_id, user_id, contact_method_id, notifier, event, "
        "status, idempotency_key, message) "
        "VALUES ($1, $2, $3, $4, 'sms', 'incident.triggered', 'sent', $5, '{}'::jsonb)",
        uuid.uuid4(),
        paged.id,
        paged.user_id,
        method_id,
        f"sms-test:{method_id}",
    )


def reply_text(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/xml")
    body = response.text
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>')
    return body.split("<Message>", 1)[1].split("</Message>", 1)[0]


class TestTwilioSms:
    async def test_reply_code_acknowledges(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
    ) -> None:
        await add_sms_page(raw_db, paged)
        response = await send_sms(client, settings, f" {paged.number}A ")
        assert response.status_code == 200
        assert reply_text(response).startswith(f"#{paged.number}: Acknowledged by Demo Responder")
        assert await incident_status(raw_db, paged.id) == "acknowledged"
        data = await raw_db.fetchval(
            "SELECT data FROM timeline_entries WHERE kind = 'incident.acknowledged'"
        )
        assert json.loads(data) == {"channel": "sms"}

    async def test_reply_code_resolves(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
    ) -> None:
        await add_sms_page(raw_db, paged)
        response = await send_sms(client, settings, f"{paged.number}r")
        assert "Resolved by Demo Responder" in reply_text(response)
        assert await incident_status(raw_db, paged.id) == "resolved"
        again = await send_sms(client, settings, f"{paged.number}a")
        assert reply_text(again).startswith(f"#{paged.number}: Nothing changed. Resolved by")

    async def test_wrong_signature_is_403(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
    ) -> None:
        await add_sms_page(raw_db, paged)
        response = await send_sms(client, settings, f"{paged.number}a", token="not-the-token")
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert await incident_status(raw_db, paged.id) == "triggered"

    async def test_missing_signature_is_403(
        self, client: httpx.AsyncClient, paged: PagedIncident
    ) -> None:
        response = await client.post(
            PATH,
            content=urlencode({"From": FROM, "Body": f"{paged.number}a"}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 403

    async def test_unpaged_number_gets_stale_reply(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
    ) -> None:
        await add_sms_page(raw_db, paged)
        response = await send_sms(client, settings, f"{paged.number}a", sender="+14155550199")
        assert "unknown or stale" in reply_text(response)
        assert await incident_status(raw_db, paged.id) == "triggered"

    async def test_other_incident_number_gets_stale_reply(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
    ) -> None:
        await add_sms_page(raw_db, paged)
        response = await send_sms(client, settings, f"{paged.number + 1}a")
        assert f"Code {paged.number + 1}a is unknown or stale" in reply_text(response)

    async def test_old_page_gets_stale_reply(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
    ) -> None:
        await add_sms_page(raw_db, paged)
        await raw_db.execute("UPDATE notifications SET created_at = now() - interval '25 hours'")
        response = await send_sms(client, settings, f"{paged.number}a")
        assert "unknown or stale" in reply_text(response)
        assert await incident_status(raw_db, paged.id) == "triggered"

    async def test_held_page_counts_only_once_digested(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
    ) -> None:
        await add_sms_page(raw_db, paged)
        await raw_db.execute("UPDATE notifications SET status = 'throttled' WHERE notifier = 'sms'")

        before_digest = await send_sms(client, settings, f"{paged.number}a")
        assert "unknown or stale" in reply_text(before_digest)
        assert await incident_status(raw_db, paged.id) == "triggered"

        # A digest that went out listed the incident, so the phone has seen it.
        digest_id = uuid.uuid4()
        await raw_db.execute(
            "INSERT INTO notifications (id, incident_id, user_id, contact_method_id, notifier, "
            "event, status, idempotency_key, message) "
            "SELECT $1, NULL, user_id, contact_method_id, 'sms', 'digest', 'sent', 'digest:t', "
            "'{}'::jsonb FROM notifications WHERE notifier = 'sms'",
            digest_id,
        )
        await raw_db.execute(
            "UPDATE notifications SET digest_id = $1 WHERE status = 'throttled'", digest_id
        )
        digested = await send_sms(client, settings, f"{paged.number}a")
        assert reply_text(digested).startswith(f"#{paged.number}: Acknowledged")

    async def test_unknown_letter_and_free_text_get_help(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
    ) -> None:
        await add_sms_page(raw_db, paged)
        unknown = reply_text(await send_sms(client, settings, f"{paged.number}z"))
        assert unknown.startswith(f"Unknown code {paged.number}z.")
        assert "a acknowledge" in unknown
        help_text = reply_text(await send_sms(client, settings, "what is going on?"))
        assert help_text.startswith("Reply with the incident number and a letter")
        assert await incident_status(raw_db, paged.id) == "triggered"
