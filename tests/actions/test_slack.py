from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest

from app.incidents.paging import PagingContext
from tests.actions.conftest import SLACK_SIGNING_SECRET, PagedIncident, incident_status
from tests.support.jobs import drain_jobs
from tests.support.receiver import Receiver

pytestmark = pytest.mark.asyncio

SLACK_USER = "U024BE7LH"
SLACK_TEAM = "T024BE7LD"
PATH = "/callbacks/slack/interactions"


def interaction(
    incident_id: uuid.UUID, action: str, response_url: str, user: str = SLACK_USER
) -> bytes:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": "ana", "team_id": SLACK_TEAM},
        "team": {"id": SLACK_TEAM, "domain": "example"},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": f"tocsin:{action}",
                "block_id": "actions",
                "value": str(incident_id),
                "action_ts": "1733300000.000100",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed_headers(
    body: bytes, *, secret: str = SLACK_SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    sent_at = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(
        secret.encode(), b"v0:" + sent_at.encode() + b":" + body, hashlib.sha256
    ).hexdigest()
    return {
        "X-Slack-Request-Timestamp": sent_at,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def link_slack_user(
    client: httpx.AsyncClient, auth: dict[str, str], user_id: uuid.UUID
) -> None:
    response = await client.post(
        f"/v1/users/{user_id}/chat-identities",
        json={"external_user_id": SLACK_USER, "team_id": SLACK_TEAM},
        headers=auth,
    )
    assert response.status_code == 201, response.text


class TestSlackInteractions:
    async def test_signed_press_acknowledges_and_updates_message(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
        paging: PagingContext,
        receiver: Receiver,
    ) -> None:
        await link_slack_user(client, auth, paged.user_id)
        body = interaction(paged.id, "acknowledge", receiver.url)
        response = await client.post(PATH, content=body, headers=signed_headers(body))
        assert response.status_code == 200, response.text
        assert await incident_status(raw_db, paged.id) == "acknowledged"
        entry = await raw_db.fetchrow(
            "SELECT actor_id, data FROM timeline_entries WHERE kind = 'incident.acknowledged'"
        )
        assert entry["actor_id"] == paged.user_id
        assert json.loads(entry["data"]) == {"channel": "slack"}

        await drain_jobs(raw_db, paging)
        requests = await receiver.wait_for(1)
        update = json.loads(requests[0].body)
        assert update["replace_original"] is True
        assert update["text"].startswith("Acknowledged by Demo Responder at ")
        buttons = [
            element["action_id"]
            for block in update["blocks"]
            if block["type"] == "actions"
            for element in block["elements"]
        ]
        assert "tocsin:acknowledge" not in buttons
        assert "tocsin:resolve" in buttons

    async def test_wrong_signature_is_401_and_changes_nothing(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
    ) -> None:
        await link_slack_user(client, auth, paged.user_id)
        body = interaction(paged.id, "acknowledge", "http://127.0.0.1:9/unused")
        response = await client.post(
            PATH, content=body, headers=signed_headers(body, secret="another-secret")
        )
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == "headers"
        assert await incident_status(raw_db, paged.id) == "triggered"

    async def test_changed_body_is_401(
        self, client: httpx.AsyncClient, paged: PagedIncident, raw_db: asyncpg.Connection
    ) -> None:
        body = interaction(paged.id, "acknowledge", "http://127.0.0.1:9/unused")
        headers = signed_headers(body)
        changed = interaction(paged.id, "resolve", "http://127.0.0.1:9/unused")
        response = await client.post(PATH, content=changed, headers=headers)
        assert response.status_code == 401
        assert await incident_status(raw_db, paged.id) == "triggered"

    async def test_stale_timestamp_is_401(
        self, client: httpx.AsyncClient, paged: PagedIncident, raw_db: asyncpg.Connection
    ) -> None:
        body = interaction(paged.id, "acknowledge", "http://127.0.0.1:9/unused")
        old = int(time.time()) - 301
        response = await client.post(
            PATH, content=body, headers=signed_headers(body, timestamp=old)
        )
        assert response.status_code == 401
        assert "300 seconds" in response.json()["detail"]
        assert await incident_status(raw_db, paged.id) == "triggered"

    async def test_missing_headers_are_401(
        self, client: httpx.AsyncClient, paged: PagedIncident
    ) -> None:
        body = interaction(paged.id, "acknowledge", "http://127.0.0.1:9/unused")
        response = await client.post(PATH, content=body)
        assert response.status_code == 401

    async def test_unmapped_user_gets_ephemeral_note(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
        receiver: Receiver,
    ) -> None:
        body = interaction(paged.id, "acknowledge", receiver.url, user="U999UNKNOWN")
        response = await client.post(PATH, content=body, headers=signed_headers(body))
        assert response.status_code == 200
        assert await incident_status(raw_db, paged.id) == "triggered"
        await drain_jobs(raw_db, paging)
        note = json.loads((await receiver.wait_for(1))[0].body)
        assert note["response_type"] == "ephemeral"
        assert "U999UNKNOWN" in note["text"]
        assert "not linked" in note["text"]

    async def test_non_slack_response_url_is_not_called(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
        paging: PagingContext,
        receiver: Receiver,
    ) -> None:
        await link_slack_user(client, auth, paged.user_id)
        # The allowed prefix in these tests is http://127.0.0.1: so this local URL is refused.
        elsewhere = f"http://localhost:{receiver.port}/collect"
        body = interaction(paged.id, "resolve", elsewhere)
        response = await client.post(PATH, content=body, headers=signed_headers(body))
        assert response.status_code == 200
        assert await incident_status(raw_db, paged.id) == "resolved"
        ran = await drain_jobs(raw_db, paging)
        assert "slack.message_update" in ran
        assert receiver.requests == []

    async def test_other_payload_type_is_400(
        self, client: httpx.AsyncClient, paged: PagedIncident
    ) -> None:
        body = urlencode({"payload": json.dumps({"type": "view_submission"})}).encode()
        response = await client.post(PATH, content=body, headers=signed_headers(body))
        assert response.status_code == 400
        assert response.json()["field"] == "payload.type"


class TestChatIdentities:
    async def test_duplicate_mapping_is_409(
        self, client: httpx.AsyncClient, paged: PagedIncident, auth: dict[str, str]
    ) -> None:
        await link_slack_user(client, auth, paged.user_id)
        again = await client.post(
            f"/v1/users/{paged.user_id}/chat-identities",
            json={"external_user_id": SLACK_USER, "team_id": SLACK_TEAM},
            headers=auth,
        )
        assert again.status_code == 409
        assert again.json()["field"] == "external_user_id"
        listed = await client.get(f"/v1/users/{paged.user_id}/chat-identities", headers=auth)
        assert [row["external_user_id"] for row in listed.json()] == [SLACK_USER]

    async def test_member_of_other_user_is_409(
        self, client: httpx.AsyncClient, paged: PagedIncident, auth: dict[str, str]
    ) -> None:
        await link_slack_user(client, auth, paged.user_id)
        other = await client.post(
            "/v1/users", json={"name": "Alice", "email": "alice@example.com"}, headers=auth
        )
        assert other.status_code == 201, other.text

        answers = [
            await client.post(
                f"/v1/users/{other.json()['id']}/chat-identities",
                json={"external_user_id": SLACK_USER, **workspace},
                headers=auth,
            )
            for workspace in ({"team_id": SLACK_TEAM}, {})
        ]
        elsewhere = await client.post(
            f"/v1/users/{other.json()['id']}/chat-identities",
            json={"external_user_id": SLACK_USER, "team_id": "T0OTHER"},
            headers=auth,
        )

        assert [answer.status_code for answer in answers] == [409, 409]
        assert "already linked to user" in answers[1].json()["detail"]
        # The first link names one workspace, so another workspace's member is another account.
        assert elsewhere.status_code == 201, elsewhere.text

    async def test_invalid_member_id_is_422(
        self, client: httpx.AsyncClient, paged: PagedIncident, auth: dict[str, str]
    ) -> None:
        response = await client.post(
            f"/v1/users/{paged.user_id}/chat-identities",
            json={"external_user_id": "not a slack id"},
            headers=auth,
        )
        assert response.status_code == 422
        assert response.json()["field"] == "body.external_user_id"

    async def test_deleted_mapping_stops_acting(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
    ) -> None:
        await link_slack_user(client, auth, paged.user_id)
        listed = await client.get(f"/v1/users/{paged.user_id}/chat-identities", headers=auth)
        deleted = await client.delete(f"/v1/chat-identities/{listed.json()[0]['id']}", headers=auth)
        assert deleted.status_code == 204
        body = interaction(paged.id, "acknowledge", "http://127.0.0.1:9/unused")
        response = await client.post(PATH, content=body, headers=signed_headers(body))
        assert response.status_code == 200
        assert await incident_status(raw_db, paged.id) == "triggered"


async def test_message_update_escapes_sender_text() -> None:
    from app.actions.slack_update import SlackMessageUpdate, render_message

    update = SlackMessageUpdate(
        response_url="http://127.0.0.1:1/unused",
        text="Acknowledged by <!channel>",
        replace_original=True,
        incident={
            "id": "x",
            "number": 7,
            "title": "<!channel> & <http://evil|click>",
            "status": "triggered",
        },
        actions=["resolve"],
    )
    body = render_message(update)
    heading = body["blocks"][0]["text"]["text"]
    assert "<!channel>" not in heading
    assert "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;" in heading
    assert body["text"] == "Acknowledged by &lt;!channel&gt;"
