"""DELETE of users, teams, schedules, policies and services that something still uses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app.core.errors import PROBLEM_JSON
from app.incidents.paging import PagingContext
from tests.support.jobs import drain_jobs
from tests.support.oncall import OnCallApi, schedule_target, team_target, user_target

pytestmark = pytest.mark.asyncio


@pytest.fixture
def api(client: httpx.AsyncClient, auth: dict[str, str]) -> OnCallApi:
    return OnCallApi(client, auth)


async def delete(api: OnCallApi, path: str, **params: Any) -> httpx.Response:
    return await api.client.delete(path, headers=api.auth, params=params)


def assert_in_use(response: httpx.Response, field: str) -> list[dict[str, str]]:
    """Check a 409 in_use problem and return its references."""
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["code"] == "in_use"
    assert problem["field"] == field
    references: list[dict[str, str]] = problem.get("references", [])
    for reference in references:
        assert reference["name"] in problem["detail"]
    return references


class TestUser:
    async def test_level_target_is_409(self, api: OnCallApi, demo: dict[str, Any]) -> None:
        ada = await api.user("Ada")
        policy = await api.policy("Ada first", [([user_target(ada)], 5)])

        refused = await delete(api, f"/v1/users/{ada}")

        references = assert_in_use(refused, "user_id")
        assert references == [
            {
                "type": "escalation_policy",
                "id": policy,
                "name": "Ada first",
                "usage": "target of level 1",
            }
        ]
        await api.get(f"/v1/users/{ada}")

        await api.patch(
            f"/v1/escalation-policies/{policy}",
            {"levels": [{"targets": [user_target(demo["users"][0]["id"])]}]},
        )
        deleted = await delete(api, f"/v1/users/{ada}")
        assert deleted.status_code == 204, deleted.text
        await api.get(f"/v1/users/{ada}", expected=404)

    async def test_rotation_member_is_409(self, api: OnCallApi) -> None:
        ada = await api.user("Ada")
        bob = await api.user("Bob")
        schedule = await api.rotation_schedule("Weekdays", [ada, bob])

        refused = await delete(api, f"/v1/users/{ada}")

        references = assert_in_use(refused, "user_id")
        assert references == [
            {
                "type": "schedule",
                "id": schedule,
                "name": "Weekdays",
                "usage": 'member of rotation layer "primary"',
            }
        ]
        layers = (await api.get(f"/v1/schedules/{schedule}"))["layers"]
        assert layers[0]["members"] == [ada, bob]

    async def test_team_member_is_409(self, api: OnCallApi) -> None:
        ada = await api.user("Ada")
        team = await api.post(
            "/v1/teams", {"name": "Databases", "members": [{"user_id": ada, "role": "manager"}]}
        )

        refused = await delete(api, f"/v1/users/{ada}")

        references = assert_in_use(refused, "user_id")
        assert references == [
            {"type": "team", "id": team["id"], "name": "Databases", "usage": "manager"}
        ]

    async def test_calendar_shifts_to_come_are_409(self, api: OnCallApi) -> None:
        ada = await api.user("Ada")
        schedule = await api.post("/v1/schedules", {"name": "Imported", "time_zone": "UTC"})
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        calendar = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//EN\r\n"
            "BEGIN:VEVENT\r\nUID:ada-tomorrow\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART:{tomorrow:%Y%m%d}T090000Z\r\nDTEND:{tomorrow:%Y%m%d}T170000Z\r\n"
            "SUMMARY:On call\r\nATTENDEE:mailto:ada@example.com\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        imported = await api.client.post(
            f"/v1/schedules/{schedule['id']}/calendar-import",
            content=calendar.encode(),
            headers={**api.auth, "content-type": "text/calendar"},
            params={"layer_name": "Rota"},
        )
        assert imported.status_code == 201, imported.text

        refused = await delete(api, f"/v1/users/{ada}")

        references = assert_in_use(refused, "user_id")
        assert references == [
            {
                "type": "schedule",
                "id": schedule["id"],
                "name": "Imported",
                "usage": 'has shifts to come in calendar layer "Rota"',
            }
        ]

    async def test_override_to_come_is_409(self, api: OnCallApi) -> None:
        ada = await api.user("Ada")
        schedule = await api.post("/v1/schedules", {"name": "Primary", "time_zone": "UTC"})
        now = datetime.now(UTC)
        await api.post(
            f"/v1/schedules/{schedule['id']}/overrides",
            {
                "user_id": ada,
                "start": (now - timedelta(days=2)).isoformat(),
                "end": (now - timedelta(days=1)).isoformat(),
            },
        )
        current = await api.post(
            f"/v1/schedules/{schedule['id']}/overrides",
            {
                "user_id": ada,
                "start": (now - timedelta(hours=1)).isoformat(),
                "end": (now + timedelta(hours=4)).isoformat(),
            },
        )

        refused = await delete(api, f"/v1/users/{ada}")

        references = assert_in_use(refused, "user_id")
        assert references == [
            {
                "type": "schedule",
                "id": schedule["id"],
                "name": "Primary",
                "usage": "has an override of theirs that has not ended",
            }
        ]
        removed = await api.client.delete(
            f"/v1/schedules/{schedule['id']}/overrides/{current['id']}", headers=api.auth
        )
        assert removed.status_code == 204, removed.text
        deleted = await delete(api, f"/v1/users/{ada}")
        # The override that has ended is no reason to keep the user.
        assert deleted.status_code == 204, deleted.text

    async def test_past_calendar_shifts_do_not_block(
        self, api: OnCallApi, raw_db: asyncpg.Connection
    ) -> None:
        ada = await api.user("Ada")
        schedule = await api.post("/v1/schedules", {"name": "Old rota", "time_zone": "UTC"})
        yesterday = datetime.now(UTC) - timedelta(days=1)
        await raw_db.execute(
            """
            INSERT INTO schedule_layers (id, schedule_id, position, name, kind, fixed_shifts)
            VALUES ($1, $2, 0, 'Past', 'calendar', $3::jsonb)
            """,
            uuid.uuid4(),
            uuid.UUID(schedule["id"]),
            f'[{{"user_id": "{ada}", "start": "{(yesterday - timedelta(hours=8)).isoformat()}",'
            f' "end": "{yesterday.isoformat()}", "uid": "past"}}]',
        )

        deleted = await delete(api, f"/v1/users/{ada}")

        assert deleted.status_code == 204, deleted.text

    async def test_every_use_is_listed(self, api: OnCallApi) -> None:
        ada = await api.user("Ada")
        await api.policy("Ada twice", [([user_target(ada)], 5), ([user_target(ada)], 5)])
        await api.rotation_schedule("Nights", [ada])
        await api.post("/v1/teams", {"name": "Web", "members": [{"user_id": ada}]})

        refused = await delete(api, f"/v1/users/{ada}")

        references = assert_in_use(refused, "user_id")
        assert [(item["type"], item["usage"]) for item in references] == [
            ("escalation_policy", "target of level 1"),
            ("escalation_policy", "target of level 2"),
            ("schedule", 'member of rotation layer "primary"'),
            ("team", "member"),
        ]

    async def test_unused_user_is_deleted(self, api: OnCallApi) -> None:
        ada = await api.user("Ada")
        deleted = await delete(api, f"/v1/users/{ada}")
        assert deleted.status_code == 204, deleted.text
        await api.get(f"/v1/users/{ada}", expected=404)
        missing = await delete(api, f"/v1/users/{ada}")
        assert missing.status_code == 404


class TestTeam:
    async def test_level_target_is_409(self, api: OnCallApi) -> None:
        team = await api.post("/v1/teams", {"name": "Databases"})
        policy = await api.policy("Team first", [([team_target(team["id"])], 5)])

        refused = await delete(api, f"/v1/teams/{team['id']}")

        references = assert_in_use(refused, "team_id")
        assert [(item["type"], item["id"]) for item in references] == [
            ("escalation_policy", policy)
        ]

        await api.client.delete(f"/v1/escalation-policies/{policy}", headers=api.auth)
        deleted = await delete(api, f"/v1/teams/{team['id']}")
        assert deleted.status_code == 204, deleted.text


class TestSchedule:
    async def test_level_target_and_team_are_409(self, api: OnCallApi) -> None:
        ada = await api.user("Ada")
        schedule = await api.rotation_schedule("Primary", [ada])
        policy = await api.policy("Via schedule", [([schedule_target(schedule)], 5)])
        team = await api.post("/v1/teams", {"name": "Web", "schedule_id": schedule})

        refused = await delete(api, f"/v1/schedules/{schedule}")

        references = assert_in_use(refused, "schedule_id")
        assert references == [
            {
                "type": "escalation_policy",
                "id": policy,
                "name": "Via schedule",
                "usage": "target of level 1",
            },
            {"type": "team", "id": team["id"], "name": "Web", "usage": "the team's schedule"},
        ]

    async def test_unused_schedule_is_deleted(self, api: OnCallApi) -> None:
        ada = await api.user("Ada")
        schedule = await api.rotation_schedule("Spare", [ada])
        deleted = await delete(api, f"/v1/schedules/{schedule}")
        assert deleted.status_code == 204, deleted.text
        await api.get(f"/v1/schedules/{schedule}", expected=404)


class TestPolicy:
    async def test_service_team_and_rule_are_409(
        self, api: OnCallApi, demo: dict[str, Any]
    ) -> None:
        demo_policy = demo["escalation_policies"][0]["id"]
        team = await api.post("/v1/teams", {"name": "Web", "escalation_policy_id": demo_policy})
        rule = await api.post(
            "/v1/rules",
            {"name": "to demo policy", "actions": {"route": {"escalation_policy_id": demo_policy}}},
        )

        refused = await delete(api, f"/v1/escalation-policies/{demo_policy}")

        references = assert_in_use(refused, "policy_id")
        assert references == [
            {
                "type": "rule",
                "id": rule["id"],
                "name": "to demo policy",
                "usage": "routes alerts to it",
            },
            {
                "type": "service",
                "id": demo["services"][0]["id"],
                "name": demo["services"][0]["name"],
                "usage": "the service's policy",
            },
            {"type": "team", "id": team["id"], "name": "Web", "usage": "the team's policy"},
        ]
        await api.get(f"/v1/escalation-policies/{demo_policy}")

    async def test_unused_policy_is_deleted(self, api: OnCallApi, demo: dict[str, Any]) -> None:
        policy = await api.policy("Spare", [([user_target(demo["users"][0]["id"])], 5)])
        deleted = await delete(api, f"/v1/escalation-policies/{policy}")
        assert deleted.status_code == 204, deleted.text
        await api.get(f"/v1/escalation-policies/{policy}", expected=404)


class TestService:
    async def test_incidents_need_force(
        self,
        api: OnCallApi,
        demo: dict[str, Any],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
    ) -> None:
        service = demo["services"][0]["id"]
        incident = await api.fire_alert(alertmanager_path, "Disk full")

        refused = await delete(api, f"/v1/services/{service}")

        assert_in_use(refused, "force")
        assert "1 incidents (1 open)" in refused.json()["detail"]
        await api.get(f"/v1/incidents/{incident}")

        forced = await delete(api, f"/v1/services/{service}", force="true")
        assert forced.status_code == 204, forced.text
        await api.get(f"/v1/services/{service}", expected=404)
        await api.get(f"/v1/incidents/{incident}", expected=404)
        assert await raw_db.fetchval("SELECT count(*) FROM incidents") == 0

    async def test_rule_route_is_409_even_with_force(self, api: OnCallApi) -> None:
        service = await api.post("/v1/services", {"name": "Payments"})
        rule = await api.post(
            "/v1/rules",
            {"name": "to payments", "actions": {"route": {"service_id": service["id"]}}},
        )

        refused = await delete(api, f"/v1/services/{service['id']}", force="true")

        references = assert_in_use(refused, "service_id")
        assert [(item["type"], item["id"]) for item in references] == [("rule", rule["id"])]

    async def test_service_without_incidents_is_deleted(self, api: OnCallApi) -> None:
        service = await api.post("/v1/services", {"name": "Payments"})
        await api.post(
            f"/v1/services/{service['id']}/integrations", {"name": "am", "kind": "alertmanager"}
        )
        deleted = await delete(api, f"/v1/services/{service['id']}")
        assert deleted.status_code == 204, deleted.text
        await api.get(f"/v1/services/{service['id']}", expected=404)


class TestOpenIncidents:
    async def test_frozen_level_targets_are_409(
        self,
        api: OnCallApi,
        demo: dict[str, Any],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        paging: PagingContext,
    ) -> None:
        service = demo["services"][0]["id"]
        first = demo["users"][0]["id"]
        ada = await api.user("Ada")
        schedule = await api.rotation_schedule("Primary", [await api.user("Bob")])
        team = await api.post("/v1/teams", {"name": "Web"})
        second_level = [user_target(ada), schedule_target(schedule), team_target(team["id"])]
        policy = await api.policy("Two levels", [([user_target(first)], 5), (second_level, 5)])
        await api.use_policy(service, policy)
        incident = await api.fire_alert(alertmanager_path, "Disk full")
        await drain_jobs(raw_db, paging)
        # The incident froze both levels. The live policy and the service let go of them.
        await api.patch(f"/v1/services/{service}", {"escalation_policy_id": None})
        await api.patch(
            f"/v1/escalation-policies/{policy}", {"levels": [{"targets": [user_target(first)]}]}
        )

        for path, field in (
            (f"/v1/users/{ada}", "user_id"),
            (f"/v1/schedules/{schedule}", "schedule_id"),
            (f"/v1/teams/{team['id']}", "team_id"),
        ):
            references = assert_in_use(await delete(api, path), field)
            assert [(item["type"], item["id"]) for item in references] == [
                ("incident", incident)
            ], path
            assert references[0]["usage"] == "open incident whose escalation pages it"

        await api.client.post(f"/v1/incidents/{incident}/resolve", headers=api.auth)
        for path in (f"/v1/teams/{team['id']}", f"/v1/schedules/{schedule}", f"/v1/users/{ada}"):
            deleted = await delete(api, path)
            assert deleted.status_code == 204, deleted.text


async def test_problem_type_is_described(client: httpx.AsyncClient) -> None:
    response = await client.get("/problems/in-use")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == 409
