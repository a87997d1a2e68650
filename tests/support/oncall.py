"""API helpers for on-call tests: users, contact methods, schedules, policies, alerts."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx


class OnCallApi:
    """Create on-call objects through the public API and fail loudly when a call fails."""

    def __init__(self, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
        self.client = client
        self.auth = auth

    async def post(self, path: str, body: dict[str, Any], expected: int = 201) -> Any:
        response = await self.client.post(path, json=body, headers=self.auth)
        assert response.status_code == expected, f"POST {path}: {response.text}"
        return response.json() if response.content else None

    async def patch(self, path: str, body: dict[str, Any], expected: int = 200) -> Any:
        response = await self.client.patch(path, json=body, headers=self.auth)
        assert response.status_code == expected, f"PATCH {path}: {response.text}"
        return response.json()

    async def get(self, path: str, expected: int = 200, **params: Any) -> Any:
        response = await self.client.get(path, params=params, headers=self.auth)
        assert response.status_code == expected, f"GET {path}: {response.text}"
        return response.json()

    async def user(self, name: str, *, contact: str | None = "log", address: str = "") -> str:
        email = f"{name.lower().replace(' ', '.')}@example.com"
        user = await self.post("/v1/users", {"name": name, "email": email})
        if contact is not None:
            await self.contact_method(user["id"], contact, address)
        return str(user["id"])

    async def contact_method(self, user_id: str, kind: str, address: str = "") -> str:
        method = await self.post(
            f"/v1/users/{user_id}/contact-methods", {"kind": kind, "address": address}
        )
        return str(method["id"])

    async def rotation_schedule(
        self,
        name: str,
        members: list[str],
        *,
        time_zone: str = "UTC",
        start: date | None = None,
        unit: str = "days",
        length: int = 1,
    ) -> str:
        start = start or date.today() - timedelta(days=30)
        schedule = await self.post(
            "/v1/schedules",
            {
                "name": name,
                "time_zone": time_zone,
                "layers": [
                    {
                        "name": "primary",
                        "members": members,
                        "rotation_unit": unit,
                        "rotation_length": length,
                        "start_date": start.isoformat(),
                        "handoff_time": "09:00",
                    }
                ],
            },
        )
        return str(schedule["id"])

    async def policy(
        self, name: str, levels: list[tuple[list[dict[str, str]], int]], repeat_count: int = 0
    ) -> str:
        policy = await self.post(
            "/v1/escalation-policies",
            {
                "name": name,
                "repeat_count": repeat_count,
                "levels": [
                    {"targets": targets, "delay_minutes": delay} for targets, delay in levels
                ],
            },
        )
        return str(policy["id"])

    async def use_policy(self, service_id: str, policy_id: str) -> None:
        await self.patch(f"/v1/services/{service_id}", {"escalation_policy_id": policy_id})

    async def fire_alert(self, path: str, name: str) -> str:
        """Post one firing Alertmanager alert and return the incident it opened."""
        payload = {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{name}"}}',
            "status": "firing",
            "receiver": "tocsin",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": name, "severity": "critical"},
                    "annotations": {"summary": f"{name} is failing"},
                    "startsAt": "2026-01-01T00:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": uuid.uuid4().hex[:16],
                }
            ],
        }
        response = await self.client.post(path, content=json.dumps(payload))
        assert response.status_code == 202, response.text
        opened = response.json()["incidents_opened"]
        assert len(opened) == 1, response.text
        return str(opened[0])


def user_target(user_id: str) -> dict[str, str]:
    return {"type": "user", "id": user_id}


def schedule_target(schedule_id: str) -> dict[str, str]:
    return {"type": "schedule", "id": schedule_id}


def team_target(team_id: str) -> dict[str, str]:
    return {"type": "team", "id": team_id}


async def paged_users(raw_db: asyncpg.Connection, incident_id: str) -> list[tuple[int, str]]:
    """Return (escalation step, user id) of every page notification, in creation order."""
    rows = await raw_db.fetch(
        """
        SELECT escalation_step, user_id FROM notifications
        WHERE incident_id = $1 AND event = 'incident.triggered'
        ORDER BY created_at, id
        """,
        uuid.UUID(incident_id),
    )
    return [(row["escalation_step"], str(row["user_id"])) for row in rows]


async def timeline_kinds(raw_db: asyncpg.Connection, incident_id: str) -> list[str]:
    rows = await raw_db.fetch(
        "SELECT kind FROM timeline_entries WHERE incident_id = $1 ORDER BY at, id",
        uuid.UUID(incident_id),
    )
    return [row["kind"] for row in rows]


async def escalation_due_in(raw_db: asyncpg.Connection) -> list[timedelta]:
    rows = await raw_db.fetch(
        "SELECT execute_after - now() AS due_in FROM pgqueuer "
        "WHERE status = 'queued' AND entrypoint = 'escalation.step' ORDER BY execute_after"
    )
    return [row["due_in"] for row in rows]
