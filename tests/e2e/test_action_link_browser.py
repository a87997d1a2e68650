"""A responder opens a link from a delivered page in headless Chromium and acknowledges.

Needs Debian's chromium at /usr/bin/chromium (scripts/prepare-tests installs it as root)
and the playwright package, which drives that binary; Playwright's own browser
downloads are never used. Screenshots go to test-output/e2e/<test name>/.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from app.core.config import Settings
from app.incidents.paging import PagingContext
from tests.conftest import payload_bytes
from tests.support.jobs import drain_jobs
from tests.support.receiver import free_port

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Flags for a root user on a machine without a display or outside network.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE_VIEWPORT = {"width": 390, "height": 844}
PORT = free_port()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_url": f"http://127.0.0.1:{PORT}"})


@pytest_asyncio.fixture
async def live_server(app: FastAPI) -> AsyncIterator[str]:
    """Serve the test app on 127.0.0.1, so a real browser can load its pages."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=PORT, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{PORT}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    folder = ROOT / "test-output" / "e2e" / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def require_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's chromium is not installed at /usr/bin/chromium; "
            "scripts/prepare-tests installs it when run as root"
        )
    pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")


async def test_link_from_page_acknowledges_in_browser(
    live_server: str,
    demo: dict[str, object],
    alertmanager_path: str,
    raw_db: asyncpg.Connection,
    paging: PagingContext,
    output_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_browser()
    from playwright.async_api import async_playwright

    async with httpx.AsyncClient(base_url=live_server) as http:
        sent = await http.post(
            alertmanager_path, content=payload_bytes("alertmanager/firing-two-alerts.json")
        )
    assert sent.status_code == 202, sent.text

    with caplog.at_level(logging.WARNING, logger="tocsin.page"):
        await drain_jobs(raw_db, paging)
    pages = [record.getMessage() for record in caplog.records if record.name == "tocsin.page"]
    assert len(pages) == 1, pages
    (output_dir / "page.txt").write_text(pages[0])
    found = re.search(r"Acknowledge: (\S+)", pages[0])
    assert found is not None, pages[0]
    link = found.group(1)
    assert link.startswith(f"{live_server}/a/")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            context = await browser.new_context(viewport=PHONE_VIEWPORT, java_script_enabled=False)
            page = await context.new_page()

            opened = await page.goto(link)
            assert opened is not None and opened.status == 200
            heading = await page.text_content("h1")
            assert heading is not None and "5xx rate above 5%" in heading
            assert "Demo service" in (await page.text_content("main") or "")
            await page.screenshot(path=str(output_dir / "1-confirm.png"), full_page=True)
            status = await raw_db.fetchval("SELECT status FROM incidents")
            assert status == "triggered"

            await page.get_by_role("button", name="Acknowledge").click()
            await page.wait_for_load_state()
            outcome = await page.get_by_role("status").text_content()
            assert outcome is not None
            assert outcome.startswith("Acknowledged by Demo Responder at ")
            await page.screenshot(path=str(output_dir / "2-acknowledged.png"), full_page=True)
            assert await raw_db.fetchval("SELECT status FROM incidents") == "acknowledged"

            await page.get_by_role("link", name="Open the incident").click()
            await page.wait_for_load_state()
            main = await page.text_content("main") or ""
            assert "Acknowledged by Demo Responder via link" in main
            assert "5xx rate above 5% on checkout-7d9f-def34" in main
            await page.screenshot(path=str(output_dir / "3-incident.png"), full_page=True)

            await page.goto(f"{live_server}/oncall")
            assert "Demo Responder" in (await page.text_content("main") or "")
            await page.screenshot(path=str(output_dir / "4-oncall.png"), full_page=True)

            await page.goto(link + "x")
            assert "This link is not valid" in (await page.text_content("h1") or "")
            await page.screenshot(path=str(output_dir / "5-invalid-link.png"), full_page=True)
        finally:
            await browser.close()
