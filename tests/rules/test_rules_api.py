"""The /v1/rules API: CRUD, ordering, validation, audit log, matrix, and rules at ingest."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from app.rules import classify
from tests.conftest import payload_json
from tests.rules.conftest import am_alert, post_alerts, timeline

pytestmark = pytest.mark.asyncio


async def create_rule(
    client: httpx.AsyncClient, auth: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await client.post("/v1/rules", headers=auth, json={"name": "rule", **body})
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/rules/{response.json()['id']}"
    created: dict[str, Any] = response.json()
    return created


async def names_in_order(
    client: httpx.AsyncClient, auth: dict[str, str], **params: Any
) -> list[str]:
    response = await client.get("/v1/rules", headers=auth, params=params)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


class TestCrud:
    async def test_create_list_in_evaluation_order(
        self, client: httpx.AsyncClient, auth: dict[str, str], service_id: str
    ) -> None:
        await create_rule(client, auth, name="svc-a", service_id=service_id)
        await create_rule(client, auth, name="global-b")
        await create_rule(client, auth, name="global-a", position=0)
        await create_rule(client, auth, name="svc-b", service_id=service_id, position=99)

        assert await names_in_order(client, auth) == ["global-a", "global-b", "svc-a", "svc-b"]
        assert await names_in_order(client, auth, scope="global") == ["global-a", "global-b"]
        assert await names_in_order(client, auth, service_id=service_id) == ["svc-a", "svc-b"]

    async def test_list_pages_with_cursor(
        self, client: httpx.AsyncClient, auth: dict[str, str], service_id: str
    ) -> None:
        for index in range(3):
            await create_rule(client, auth, name=f"g{index}")
        await create_rule(client, auth, name="s0", service_id=service_id)
        first = (await client.get("/v1/rules", headers=auth, params={"limit": 3})).json()
        assert [item["name"] for item in first["items"]] == ["g0", "g1", "g2"]
        second = (
            await client.get(
                "/v1/rules", headers=auth, params={"limit": 3, "cursor": first["next_cursor"]}
            )
        ).json()
        assert [item["name"] for item in second["items"]] == ["s0"]
        assert second["next_cursor"] is None

    async def test_get_update_bumps_version(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        rule = await create_rule(
            client,
            auth,
            conditions={"matchers": ['env="prod"']},
            actions={"impact": 1, "urgency": "low"},
            **{"continue": True},
        )
        assert rule["version"] == 1
        assert rule["continue"] is True
        assert rule["actions"] == {"impact": "high", "urgency": "low"}

        response = await client.patch(
            f"/v1/rules/{rule['id']}", headers=auth, json={"actions": {"priority": "P2"}}
        )
        assert response.status_code == 200, response.text
        updated = response.json()
        assert updated["version"] == 2
        assert updated["actions"] == {"priority": "P2"}
        assert updated["conditions"] == {"matchers": ['env="prod"']}
        assert updated["continue"] is True

        fetched = await client.get(f"/v1/rules/{rule['id']}", headers=auth)
        assert fetched.json()["version"] == 2

    async def test_move_by_position_and_delete_close_gaps(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        rules = [await create_rule(client, auth, name=name) for name in ("a", "b", "c", "d")]
        moved = await client.patch(
            f"/v1/rules/{rules[3]['id']}", headers=auth, json={"position": 1}
        )
        assert moved.status_code == 200, moved.text
        assert await names_in_order(client, auth) == ["a", "d", "b", "c"]

        deleted = await client.delete(f"/v1/rules/{rules[1]['id']}", headers=auth)
        assert deleted.status_code == 204
        listed = (await client.get("/v1/rules", headers=auth)).json()["items"]
        assert [(item["name"], item["position"]) for item in listed] == [
            ("a", 0),
            ("d", 1),
            ("c", 2),
        ]

    async def test_move_to_another_scope(
        self, client: httpx.AsyncClient, auth: dict[str, str], service_id: str
    ) -> None:
        first = await create_rule(client, auth, name="g0")
        await create_rule(client, auth, name="g1")
        await create_rule(client, auth, name="s0", service_id=service_id)
        response = await client.patch(
            f"/v1/rules/{first['id']}", headers=auth, json={"service_id": service_id}
        )
        assert response.status_code == 200, response.text
        assert response.json()["position"] == 1
        listed = (await client.get("/v1/rules", headers=auth)).json()["items"]
        assert [(item["name"], item["position"]) for item in listed] == [
            ("g1", 0),
            ("s0", 0),
            ("g0", 1),
        ]

    async def test_reorder(self, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
        rules = [await create_rule(client, auth, name=name) for name in ("a", "b", "c")]
        ids = [rule["id"] for rule in rules]
        response = await client.post(
            "/v1/rules/reorder", headers=auth, json={"rule_ids": [ids[2], ids[0], ids[1]]}
        )
        assert response.status_code == 200, response.text
        assert [item["name"] for item in response.json()] == ["c", "a", "b"]
        assert await names_in_order(client, auth) == ["c", "a", "b"]
        # Every rule moved, so each has a new version, cited in the audit log.
        assert [item["version"] for item in response.json()] == [2, 2, 2]
        stored = (await client.get(f"/v1/rules/{ids[0]}", headers=auth)).json()
        assert stored["version"] == 2
        log = (await client.get("/v1/rules/audit-log", headers=auth)).json()["items"]
        assert log[0]["action"] == "reordered"
        assert log[0]["after"]["versions"] == {rule_id: 2 for rule_id in ids}

        unchanged = await client.post(
            "/v1/rules/reorder", headers=auth, json={"rule_ids": [ids[2], ids[0], ids[1]]}
        )
        assert [item["version"] for item in unchanged.json()] == [2, 2, 2]

    async def test_reorder_needs_every_rule_once(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        rules = [await create_rule(client, auth, name=name) for name in ("a", "b")]
        missing = await client.post(
            "/v1/rules/reorder", headers=auth, json={"rule_ids": [rules[0]["id"]]}
        )
        assert missing.status_code == 422
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["field"] == "rule_ids"
        assert rules[1]["id"] in missing.json()["detail"]
        twice = await client.post(
            "/v1/rules/reorder",
            headers=auth,
            json={"rule_ids": [rules[0]["id"], rules[0]["id"]]},
        )
        assert twice.status_code == 422

    async def test_unknown_rule_is_404(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        response = await client.get(f"/v1/rules/{uuid.uuid4()}", headers=auth)
        assert response.status_code == 404
        assert response.json()["field"] == "rule_id"


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "field", "detail"),
        [
            (
                {"conditions": {"matchers": ['env="prod"', 'team=~"db|(web"']}},
                "conditions.matchers.1",
                "missing ): db|(web at character 11",
            ),
            (
                {"conditions": {"matchers": ['env=~"a(?!b)"']}},
                "conditions.matchers.0",
                "invalid perl operator: (?! at character 8",
            ),
            (
                {"conditions": {"cel": "labels.env == 'prod' && severity = 'x'"}},
                "conditions.cel",
                "line 1 column 34",
            ),
            (
                {"conditions": {"cel": "labels.env == 'prod' || sevrity == 'x'"}},
                "conditions.cel",
                "unknown variable 'sevrity'",
            ),
            (
                {"conditions": {"cel": "(" * 150 + "true" + ")" * 150}},
                "conditions.cel",
                "nested too deeply",
            ),
            (
                {"conditions": {"cel": " + ".join(["1"] * 400) + " > 0"}},
                "conditions.cel",
                "nested too deeply",
            ),
            (
                {"conditions": {"time": [{"time_zone": "Europe/Berln"}]}},
                "conditions.time.0.time_zone",
                "unknown time zone",
            ),
            (
                {"actions": {"title": "{% if %}"}},
                "actions.title",
                "template syntax error",
            ),
            (
                {"actions": {"title": "{% for i in range(9) %}{{ i }}{% endfor %}"}},
                "actions.title",
                "loops ({% for %}) are not allowed in titles",
            ),
            (
                {"actions": {"drop": True, "priority": "P1"}},
                "actions.drop",
                "cannot be combined",
            ),
        ],
    )
    async def test_invalid_rule_is_422_naming_field(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        body: dict[str, Any],
        field: str,
        detail: str,
    ) -> None:
        response = await client.post("/v1/rules", headers=auth, json={"name": "bad", **body})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["field"] == field
        assert detail in problem["detail"]
        assert (await client.get("/v1/rules", headers=auth)).json()["items"] == []

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"actions": {"priority": "P9"}}, "body.actions.priority"),
            ({"actions": {"impact": 7}}, "body.actions.impact"),
            ({"conditions": {"matchers": "env=prod"}}, "body.conditions.matchers"),
            ({"position": -1}, "body.position"),
        ],
    )
    async def test_schema_errors_are_422(
        self, client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any], field: str
    ) -> None:
        response = await client.post("/v1/rules", headers=auth, json={"name": "bad", **body})
        assert response.status_code == 422
        assert response.json()["field"] == field

    async def test_unknown_references_are_422(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        missing = str(uuid.uuid4())
        scope = await client.post(
            "/v1/rules", headers=auth, json={"name": "r", "service_id": missing}
        )
        assert scope.status_code == 422
        assert scope.json()["field"] == "service_id"
        route = await client.post(
            "/v1/rules",
            headers=auth,
            json={"name": "r", "actions": {"route": {"escalation_policy_id": missing}}},
        )
        assert route.status_code == 422
        assert route.json()["field"] == "actions.route.escalation_policy_id"

    async def test_update_is_validated(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        rule = await create_rule(client, auth)
        response = await client.patch(
            f"/v1/rules/{rule['id']}",
            headers=auth,
            json={"conditions": {"matchers": ['x=~"("']}},
        )
        assert response.status_code == 422
        assert response.json()["field"] == "conditions.matchers.0"
        unchanged = (await client.get(f"/v1/rules/{rule['id']}", headers=auth)).json()
        assert unchanged["version"] == 1

    async def test_read_only_key_cannot_write(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        created = await client.post(
            "/v1/api-keys", headers=auth, json={"name": "reader", "scopes": ["config:read"]}
        )
        assert created.status_code == 201, created.text
        reader = {"Authorization": f"Bearer {created.json()['key']}"}
        assert (await client.get("/v1/rules", headers=reader)).status_code == 200
        response = await client.post("/v1/rules", headers=reader, json={"name": "x"})
        assert response.status_code == 403


class TestAuditLog:
    async def test_changes_are_logged_with_actor(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        rule = await create_rule(client, auth, name="a")
        other = await create_rule(client, auth, name="b")
        await client.patch(f"/v1/rules/{rule['id']}", headers=auth, json={"name": "a2"})
        await client.post(
            "/v1/rules/reorder", headers=auth, json={"rule_ids": [other["id"], rule["id"]]}
        )
        await client.delete(f"/v1/rules/{rule['id']}", headers=auth)

        log = (await client.get("/v1/rules/audit-log", headers=auth)).json()["items"]
        assert [entry["action"] for entry in log] == [
            "deleted",
            "reordered",
            "updated",
            "created",
            "created",
        ]
        assert {entry["actor"]["name"] for entry in log} == {"Demo admin"}
        updated = log[2]
        assert updated["before"]["name"] == "a"
        assert updated["after"]["name"] == "a2"
        assert updated["version"] == 2
        only_rule = (
            await client.get("/v1/rules/audit-log", headers=auth, params={"entity_id": rule["id"]})
        ).json()["items"]
        assert [entry["action"] for entry in only_rule] == ["deleted", "updated", "created"]


class TestPriorityMatrix:
    async def test_default_then_replaced_and_used_at_ingest(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
    ) -> None:
        current = (await client.get("/v1/priority-matrix", headers=auth)).json()
        assert current["version"] == 0
        assert current["matrix"]["high"]["high"] == "P1"
        assert current["severity_defaults"]["warning"] == {"impact": "medium", "urgency": "medium"}

        document = {key: current[key] for key in ("matrix", "severity_defaults")}
        document["matrix"]["medium"]["medium"] = "P2"
        document["severity_defaults"]["warning"] = {"impact": 2, "urgency": "medium"}
        response = await client.put("/v1/priority-matrix", headers=auth, json=document)
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 1

        body = await post_alerts(client, alertmanager_path, am_alert("w1", {"severity": "warning"}))
        priority = await raw_db.fetchval(
            "SELECT priority FROM incidents WHERE id = $1", uuid.UUID(body["incidents_opened"][0])
        )
        assert priority == "P2"
        log = (await client.get("/v1/rules/audit-log", headers=auth)).json()["items"]
        assert log[0]["entity_type"] == "priority_matrix"

    async def test_incomplete_matrix_is_422(
        self, client: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        response = await client.put(
            "/v1/priority-matrix",
            headers=auth,
            json={"matrix": {"high": {"high": "P1"}}, "severity_defaults": {}},
        )
        assert response.status_code == 422
        assert response.json()["field"].startswith("body.")


class TestRulesAtIngest:
    async def test_rule_shapes_incident_and_timeline(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
    ) -> None:
        rule = await create_rule(
            client,
            auth,
            name="checkout prod",
            conditions={"matchers": ['service="Demo service"', 'env=~"prod|production"']},
            actions={
                "impact": "low",
                "urgency": "low",
                "tags": ["checkout"],
                "title": "{{ labels.alertname }} on {{ labels.instance }}",
            },
        )
        response = await client.post(
            alertmanager_path,
            content=json.dumps(payload_json("alertmanager/firing-two-alerts.json")),
        )
        assert response.status_code == 202, response.text
        incident_id = uuid.UUID(response.json()["incidents_opened"][0])

        incident = await raw_db.fetchrow(
            "SELECT priority, urgency, title FROM incidents WHERE id = $1", incident_id
        )
        assert incident["priority"] == "P5"
        assert incident["urgency"] == "low"
        assert incident["title"] == "HighErrorRate on checkout-7d9f-abc12:8080"

        entries = await timeline(raw_db, incident_id, "rules.applied")
        assert len(entries) == 1
        assert entries[0]["actor_type"] == "rule"
        assert "'checkout prod' v1" in entries[0]["message"]
        alerts = json.loads(entries[0]["data"])["alerts"]
        assert len(alerts) == 2
        assert alerts[0]["rules"] == [
            {
                "rule_id": rule["id"],
                "version": 1,
                "name": "checkout prod",
                "actions": rule["actions"],
            }
        ]
        stored = await raw_db.fetch("SELECT priority, tags, rules FROM alert_decisions")
        assert [row["priority"] for row in stored] == ["P5", "P5"]
        assert json.loads(stored[0]["tags"]) == ["checkout"]

    async def test_no_rule_records_severity_default(
        self,
        client: httpx.AsyncClient,
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
    ) -> None:
        body = await post_alerts(client, alertmanager_path, am_alert("a1", {"severity": "warning"}))
        entries = await timeline(raw_db, body["incidents_opened"][0], "rules.applied")
        assert "Priority P3" in entries[0]["message"]
        assert "no rule matched" in entries[0]["message"]

    async def test_rule_change_applies_to_next_request(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
    ) -> None:
        first = await post_alerts(client, alertmanager_path, am_alert("c1"))
        rule = await create_rule(client, auth, actions={"priority": "P4"})
        second = await post_alerts(client, alertmanager_path, am_alert("c2"))
        await client.patch(f"/v1/rules/{rule['id']}", headers=auth, json={"enabled": False})
        third = await post_alerts(client, alertmanager_path, am_alert("c3"))
        priorities = [
            await raw_db.fetchval(
                "SELECT priority FROM incidents WHERE id = $1",
                uuid.UUID(body["incidents_opened"][0]),
            )
            for body in (first, second, third)
        ]
        assert priorities == ["P1", "P4", "P1"]

    async def test_drop_keeps_event_log_only(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
    ) -> None:
        await create_rule(
            client, auth, conditions={"matchers": ['env="test"']}, actions={"drop": True}
        )
        body = await post_alerts(
            client,
            alertmanager_path,
            am_alert("d1", {"env": "test"}),
            am_alert("d2", {"env": "prod"}),
        )
        assert body["alerts_created"] == 1
        assert body["events_ignored"] == 1
        events = await raw_db.fetch("SELECT dedup_key, outcome FROM events ORDER BY dedup_key")
        assert [(row["dedup_key"], row["outcome"]) for row in events] == [
            ("d1", "ignored.dropped_by_rule"),
            ("d2", "alert.created"),
        ]
        assert await raw_db.fetchval("SELECT count(*) FROM alerts WHERE dedup_key = 'd1'") == 0

    async def test_route_to_other_service_and_policy(
        self,
        client: httpx.AsyncClient,
        auth: dict[str, str],
        alertmanager_path: str,
        raw_db: asyncpg.Connection,
        demo: dict[str, Any],
    ) -> None:
        other = await client.post("/v1/services", headers=auth, json={"name": "Payments"})
        assert other.status_code == 201, other.text
        other_id = other.json()["id"]
        policy_id = demo["escalation_policies"][0]["id"]
        await create_rule(
            client,
            auth,
            conditions={"matchers": ['team="payments"']},
            actions={"route": {"service_id": other_id, "escalation_policy_id": policy_id}},
        )
        body = await post_alerts(
            client,
            alertmanager_path,
            am_alert("r1", {"team": "payments"}),
            am_alert("r2", {"team": "web"}),
        )
        rows = await raw_db.fetch(
            """
            SELECT a.dedup_key, a.service_id AS alert_service, i.service_id AS incident_service,
                   i.escalation_policy_id
            FROM alerts a JOIN incidents i ON i.id = a.incident_id ORDER BY a.dedup_key
            """
        )
        assert len(body["incidents_opened"]) == 2
        routed, kept = rows
        assert str(routed["incident_service"]) == other_id
        assert str(routed["escalation_policy_id"]) == policy_id
        assert str(routed["alert_service"]) == demo["services"][0]["id"]
        assert str(kept["incident_service"]) == demo["services"][0]["id"]

        # The resolve arrives on the original integration and still finds the routed alert.
        resolved = await post_alerts(
            client, alertmanager_path, am_alert("r1", {"team": "payments"}, status="resolved")
        )
        assert resolved["alerts_resolved"] == 1
        assert len(resolved["incidents_resolved"]) == 1


async def test_cel_rules_evaluate_off_the_event_loop(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    alertmanager_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[int] = []
    original = classify.evaluate

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(classify, "evaluate", recording)
    loop_thread = threading.get_ident()

    await post_alerts(client, alertmanager_path, am_alert("plain"))
    await create_rule(client, auth, conditions={"cel": "labels.team == 'db'"})
    await post_alerts(client, alertmanager_path, am_alert("with-cel"))

    # Matchers are cheap and stay on the loop; CEL's cost depends on the payload.
    assert len(threads) == 2
    assert threads[0] == loop_thread
    assert threads[1] != loop_thread
