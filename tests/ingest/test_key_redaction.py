"""Logged paths hide integration keys and action link tokens, and no sender format logs its key."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import httpx
import pytest

from app.core.logging import configure_logging, get_logger, redact_path
from tests.conftest import payload_bytes, payload_json
from tests.ingest.conftest import pagerduty_body

INCIDENT_PATH = "/v1/incidents/0190e5a4-7a1c-7d44-9a51-0c0ffee00001"


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Collect every log line at debug level and above, rendered as JSON as in production."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("debug", "json")
    try:
        yield stream
    finally:
        monkeypatch.undo()
        configure_logging("warning")


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/ingest/alertmanager/Zx8pQ2mN7vR4tY6wK1sL3dF5", "/ingest/alertmanager/***3dF5"),
        ("/ingest/heartbeat/short", "/ingest/heartbeat/***"),
        ("/ingest/generic", "/ingest/generic"),
        ("/a/eyJhbGciOi.payload.signature", "/a/***"),
        (INCIDENT_PATH, INCIDENT_PATH),
    ],
)
def test_redact_path(path: str, logged: str) -> None:
    assert redact_path(path) == logged


def test_path_field_is_redacted(json_logs: io.StringIO) -> None:
    key = "Zx8pQ2mN7vR4tY6wK1sL3dF5"
    get_logger("tests").error("request.failed", path=f"/ingest/grafana/{key}")
    output = json_logs.getvalue()
    assert "/ingest/grafana/***3dF5" in output
    assert key not in output


@pytest.mark.asyncio
async def test_ingest_logs_no_key(
    client: httpx.AsyncClient, keys: dict[str, str], json_logs: io.StringIO
) -> None:
    alertmanager = await client.post(
        f"/ingest/alertmanager/{keys['alertmanager']}",
        content=payload_bytes("alertmanager/firing-two-alerts.json"),
    )
    unknown_key = "Unknown0Key0That0Looks0Real0123"
    unknown = await client.post(
        f"/ingest/alertmanager/{unknown_key}",
        content=payload_bytes("alertmanager/firing-two-alerts.json"),
    )
    pagerduty = await client.post(
        "/v2/enqueue",
        content=pagerduty_body(payload_json("pagerduty/trigger.json"), keys["pagerduty"]),
    )
    pagerduty_invalid = await client.post(
        "/v2/enqueue",
        content=pagerduty_body({"event_action": "explode"}, keys["pagerduty"]),
    )
    opsgenie = await client.post(
        "/v2/alerts",
        content=payload_bytes("opsgenie/create-alert.json"),
        headers={"Authorization": f"GenieKey {keys['opsgenie']}"},
    )

    assert alertmanager.status_code == 202
    assert unknown.status_code == 404
    assert pagerduty.status_code == 202
    assert pagerduty_invalid.status_code == 400
    assert opsgenie.status_code == 202
    output = json_logs.getvalue()
    # The requests were logged, with the key reduced to its hint.
    assert f"/ingest/alertmanager/***{keys['alertmanager'][-4:]}" in output
    assert "ingest.rejected" in output
    for kind in ("alertmanager", "pagerduty", "opsgenie"):
        assert keys[kind] not in output, f"the {kind} key is in the log"
    assert unknown_key not in output


def test_console_lines_escape_control_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("info", "console")
    try:
        get_logger("tests").info("ingest.rejected", field="k\x00\nforged line")
        logging.getLogger("tocsin.page").warning("PAGE %s", "title\x00\n  Service: demo")
    finally:
        monkeypatch.undo()
        configure_logging("warning")

    rejected, page, service, end = stream.getvalue().split("\n")
    assert "\x00" not in rejected + page + service
    assert "x00" in rejected
    # A page keeps its line breaks, each continuation line indented.
    assert "PAGE title\\x00" in page
    assert service.startswith("  Service: demo")
    assert end == ""
