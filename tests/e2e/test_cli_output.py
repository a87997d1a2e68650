"""`tocsin demo --json` on a new embedded PostgreSQL: quiet stderr, URLs on TOCSIN_PORT."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.asyncio, pytest.mark.e2e]

TOCSIN = Path(sys.executable).with_name("tocsin")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: the wheel opens every parent directory to its
    # 'pgserver' user, and pytest's base directory should stay private.
    path = Path(tempfile.mkdtemp(prefix="tocsin-cli-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_demo_json_is_quiet(data_dir: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOCSIN_")}
    env.update(TOCSIN_DATA_DIR=str(data_dir), TOCSIN_PORT="9123", TOCSIN_LOG_FORMAT="json")
    process = await asyncio.create_subprocess_exec(
        str(TOCSIN),
        "demo",
        "--json",
        env=env,
        cwd=data_dir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()

    demo = json.loads(stdout)
    url = demo["services"][0]["integrations"]["alertmanager"]["url"]
    assert url.startswith("http://127.0.0.1:9123/ingest/alertmanager/")
    lines = stderr.decode().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    # initdb, pg_ctl and Alembic used to add about 40 lines here.
    assert events == ["embedded_postgres.starting"]
