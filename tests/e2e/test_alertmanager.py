"""Debian's real Alertmanager delivers to a real Tocsin, which pages a real HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.notify.adapters.webhook import sign
from tests.conftest import TEST_SECRET_KEY
from tests.support.processes import VENV_BIN, Process, start_tocsin, tocsin_env, wait_until_ready
from tests.support.receiver import Receiver, free_port

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]

ALERTMANAGER = shutil.which("prometheus-alertmanager")

ALERTMANAGER_CONFIG = """
route:
  receiver: tocsin
  group_by: [alertname, service]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: tocsin
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


async def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def verify_signature(secret: str, headers: dict[str, str], body: bytes) -> None:
    parts = dict(item.split("=", 1) for item in headers["x-tocsin-signature"].split(","))
    assert sign(secret, int(parts["t"]), body) == headers["x-tocsin-signature"]


def demo_data(database_url: str, data_dir: Path, port: int) -> dict[str, Any]:
    """Run `tocsin demo --json` as a user would and return what it prints."""
    env = tocsin_env(database_url, data_dir, port, TEST_SECRET_KEY)
    output = subprocess.run(
        [str(VENV_BIN / "tocsin"), "demo", "--json"],
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(output.stdout)
    return result


@pytest.mark.skipif(
    ALERTMANAGER is None,
    reason="needs Debian's prometheus-alertmanager package (`make test` installs it as root)",
)
async def test_alertmanager_pages_and_resolves(
    database_url: str, clean_database: None, receiver: Receiver, tmp_path: Path
) -> None:
    assert ALERTMANAGER is not None
    data_dir = tmp_path / "tocsin"
    tocsin, base_url = await start_tocsin(database_url, data_dir, TEST_SECRET_KEY)
    alertmanager: Process | None = None
    try:
        port = int(base_url.rsplit(":", 1)[1])
        demo = await asyncio.to_thread(demo_data, database_url, data_dir, port)
        auth = {"Authorization": f"Bearer {demo['api_key']}"}
        user_id = demo["users"][0]["id"]
        ingest_path = demo["services"][0]["integrations"]["alertmanager"]["url"].split(
            "/ingest/", 1
        )[1]

        async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=10) as api:
            created = await api.post(
                f"/v1/users/{user_id}/contact-methods",
                json={"kind": "webhook", "name": "Receiver", "address": receiver.url},
            )
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]

            am_port = free_port()
            config = tmp_path / "alertmanager.yml"
            config.write_text(ALERTMANAGER_CONFIG.format(url=f"{base_url}/ingest/{ingest_path}"))
            alertmanager = Process(
                [
                    ALERTMANAGER,
                    f"--config.file={config}",
                    f"--storage.path={tmp_path / 'alertmanager-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                env={"PATH": "/usr/bin:/bin"},
                log_path=tmp_path / "alertmanager.log",
            )
            alertmanager.start()
            am_url = f"http://127.0.0.1:{am_port}"
            await wait_until_ready(alertmanager, f"{am_url}/-/ready")

            starts_at = datetime.now(UTC) - timedelta(seconds=5)
            alert = {
                "labels": {"alertname": "DiskFull", "service": "storage", "severity": "critical"},
                "annotations": {"summary": "Disk /var is 97% full on storage-01"},
                "startsAt": starts_at.isoformat(),
                "endsAt": (starts_at + timedelta(hours=1)).isoformat(),
            }
            posted = await api.post(f"{am_url}/api/v2/alerts", json=[alert])
            assert posted.status_code == 200, posted.text

            page = (await receiver.wait_for(1, timeout=30))[0]
            verify_signature(secret, page.headers, page.body)
            body = json.loads(page.body)
            assert body["event"] == "incident.triggered"
            assert body["incident"]["title"] == "Disk /var is 97% full on storage-01"
            assert page.headers["idempotency-key"] == body["idempotency_key"]

            incidents = (await api.get("/v1/incidents")).json()["items"]
            assert [(i["status"], i["alert_count"]) for i in incidents] == [("triggered", 1)]
            incident_id = incidents[0]["id"]

            # Ending the alert in Alertmanager makes it send the resolved notification.
            alert["endsAt"] = datetime.now(UTC).isoformat()
            posted = await api.post(f"{am_url}/api/v2/alerts", json=[alert])
            assert posted.status_code == 200, posted.text

            async def resolved() -> bool:
                incident = (await api.get(f"/v1/incidents/{incident_id}")).json()
                return bool(incident["status"] == "resolved")

            await wait_for(resolved)
            notice = (await receiver.wait_for(2, timeout=30))[1]
            verify_signature(secret, notice.headers, notice.body)
            assert json.loads(notice.body)["event"] == "incident.resolved"
            assert len((await api.get("/v1/incidents")).json()["items"]) == 1
    except AssertionError:
        print("--- tocsin log ---\n" + tocsin.log())
        if alertmanager is not None:
            print("--- alertmanager log ---\n" + alertmanager.log())
        raise
    finally:
        if alertmanager is not None:
            alertmanager.stop()
        tocsin.stop()
