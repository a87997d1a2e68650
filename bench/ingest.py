"""Ingest load generator: starts Tocsin on 127.0.0.1 and measures the ingest endpoints.

Run with ``make bench`` (or ``python -m bench.ingest --help``). It creates a scratch
database on the PostgreSQL of the tests (TOCSIN_TEST_DATABASE_URL, else 127.0.0.1:5432),
serves Tocsin with one uvicorn worker and its job worker, and sends bounded loads only to
that server. Every scenario stops after its request count or its time limit, whichever
comes first. Results are printed as a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from tests.support.database import database_name, drop_database, recreate_database, url_for
from tests.support.receiver import free_port

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET_KEY = "bench-secret-key-" + "x" * 40


@dataclass
class Result:
    name: str
    requests: int = 0
    alerts: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    notes: str = ""

    def row(self) -> str:
        ordered = sorted(self.latencies) or [0.0]
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        return (
            f"| {self.name} | {self.requests} | {self.alerts} | {self.errors} | "
            f"{self.requests / self.seconds:,.0f} | {self.alerts / self.seconds:,.0f} | "
            f"{p50:.1f} | {p99:.1f} | {max(ordered) * 1000:.1f} | {self.notes} |"
        )


def alertmanager_batch(count: int, *, prefix: str, truncated: int = 0) -> bytes:
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": "BenchAlert",
                "instance": f"node-{index:05d}",
                "severity": "critical",
            },
            "annotations": {"summary": f"node-{index:05d} is down"},
            "startsAt": "2026-11-30T08:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": f"{prefix}-{index:05d}",
        }
        for index in range(count)
    ]
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{batch="{prefix}"}}',
            "truncatedAlerts": truncated,
            "status": "firing",
            "receiver": "bench",
            "groupLabels": {"batch": prefix},
            "commonLabels": {"alertname": "BenchAlert"},
            "alerts": alerts,
        }
    ).encode()


async def run_load(
    http: httpx.AsyncClient,
    name: str,
    *,
    path: str,
    body_for: Callable[[int], bytes],
    alerts_per_request: int,
    requests: int,
    concurrency: int,
    time_limit: float,
    notes: str = "",
) -> Result:
    """Send up to ``requests`` POSTs with ``concurrency`` in flight, for at most ``time_limit``."""
    result = Result(name=name, notes=notes)
    counter = iter(range(requests))
    started = time.perf_counter()
    deadline = started + time_limit

    async def client_loop() -> None:
        for index in counter:
            if time.perf_counter() > deadline:
                return
            body = body_for(index)
            sent = time.perf_counter()
            response = await http.post(path, content=body)
            result.latencies.append(time.perf_counter() - sent)
            result.requests += 1
            if response.status_code == 202:
                result.alerts += alerts_per_request
            else:
                result.errors += 1

    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


def single_alert(prefix: str, index: int, fingerprint: str | None = None) -> bytes:
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{n="{prefix}-{index}"}}',
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "BenchSingle", "n": str(index)},
                    "annotations": {"summary": "single alert"},
                    "startsAt": "2026-11-30T08:00:00Z",
                    "fingerprint": fingerprint or f"{prefix}-{index}",
                }
            ],
        }
    ).encode()


async def wait_for_pages(connection: asyncpg.Connection, time_limit: float) -> tuple[int, int]:
    """Wait until no paging job is queued (bounded); return (incidents, first pages)."""
    deadline = time.monotonic() + time_limit
    while time.monotonic() < deadline:
        queued = await connection.fetchval(
            "SELECT count(*) FROM pgqueuer WHERE entrypoint IN "
            "('incident.triggered', 'notification.deliver') AND status IN ('queued', 'picked')"
        )
        if queued == 0:
            break
        await asyncio.sleep(0.2)
    incidents = await connection.fetchval("SELECT count(*) FROM incidents")
    pages = await connection.fetchval(
        "SELECT count(*) FROM notifications WHERE event = 'incident.triggered'"
    )
    return int(incidents), int(pages)


async def benchmark(args: argparse.Namespace, base_url: str, key: str, db_url: str) -> list[str]:
    path = f"/ingest/alertmanager/{key}"
    rows = []
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        warmup = await run_load(
            http,
            "warm-up",
            path=path,
            body_for=lambda i: single_alert("warm", i),
            alerts_per_request=1,
            requests=200,
            concurrency=8,
            time_limit=30,
        )
        assert warmup.errors == 0, "warm-up requests failed; is the server healthy?"

        for name, truncated in (
            ("1,000-alert batch", 0),
            ("1,000-alert batch, truncatedAlerts=500", 500),
        ):
            run_id = uuid.uuid4().hex[:8]
            result = await run_load(
                http,
                name,
                path=path,
                body_for=lambda i, run_id=run_id, truncated=truncated: alertmanager_batch(
                    1000, prefix=f"{run_id}-{i}", truncated=truncated
                ),
                alerts_per_request=1000,
                requests=args.batches,
                concurrency=1,
                time_limit=args.time_limit,
                notes="one request at a time",
            )
            rows.append(result.row())

        run_id = uuid.uuid4().hex[:8]
        rows.append(
            (
                await run_load(
                    http,
                    "batches of 100",
                    path=path,
                    body_for=lambda i: alertmanager_batch(100, prefix=f"{run_id}-b{i}"),
                    alerts_per_request=100,
                    requests=args.requests // 10,
                    concurrency=8,
                    time_limit=args.time_limit,
                    notes="c=8",
                )
            ).row()
        )
        rows.append(
            (
                await run_load(
                    http,
                    "single alert, distinct keys",
                    path=path,
                    body_for=lambda i: single_alert(run_id, i),
                    alerts_per_request=1,
                    requests=args.requests,
                    concurrency=args.concurrency,
                    time_limit=args.time_limit,
                    notes=f"c={args.concurrency}",
                )
            ).row()
        )
        rows.append(
            (
                await run_load(
                    http,
                    "single alert, one hot key",
                    path=path,
                    body_for=lambda i: single_alert(run_id, 0, fingerprint=f"{run_id}-hot"),
                    alerts_per_request=1,
                    requests=args.requests,
                    concurrency=args.concurrency,
                    time_limit=args.time_limit,
                    notes=f"c={args.concurrency}",
                )
            ).row()
        )

    connection = await asyncpg.connect(db_url)
    try:
        incidents, pages = await wait_for_pages(connection, args.time_limit)
    finally:
        await connection.close()
    rows.append(
        f"\nIncidents opened: {incidents}; first pages sent: {pages} "
        "(one responder on the demo policy, so these match when each incident paged once)."
    )
    return rows


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    tocsin = str(Path(sys.executable).with_name("tocsin"))
    subprocess.run([tocsin, "migrate"], env=env, check=True)
    return subprocess.Popen(
        [tocsin, "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until_ready(base_url: str, time_limit: float = 60) -> None:
    deadline = time.monotonic() + time_limit
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"Tocsin did not become ready at {base_url} within {time_limit} s")


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    return f"{os.cpu_count()} cores ({cpu}){memory}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--batches", type=int, default=20, help="1,000-alert requests per run")
    parser.add_argument("--requests", type=int, default=5000, help="single-alert requests")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--time-limit", type=float, default=60, help="seconds per scenario")
    args = parser.parse_args()

    server = os.environ.get("TOCSIN_TEST_DATABASE_URL", DEFAULT_SERVER)
    name = database_name("_bench")
    asyncio.run(recreate_database(server, name))
    db_url = url_for(server, name)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "TOCSIN_DATABASE_URL": db_url,
            "TOCSIN_SECRET_KEY": SECRET_KEY,
            "TOCSIN_DATA_DIR": data_dir,
            "TOCSIN_PUBLIC_URL": base_url,
            "TOCSIN_LOG_LEVEL": "warning",
        }
        process = start_server(env, port)
        try:
            wait_until_ready(base_url)
            demo = json.loads(
                subprocess.run(
                    [str(Path(sys.executable).with_name("tocsin")), "demo", "--json"],
                    env=env,
                    check=True,
                    capture_output=True,
                ).stdout
            )
            key = demo["services"][0]["integrations"]["alertmanager"]["key"]
            rows = asyncio.run(benchmark(args, base_url, key, db_url))
        finally:
            process.terminate()
            process.wait(timeout=30)
    asyncio.run(drop_database(server, name))

    print(f"Machine: {machine()}")
    print(f"Command: make bench BENCH_ARGS='{' '.join(sys.argv[1:])}'\n")
    print(
        "| scenario | requests | alerts | errors | requests/s | alerts/s | p50 ms | p99 ms "
        "| max ms | notes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
