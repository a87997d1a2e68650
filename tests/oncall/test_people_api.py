"""Teams, notification rules and contact-method verification through the API."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from app.core.security import SecretBox
from app.incidents.paging import PagingContext
from app.notify.base import NotifierContext
from app.notify.registry import load_notifiers
from tests.support.jobs import drain_jobs
from tests.support.oncall import OnCallApi, paged_users, user_target
from tests.support.receiver import Receiver
from tests.support.verifying_notifier import KIND, install_entry_point

pytestmark = pytest.mark.asyncio

PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def api(client: httpx.AsyncClient, auth: dict[str, str]) -> OnCallApi:
    return OnCallApi(client, auth)


@pytest_asyncio.fixture
async def verifying_paging(
    app: FastAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PagingContext]:
    """Job context whose notifiers include one that sends verification codes."""
    monkeypatch.syspath_prepend(str(install_entry_point(tmp_path / "plugins")))
    settings = app.state.settings
    async with httpx.AsyncClient(timeout=5) as http:
        notifiers = load_notifiers(NotifierContext(http=http, user_agent="Tocsin/test"))
        assert KIND in notifiers
        yield PagingContext(
            sessionmaker=app.state.sessionmaker,
            settings=settings,
            notifiers=notifiers,
            box=SecretBox(settings.signing_key()),
        )


async def test_team_crud_and_warnings(api: OnCallApi) -> None:
    ada = await api.user("Ada")
    silent = await api.user("Silent", contact=None)
    schedule = await api.rotation_schedule("Team rotation", [ada])

    team = await api.post(
        "/v1/teams",
        {
            "name": "Payments",
            "schedule_id": schedule,
            "members": [{"user_id": ada, "role": "manager"}, {"user_id": silent}],
        },
    )
    duplicate = await api.client.post("/v1/teams", json={"name": "payments"}, headers=api.auth)
    bad_schedule = await api.client.post(
        "/v1/teams", json={"name": "Other", "schedule_id": str(uuid.uuid4())}, headers=api.auth
    )
    updated = await api.patch(f"/v1/teams/{team['id']}", {"members": [{"user_id": ada}]})

    assert team["members"] == [
        {"user_id": ada, "role": "manager"},
        {"user_id": silent, "role": "member"},
    ]
    assert len(team["warnings"]) == 1
    assert silent in team["warnings"][0]
    assert duplicate.status_code == 409
    assert bad_schedule.status_code == 422
    assert bad_schedule.json()["field"] == "schedule_id"
    assert updated["members"] == [{"user_id": ada, "role": "member"}]
    assert updated["warnings"] == []
    assert updated["schedule_id"] == schedule


async def test_notification_rule_validation(api: OnCallApi) -> None:
    ada = await api.user("Ada", contact=None)
    bob = await api.user("Bob", contact=None)
    method = await api.contact_method(ada, "log")
    bobs_method = await api.contact_method(bob, "log")

    rule = await api.post(
        f"/v1/users/{ada}/notification-rules",
        {"contact_method_id": method, "delay_minutes": 5, "urgency": "low"},
    )
    again = await api.client.post(
        f"/v1/users/{ada}/notification-rules",
        json={"contact_method_id": method, "delay_minutes": 5, "urgency": "low"},
        headers=api.auth,
    )
    foreign = await api.client.post(
        f"/v1/users/{ada}/notification-rules",
        json={"contact_method_id": bobs_method},
        headers=api.auth,
    )
    too_late = await api.client.post(
        f"/v1/users/{ada}/notification-rules",
        json={"contact_method_id": method, "delay_minutes": 5000},
        headers=api.auth,
    )
    listed = await api.get(f"/v1/users/{ada}/notification-rules")

    assert rule["urgency"] == "low"
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM_JSON
    assert foreign.status_code == 422
    assert foreign.json()["field"] == "contact_method_id"
    assert too_late.status_code == 422
    assert [item["id"] for item in listed["items"]] == [rule["id"]]
    assert listed["default_applies"] == {"high": True, "low": False}
    assert listed["warnings"] == []


async def test_verification_gates_pages(
    api: OnCallApi,
    demo: dict[str, Any],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    receiver: Receiver,
    verifying_paging: PagingContext,
) -> None:
    ada = await api.user("Ada", contact=None)
    method = await api.contact_method(ada, KIND, receiver.url)
    schedule = await api.rotation_schedule("Verified rotation", [ada])
    policy = await api.policy("Verified", [([user_target(ada)], 5)])
    await api.use_policy(demo["services"][0]["id"], policy)

    warnings = (await api.get(f"/v1/schedules/{schedule}"))["warnings"]
    assert len(warnings) == 1
    assert "not verified" in warnings[0]["message"]
    unverified = await api.fire_alert(alertmanager_path, "Unverified")
    await drain_jobs(raw_db, verifying_paging)
    assert await paged_users(raw_db, unverified) == []
    await api.post(f"/v1/incidents/{unverified}/resolve", {}, expected=200)

    started = await api.post(f"/v1/contact-methods/{method}/verification", {}, expected=202)
    await drain_jobs(raw_db, verifying_paging)
    [request] = await receiver.wait_for(1)
    code = json.loads(request.body)["verification_code"]
    wrong = await api.client.post(
        f"/v1/contact-methods/{method}/verification/confirm",
        json={"code": "000000" if code != "000000" else "111111"},
        headers=api.auth,
    )
    confirmed = await api.post(
        f"/v1/contact-methods/{method}/verification/confirm", {"code": code}, expected=200
    )
    replay = await api.client.post(
        f"/v1/contact-methods/{method}/verification/confirm",
        json={"code": code},
        headers=api.auth,
    )

    assert started["expires_at"]
    assert len(code) == 6
    assert wrong.status_code == 422
    assert wrong.json()["field"] == "code"
    assert "4 attempts left" in wrong.json()["detail"]
    assert confirmed["verified_at"] is not None
    assert replay.status_code == 409
    assert "already verified" in replay.json()["detail"]
    assert (await api.get(f"/v1/schedules/{schedule}"))["warnings"] == []

    verified = await api.fire_alert(alertmanager_path, "Verified")
    await drain_jobs(raw_db, verifying_paging)
    assert await paged_users(raw_db, verified) == [(0, ada)]
    pages = await receiver.wait_for(2)
    assert "page" in json.loads(pages[1].body)


async def test_verification_rejected_for_kinds_that_cannot_verify(api: OnCallApi) -> None:
    ada = await api.user("Ada", contact=None)
    method = await api.contact_method(ada, "log")

    response = await api.client.post(f"/v1/contact-methods/{method}/verification", headers=api.auth)

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_JSON
