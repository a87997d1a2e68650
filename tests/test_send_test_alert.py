"""`tocsin send-test-alert` against a running server, repeated and in both orders."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tests.support.server import ServedApp

pytestmark = pytest.mark.asyncio

TOCSIN = Path(sys.executable).with_name("tocsin")


class SendTestAlertCommand:
    """Runs ``tocsin send-test-alert`` as a process and keeps the hints it prints."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.data_dir = data_dir
        self.hints: list[str] = []

    async def send(self, *extra: str) -> dict[str, Any]:
        """Run the command and return the server's JSON response."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("TOCSIN_")}
        env["TOCSIN_DATA_DIR"] = str(self.data_dir)
        process = await asyncio.create_subprocess_exec(
            str(TOCSIN),
            "send-test-alert",
            "--url",
            self.url,
            *extra,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            stdout, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        status_line, body = stdout.decode().split("\n", 1)
        assert status_line == "HTTP 202"
        self.hints.append(stderr.decode().strip())
        answer: dict[str, Any] = json.loads(body)
        return answer


def command_for(demo: dict[str, Any], tmp_path: Path, served: ServedApp) -> SendTestAlertCommand:
    key = demo["services"][0]["integrations"]["alertmanager"]["key"]
    return SendTestAlertCommand(f"{served.url}/ingest/alertmanager/{key}", tmp_path / "cli")


async def test_send_resolve_send_opens_two(
    app: FastAPI, demo: dict[str, Any], tmp_path: Path
) -> None:
    async with ServedApp(app) as served:
        cli = command_for(demo, tmp_path, served)
        first = await cli.send()
        resolved = await cli.send("--resolve")
        second = await cli.send()

    assert len(first["incidents_opened"]) == 1
    assert resolved["alerts_resolved"] == 1
    assert resolved["incidents_resolved"] == first["incidents_opened"]
    assert len(second["incidents_opened"]) == 1
    assert second["incidents_opened"] != first["incidents_opened"]
    assert cli.hints == ["", "", ""]


async def test_resolve_first_then_send(app: FastAPI, demo: dict[str, Any], tmp_path: Path) -> None:
    async with ServedApp(app) as served:
        cli = command_for(demo, tmp_path, served)
        resolved = await cli.send("--resolve")
        sent = await cli.send()
        resolved_again = await cli.send("--resolve")

    assert resolved["alerts_resolved"] == 0
    assert resolved["events_ignored"] == 1
    assert cli.hints[0] == "No test alert was firing, so nothing was resolved."
    assert len(sent["incidents_opened"]) == 1
    assert resolved_again["incidents_resolved"] == sent["incidents_opened"]


async def test_second_send_explains_no_page(
    app: FastAPI, demo: dict[str, Any], tmp_path: Path
) -> None:
    async with ServedApp(app) as served:
        cli = command_for(demo, tmp_path, served)
        first = await cli.send()
        again = await cli.send()

    assert len(first["incidents_opened"]) == 1
    assert again["incidents_opened"] == []
    assert again["alerts_updated"] == 1
    assert "already firing" in cli.hints[1]
