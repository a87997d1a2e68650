from __future__ import annotations

import json
import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.actions import catalog, tokens
from app.actions.links import link_url
from app.core.config import Settings
from app.core.time import utcnow
from app.incidents.paging import PagingContext
from app.notify.adapters.log import render_text
from app.notify.base import Message
from tests.actions.conftest import PagedIncident, incident_status, page_incident
from tests.support.jobs import advance_clock, drain_jobs, queued_jobs

pytestmark = pytest.mark.asyncio

INCIDENT_TITLE_WORD = "5xx rate above 5%"


def signed_path(
    settings: Settings,
    paged: PagedIncident,
    spec: catalog.ActionSpec,
    *,
    keyring: tokens.Keyring | None = None,
    expires_in: timedelta = timedelta(hours=1),
    number: int | None = None,
    incident_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
) -> str:
    token = tokens.sign(
        keyring or tokens.Keyring.from_settings(settings),
        action_code=spec.code,
        incident_number=paged.number if number is None else number,
        incident_id=incident_id or paged.id,
        user_id=user_id or paged.user_id,
        expires_at=utcnow() + expires_in,
    )
    return "/a/" + token


class TestPageLinks:
    async def test_page_carries_links_for_triggered_state(
        self, paged: PagedIncident, settings: Settings
    ) -> None:
        # The demo policy has one level and no repeat, so there is no level to escalate to.
        assert set(paged.links) == {
            "acknowledge",
            "resolve",
            "snooze-15m",
            "snooze-1h",
            "snooze-4h",
            "take",
            "view",
        }
        for url in paged.links.values():
            assert url.startswith(f"{settings.public_base_url}/a/")

    async def test_page_carries_reply_codes(
        self, paged: PagedIncident, raw_db: asyncpg.Connection
    ) -> None:
        message = json.loads(await raw_db.fetchval("SELECT message FROM notifications LIMIT 1"))
        codes = message["incident"]["reply_codes"]
        assert codes["acknowledge"] == f"{paged.number}a"
        assert codes["resolve"] == f"{paged.number}r"

    async def test_log_notifier_prints_links(self, paged: PagedIncident) -> None:
        message = Message(
            notification_id="n",
            idempotency_key="k",
            event="incident.triggered",
            incident={"number": 1, "title": "t", "service": {"name": "s"}, "status": "triggered"},
            recipient={"name": "Ana"},
            links=paged.links,
        )
        text = render_text(message)
        assert f"Acknowledge: {paged.links['acknowledge']}" in text
        assert f"View: {paged.links['view']}" in text


class TestConfirmPage:
    async def test_get_shows_confirmation_and_changes_nothing(
        self, client: httpx.AsyncClient, paged: PagedIncident, raw_db: asyncpg.Connection
    ) -> None:
        response = await client.get(paged.path("acknowledge"))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert INCIDENT_TITLE_WORD in response.text
        assert "Demo service" in response.text
        assert '<form class="action" method="post">' in response.text
        assert "<script" not in response.text
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert await incident_status(raw_db, paged.id) == "triggered"

    async def test_repeated_gets_change_nothing(
        self, client: httpx.AsyncClient, paged: PagedIncident, raw_db: asyncpg.Connection
    ) -> None:
        for action in ("acknowledge", "resolve", "snooze-1h"):
            for _ in range(3):
                response = await client.get(paged.path(action))
                assert response.status_code == 200
        assert await incident_status(raw_db, paged.id) == "triggered"
        kinds = await raw_db.fetch(
            "SELECT kind FROM timeline_entries WHERE incident_id = $1", paged.id
        )
        assert "incident.acknowledged" not in {row["kind"] for row in kinds}
        assert await raw_db.fetchval("SELECT count(*) FROM action_link_uses") == 0

    async def test_post_acknowledges_and_records_timeline(
        self, client: httpx.AsyncClient, paged: PagedIncident, raw_db: asyncpg.Connection
    ) -> None:
        response = await client.post(paged.path("acknowledge"))
        assert response.status_code == 200
        assert "Acknowledged by Demo Responder at " in response.text
        assert " UTC" in response.text
        assert await incident_status(raw_db, paged.id) == "acknowledged"
        entry = await raw_db.fetchrow(
            "SELECT actor_type, actor_id, actor_name, message, data, at FROM timeline_entries "
            "WHERE incident_id = $1 AND kind = 'incident.acknowledged'",
            paged.id,
        )
        assert entry is not None
        assert entry["actor_type"] == "user"
        assert entry["actor_id"] == paged.user_id
        assert entry["actor_name"] == "Demo Responder"
        assert json.loads(entry["data"]) == {"channel": "link"}
        assert entry["message"] == "Acknowledged by Demo Responder via link"
        assert entry["at"] is not None

    async def test_reused_link_shows_outcome_and_changes_nothing(
        self, client: httpx.AsyncClient, paged: PagedIncident, raw_db: asyncpg.Connection
    ) -> None:
        first = await client.post(paged.path("snooze-1h"))
        assert first.status_code == 200
        until = await raw_db.fetchval("SELECT snoozed_until FROM incidents WHERE id = $1", paged.id)
        again = await client.post(paged.path("snooze-1h"))
        assert again.status_code == 200
        assert "already used" in again.text
        assert "Snoozed until" in again.text
        assert "by Demo Responder" in again.text
        assert until == await raw_db.fetchval(
            "SELECT snoozed_until FROM incidents WHERE id = $1", paged.id
        )
        snoozes = await raw_db.fetchval(
            "SELECT count(*) FROM timeline_entries WHERE kind = 'incident.snoozed'"
        )
        assert snoozes == 1
        confirm_page = await client.get(paged.path("snooze-1h"))
        assert "already used" in confirm_page.text
        assert "<button" not in confirm_page.text

    async def test_acknowledge_on_acknowledged_incident_says_who(
        self, client: httpx.AsyncClient, paged: PagedIncident, auth: dict[str, str]
    ) -> None:
        response = await client.post(f"/v1/incidents/{paged.id}/acknowledge", headers=auth)
        assert response.status_code == 200
        page = await client.get(paged.path("acknowledge"))
        assert "Nothing to do: Acknowledged by Demo admin at " in page.text
        assert "<button" not in page.text
        done = await client.post(paged.path("acknowledge"))
        assert done.status_code == 200
        assert "Nothing changed. Acknowledged by Demo admin at " in done.text

    async def test_acting_on_resolved_incident_changes_nothing(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
    ) -> None:
        resolved = await client.post(f"/v1/incidents/{paged.id}/resolve", headers=auth)
        assert resolved.status_code == 200
        before = await raw_db.fetchval("SELECT count(*) FROM timeline_entries")
        for action in ("acknowledge", "resolve", "snooze-15m"):
            response = await client.post(paged.path(action))
            assert response.status_code == 200
            assert "Nothing changed. Resolved by Demo admin at " in response.text
        assert await incident_status(raw_db, paged.id) == "resolved"
        assert await raw_db.fetchval("SELECT count(*) FROM timeline_entries") == before

    async def test_resolve_link_resolves(
        self, client: httpx.AsyncClient, paged: PagedIncident, raw_db: asyncpg.Connection
    ) -> None:
        response = await client.post(paged.path("resolve"))
        assert response.status_code == 200
        assert "Resolved by Demo Responder at " in response.text
        assert await incident_status(raw_db, paged.id) == "resolved"

    async def test_view_link_signs_in_and_redirects(
        self, client: httpx.AsyncClient, paged: PagedIncident
    ) -> None:
        response = await client.get(paged.path("view"))
        assert response.status_code == 303
        assert response.headers["location"] == f"/incidents/{paged.id}"
        assert "tocsin_session=" in response.headers["set-cookie"]
        assert "HttpOnly" in response.headers["set-cookie"]
        page = await client.get(f"/incidents/{paged.id}")
        assert page.status_code == 200
        assert "5xx rate above 5% on checkout-7d9f-abc12" in page.text
        assert "Acknowledge" in page.text


class TestRejectedLinks:
    async def assert_rejected(
        self, client: httpx.AsyncClient, path: str, status: int, title: str
    ) -> None:
        response = await client.get(path)
        assert response.status_code == status
        assert title in response.text
        assert INCIDENT_TITLE_WORD not in response.text
        assert "Demo service" not in response.text
        assert "set-cookie" not in response.headers
        posted = await client.post(path)
        assert posted.status_code == status
        assert INCIDENT_TITLE_WORD not in posted.text

    async def test_tampered_link_is_403(
        self, client: httpx.AsyncClient, paged: PagedIncident, raw_db: asyncpg.Connection
    ) -> None:
        path = paged.path("acknowledge")
        middle = len(path) // 2
        swapped = "B" if path[middle] != "B" else "C"
        tampered = path[:middle] + swapped + path[middle + 1 :]
        await self.assert_rejected(client, tampered, 403, "This link is not valid")
        assert await incident_status(raw_db, paged.id) == "triggered"

    async def test_expired_link_is_410(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        settings: Settings,
        raw_db: asyncpg.Connection,
    ) -> None:
        path = signed_path(settings, paged, catalog.ACKNOWLEDGE, expires_in=-timedelta(seconds=1))
        await self.assert_rejected(client, path, 410, "This link has expired")
        assert await incident_status(raw_db, paged.id) == "triggered"

    async def test_revoked_key_link_is_403(
        self, client: httpx.AsyncClient, paged: PagedIncident, settings: Settings
    ) -> None:
        revoked = tokens.Keyring(keys={9: b"k" * 32}, signing_key_id=9)
        path = signed_path(settings, paged, catalog.ACKNOWLEDGE, keyring=revoked)
        await self.assert_rejected(client, path, 403, "This link no longer works")

    async def test_deleted_users_link_is_410(
        self, client: httpx.AsyncClient, paged: PagedIncident, settings: Settings
    ) -> None:
        path = signed_path(settings, paged, catalog.ACKNOWLEDGE, user_id=uuid.uuid4())
        await self.assert_rejected(client, path, 410, "no longer has an account")
        answer = await client.get(path, headers={"Accept": "application/json"})
        assert answer.json()["code"] == "link_user_gone"

    async def test_wrong_incident_link_is_403(
        self, client: httpx.AsyncClient, paged: PagedIncident, settings: Settings
    ) -> None:
        # A missing incident looks like any invalid link: no probing for incident numbers.
        missing_number = signed_path(settings, paged, catalog.ACKNOWLEDGE, number=paged.number + 9)
        await self.assert_rejected(client, missing_number, 403, "This link is not valid")
        other_database = signed_path(settings, paged, catalog.ACKNOWLEDGE, incident_id=uuid.uuid4())
        await self.assert_rejected(client, other_database, 403, "This link is not valid")

    async def test_json_clients_get_problem_json(
        self, client: httpx.AsyncClient, paged: PagedIncident, settings: Settings
    ) -> None:
        path = signed_path(settings, paged, catalog.ACKNOWLEDGE, expires_in=-timedelta(hours=1))
        response = await client.get(path, headers={"Accept": "application/json"})
        assert response.status_code == 410
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "link_expired"
        assert response.json()["field"] == "token"


class TestSnoozeAndEscalate:
    async def test_snooze_triggers_again_and_pages(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        response = await client.post(paged.path("snooze-15m"))
        assert response.status_code == 200
        assert "Snoozed until" in response.text
        assert await incident_status(raw_db, paged.id) == "acknowledged"
        jobs = [row["entrypoint"] for row in await queued_jobs(raw_db)]
        assert "incident.snooze_ended" in jobs
        pages_before = await raw_db.fetchval(
            "SELECT count(*) FROM notifications WHERE event = 'incident.triggered'"
        )

        await drain_jobs(raw_db, paging)
        assert await incident_status(raw_db, paged.id) == "acknowledged"

        await advance_clock(raw_db, timedelta(minutes=15))
        await drain_jobs(raw_db, paging)
        assert await incident_status(raw_db, paged.id) == "triggered"
        pages_after = await raw_db.fetchval(
            "SELECT count(*) FROM notifications WHERE event = 'incident.triggered'"
        )
        assert pages_after == pages_before + 1
        kinds = [
            row["kind"]
            for row in await raw_db.fetch(
                "SELECT kind FROM timeline_entries WHERE incident_id = $1 ORDER BY at, id",
                paged.id,
            )
        ]
        assert "incident.snoozed" in kinds
        assert "incident.snooze_ended" in kinds

    async def test_resolved_during_snooze_stays_resolved(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        await client.post(paged.path("snooze-15m"))
        await client.post(paged.path("resolve"))
        await advance_clock(raw_db, timedelta(minutes=15))
        await drain_jobs(raw_db, paging)
        assert await incident_status(raw_db, paged.id) == "resolved"

    async def test_escalate_pages_next_level(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        demo: dict[str, object],
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
        paging: PagingContext,
        alertmanager_path: str,
    ) -> None:
        second = await client.post(
            "/v1/users",
            json={"name": "Second Level", "email": "second@example.com"},
            headers=auth,
        )
        assert second.status_code == 201, second.text
        second_id = second.json()["id"]
        method = await client.post(
            f"/v1/users/{second_id}/contact-methods", json={"kind": "log"}, headers=auth
        )
        assert method.status_code == 201, method.text
        policy_id = await raw_db.fetchval("SELECT id FROM escalation_policies LIMIT 1")
        await raw_db.execute(
            "INSERT INTO escalation_levels (id, policy_id, position, delay_minutes, targets) "
            "VALUES ($1, $2, 1, 30, $3::jsonb)",
            uuid.uuid4(),
            policy_id,
            json.dumps([{"type": "user", "id": second_id}]),
        )
        incident = await page_incident(client, alertmanager_path, raw_db, paging)
        assert "escalate" in incident.links

        response = await client.post(incident.path("escalate"))
        assert response.status_code == 200
        assert "Escalated" in response.text
        await drain_jobs(raw_db, paging)
        paged_users = {
            row["user_id"]
            for row in await raw_db.fetch(
                "SELECT user_id FROM notifications WHERE event = 'incident.triggered'"
            )
        }
        assert uuid.UUID(second_id) in paged_users
        entry = await raw_db.fetchval(
            "SELECT message FROM timeline_entries WHERE kind = 'escalation.manual'"
        )
        assert entry == "Escalated to level 2 by Demo Responder via link"

        again = await client.get(incident.path("escalate"))
        assert "already used" in again.text


async def sign_in(
    client: httpx.AsyncClient, api_key: str, next_path: str = "/oncall"
) -> httpx.Response:
    """Submit the sign-in form as a browser does: open it first, then post its token."""
    form = await client.get("/login")
    token = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return await client.post("/login", data={"api_key": api_key, "next": next_path, "csrf": token})


class TestResponderPages:
    async def test_incident_page_requires_sign_in(
        self, client: httpx.AsyncClient, paged: PagedIncident
    ) -> None:
        response = await client.get(f"/incidents/{paged.id}")
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next=/incidents/{paged.id}"

    async def test_api_key_sign_in_shows_oncall(
        self, client: httpx.AsyncClient, paged: PagedIncident, demo: dict[str, object]
    ) -> None:
        wrong = await sign_in(client, "tocsin_wrong")
        assert wrong.status_code == 401
        assert "unknown, revoked" in wrong.text
        response = await sign_in(client, str(demo["api_key"]))
        assert response.status_code == 303
        assert response.headers["location"] == "/oncall"
        oncall = await client.get("/oncall")
        assert oncall.status_code == 200
        assert "Demo service" in oncall.text
        assert "Demo Responder" in oncall.text
        assert f"#{paged.number}" in oncall.text

    async def test_login_never_redirects_off_site(
        self, client: httpx.AsyncClient, demo: dict[str, object]
    ) -> None:
        response = await sign_in(client, str(demo["api_key"]), "//evil.example/")
        assert response.headers["location"] == "/oncall"

    async def test_login_without_token_rejected(
        self, client: httpx.AsyncClient, demo: dict[str, object]
    ) -> None:
        # A page on another site can post the form, but has neither the cookie nor the token.
        forged = await client.post(
            "/login", data={"api_key": str(demo["api_key"]), "csrf": "guessed"}
        )
        assert forged.status_code == 403
        assert "expired or came from another site" in forged.text
        assert "tocsin_session" not in client.cookies
        assert (await client.get("/oncall")).status_code == 303

    async def test_web_action_needs_csrf_token(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        demo: dict[str, object],
        raw_db: asyncpg.Connection,
    ) -> None:
        await sign_in(client, str(demo["api_key"]))
        forged = await client.post(
            f"/incidents/{paged.id}/actions/acknowledge", data={"csrf": "forged"}
        )
        assert forged.status_code == 403
        assert await incident_status(raw_db, paged.id) == "triggered"

        page = await client.get(f"/incidents/{paged.id}")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        done = await client.post(f"/incidents/{paged.id}/actions/acknowledge", data={"csrf": csrf})
        assert done.status_code == 303
        assert await incident_status(raw_db, paged.id) == "acknowledged"
        channel = await raw_db.fetchval(
            "SELECT data->>'channel' FROM timeline_entries WHERE kind = 'incident.acknowledged'"
        )
        assert channel == "web"

    async def test_revoked_api_key_ends_session(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        demo: dict[str, object],
        raw_db: asyncpg.Connection,
    ) -> None:
        await sign_in(client, str(demo["api_key"]))
        assert (await client.get("/oncall")).status_code == 200
        await raw_db.execute("UPDATE api_keys SET revoked_at = now()")
        assert (await client.get("/oncall")).status_code == 303


async def test_link_url_uses_public_base(settings: Settings) -> None:
    assert link_url(settings, "abc") == "http://tocsin.test/a/abc"


class TestTake:
    async def test_take_reassigns_to_link_user_and_acknowledges(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        pages_before = await raw_db.fetchval(
            "SELECT count(*) FROM notifications WHERE event = 'incident.triggered'"
        )
        response = await client.post(paged.path("take"))
        assert response.status_code == 200
        assert await incident_status(raw_db, paged.id) == "acknowledged"
        await drain_jobs(raw_db, paging)
        kinds = [
            row["kind"]
            for row in await raw_db.fetch(
                "SELECT kind FROM timeline_entries WHERE incident_id = $1 ORDER BY at, id",
                paged.id,
            )
        ]
        assert "incident.reassigned" in kinds
        assert kinds.index("incident.reassigned") < kinds.index("incident.acknowledged")
        reassigned = await raw_db.fetchval(
            "SELECT data->>'user_id' FROM timeline_entries "
            "WHERE incident_id = $1 AND kind = 'incident.reassigned'",
            paged.id,
        )
        assert reassigned == str(paged.user_id)
        # The taker is not paged about the incident they just took.
        pages_after = await raw_db.fetchval(
            "SELECT count(*) FROM notifications WHERE event = 'incident.triggered'"
        )
        assert pages_after == pages_before


class TestObservers:
    async def test_observer_links_cannot_act(
        self,
        client: httpx.AsyncClient,
        paged: PagedIncident,
        settings: Settings,
        auth: dict[str, str],
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        created = await client.post(
            "/v1/users",
            json={"name": "Olive Observer", "email": "olive@example.com", "role": "observer"},
            headers=auth,
        )
        observer_id = uuid.UUID(created.json()["id"])
        await client.post(
            f"/v1/users/{observer_id}/contact-methods", json={"kind": "log"}, headers=auth
        )
        subscribed = await client.post(
            f"/v1/incidents/{paged.id}/subscribers",
            json={"user_id": str(observer_id)},
            headers=auth,
        )
        assert subscribed.status_code == 204
        await client.post(f"/v1/incidents/{paged.id}/acknowledge", headers=auth)
        await drain_jobs(raw_db, paging)
        message = json.loads(
            await raw_db.fetchval(
                "SELECT message FROM notifications WHERE user_id = $1", observer_id
            )
        )
        assert set(message["links"]) == {"view"}

        token = tokens.sign(
            tokens.Keyring.from_settings(settings),
            action_code=catalog.RESOLVE.code,
            incident_number=paged.number,
            incident_id=paged.id,
            user_id=observer_id,
            expires_at=utcnow() + timedelta(hours=1),
        )
        response = await client.post("/a/" + token)
        assert response.status_code == 403
        assert "Observers cannot act" in response.text
        assert await incident_status(raw_db, paged.id) == "acknowledged"
