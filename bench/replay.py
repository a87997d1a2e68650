"""Time POST /v1/rules/replay over a large store of alerts.

Creates a scratch database on the test PostgreSQL (127.0.0.1:5432, or
TOCSIN_TEST_DATABASE_URL, or the embedded server). Fills it with --alerts alerts in
incidents of --per-incident, each with a stored decision and one page per incident. Then
replays them against a draft rule set of 16 rules (regexes, a time condition and one CEL
expression) through the app in this process (ASGI, no network). Prints one JSON line per
run. The database is dropped at the end unless --keep is given.

    .venv/bin/python -m bench.replay --alerts 100000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from app.core.config import Settings
from app.core.migrate import upgrade
from app.demo import ensure_demo
from app.main import create_app
from tests.support import database

ENVIRONMENTS = ("prod", "staging", "dev")
TEAMS = ("db", "web", "payments", "search", "infra", "mobile")
SEVERITIES = ("critical", "error", "warning", "info")
ALERT_NAMES = ("DiskFull", "HighErrorRate", "InstanceDown", "HighLatency", "CertExpiry")
MAX_RUNS = 10


def uuid7_at(at: datetime, sequence: int) -> uuid.UUID:
    milliseconds = int(at.timestamp() * 1000)
    value = (milliseconds << 80) | (0x7 << 76) | (0b10 << 62) | (sequence & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def draft_rules(service_id: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "name": "drop dev",
            "conditions": {"matchers": ['env="dev"', 'severity=~"info|warning"']},
            "actions": {"drop": True},
        },
        {
            "name": "quiet staging",
            "conditions": {"matchers": ['env="staging"']},
            "actions": {"suppress": True},
            "continue": True,
        },
        {
            "name": "nights are low",
            "continue": True,
            "conditions": {
                "time": [
                    {
                        "time_zone": "Europe/Berlin",
                        "times": [{"start_time": "00:00", "end_time": "07:00"}],
                    }
                ]
            },
            "actions": {"urgency": "low"},
        },
        {
            "name": "cel certificate",
            "conditions": {
                "cel": "labels.alertname == 'CertExpiry' && labels.team in ['web', 'payments']"
            },
            "actions": {"priority": "P4"},
        },
    ]
    for team in TEAMS:
        rules.append(
            {
                "name": f"team {team}",
                "continue": True,
                "conditions": {"matchers": [f'team=~"{team}|{team}-.*"', 'instance=~".+:[0-9]+"']},
                "actions": {"tags": [team]},
            }
        )
    for index, name in enumerate(ALERT_NAMES):
        rules.append(
            {
                "name": f"{name} impact",
                "service_id": service_id,
                "continue": index % 2 == 0,
                "conditions": {"matchers": [f'alertname="{name}"', 'env!~"dev|test"']},
                "actions": {"impact": 1 + index % 3},
            }
        )
    rules.append(
        {
            "name": "title",
            "service_id": service_id,
            "actions": {"title": "{{ labels.alertname }} on {{ labels.instance }}"},
        }
    )
    return rules


async def seed(url: str, alerts: int, per_incident: int, start: datetime) -> dict[str, Any]:
    settings = Settings(env="test", database_url=url, secret_key="bench-" + "k" * 40)
    app = create_app(settings, run_worker=False, database_url=url)
    async with (
        app.router.lifespan_context(app),
        app.state.sessionmaker() as session,
        session.begin(),
    ):
        demo = await ensure_demo(session, settings)
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        service_id = uuid.UUID(demo["services"][0]["id"])
        integration_id = await connection.fetchval("SELECT id FROM integrations LIMIT 1")
        user_id = uuid.UUID(demo["users"][0]["id"])
        incidents = (alerts + per_incident - 1) // per_incident
        spacing = timedelta(seconds=1)
        incident_rows = []
        for number in range(incidents):
            at = start + spacing * number * per_incident
            incident_rows.append(
                (
                    uuid7_at(at, number),
                    service_id,
                    f"group-{number}",
                    f"Incident {number}",
                    "resolved",
                    "critical",
                    "high",
                    "P1",
                    per_incident,
                    at,
                    at,
                )
            )
        await connection.copy_records_to_table(
            "incidents",
            records=incident_rows,
            columns=[
                "id",
                "service_id",
                "grouping_key",
                "title",
                "status",
                "severity",
                "urgency",
                "priority",
                "alert_count",
                "created_at",
                "updated_at",
            ],
        )
        alert_rows = []
        decision_rows = []
        for index in range(alerts):
            incident = incident_rows[index // per_incident]
            at = start + spacing * index
            labels = {
                "alertname": ALERT_NAMES[index % len(ALERT_NAMES)],
                "env": ENVIRONMENTS[(index // per_incident) % len(ENVIRONMENTS)],
                "team": TEAMS[index % len(TEAMS)],
                "severity": SEVERITIES[index % len(SEVERITIES)],
                "instance": f"host-{index % 500}:9100",
            }
            alert_id = uuid7_at(at, index)
            alert_rows.append(
                (
                    alert_id,
                    service_id,
                    integration_id,
                    incident[0],
                    f"key-{index}",
                    "resolved",
                    f"{labels['alertname']} on {labels['instance']}",
                    labels["severity"],
                    labels["instance"],
                    json.dumps(labels),
                    json.dumps({"annotations": {"runbook": f"https://runbooks/{index % 50}"}}),
                    "[]",
                    "{}",
                    1,
                    at,
                    at,
                    at,
                    at,
                )
            )
            decision_rows.append(
                (
                    alert_id,
                    at,
                    service_id,
                    None,
                    1,
                    1,
                    "P1",
                    "[]",
                    labels["alertname"],
                    False,
                    "[]",
                    None,
                    "[]",
                )
            )
        await connection.copy_records_to_table(
            "alerts",
            records=alert_rows,
            columns=[
                "id",
                "service_id",
                "integration_id",
                "incident_id",
                "dedup_key",
                "status",
                "summary",
                "severity",
                "source",
                "labels",
                "details",
                "links",
                "payload",
                "event_count",
                "first_seen_at",
                "last_seen_at",
                "created_at",
                "updated_at",
            ],
        )
        await connection.copy_records_to_table(
            "alert_decisions",
            records=decision_rows,
            columns=[
                "alert_id",
                "decided_at",
                "service_id",
                "escalation_policy_id",
                "impact",
                "urgency",
                "priority",
                "tags",
                "title",
                "suppressed",
                "silence_ids",
                "maintenance_window_id",
                "rules",
            ],
        )
        notification_rows = [
            (
                uuid.uuid4(),
                row[0],
                user_id,
                "log",
                "incident.triggered",
                0,
                "sent",
                f"bench-{row[0]}",
                "{}",
                1,
                row[9],
                row[9],
            )
            for row in incident_rows
        ]
        await connection.copy_records_to_table(
            "notifications",
            records=notification_rows,
            columns=[
                "id",
                "incident_id",
                "user_id",
                "notifier",
                "event",
                "escalation_step",
                "status",
                "idempotency_key",
                "message",
                "attempt_count",
                "created_at",
                "updated_at",
            ],
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return {"api_key": demo["api_key"], "service_id": str(service_id), "settings": settings}


async def run(arguments: argparse.Namespace) -> None:
    server = database.server_url()
    name = database.database_name("_bench_replay")
    await database.recreate_database(server, name)
    url = database.url_for(server, name).replace("postgresql://", "postgresql+asyncpg://", 1)
    await asyncio.to_thread(upgrade, url)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    try:
        seeded_at = time.perf_counter()
        seeded = await seed(url, arguments.alerts, arguments.per_incident, start)
        seed_seconds = time.perf_counter() - seeded_at
        app = create_app(seeded["settings"], run_worker=False, database_url=url)
        body = {
            "since": start.isoformat(),
            "until": (start + timedelta(seconds=arguments.alerts + 1)).isoformat(),
            "rules": draft_rules(seeded["service_id"]),
            "limit": 100,
        }
        headers = {"Authorization": f"Bearer {seeded['api_key']}"}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for run_number in range(1, min(arguments.runs, MAX_RUNS) + 1):
                    began = time.perf_counter()
                    response = await client.post(
                        "/v1/rules/replay", json=body, headers=headers, timeout=300
                    )
                    seconds = time.perf_counter() - began
                    response.raise_for_status()
                    report = response.json()
                    print(
                        json.dumps(
                            {
                                "run": run_number,
                                "alerts": report["alerts_evaluated"],
                                "incidents": report["incidents_evaluated"],
                                "incidents_changed": report["incidents_changed"],
                                "changes": report["changes"],
                                "seconds": round(seconds, 2),
                                "alerts_per_second": round(report["alerts_evaluated"] / seconds),
                                "seed_seconds": round(seed_seconds, 1),
                                "cpus": os.cpu_count(),
                                "python": platform.python_version(),
                            }
                        ),
                        flush=True,
                    )
    finally:
        if not arguments.keep:
            await database.drop_database(server, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000, help="stored alerts to replay")
    parser.add_argument(
        "--per-incident", type=int, default=10, help="alerts grouped in each incident"
    )
    parser.add_argument("--runs", type=int, default=3, help=f"replays to time, at most {MAX_RUNS}")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
