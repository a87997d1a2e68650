"""Ingest load generator: starts Tocsin on 127.0.0.1 and measures the ingest endpoints.

Run with ``make bench`` (or ``python -m bench.ingest --help``). It creates a scratch
database on the PostgreSQL of the tests (TOCSIN_TEST_DATABASE_URL, else 127.0.0.1:5432),
serves Tocsin with one uvicorn process and runs the job worker beside it, and sends
bounded loads only to that server. Every scenario stops after its time limit or its
request cap, whichever comes first, then waits (bounded) until the worker has sent the
pages it caused, so one scenario's backlog does not slow the next. Results are printed
as Markdown tables for docs/benchmarks.md.

The load comes from wrk when it is installed (Debian package ``wrk``), else from an
httpx client in this process, which needs far more CPU per request on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from bench.wrk import run_wrk, wrk_path
from tests.support.database import database_name, drop_database, recreate_database, url_for
from tests.support.receiver import free_port

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET_KEY = "bench-secret-key-" + "x" * 40
PAGE_JOBS = ("incident.triggered", "escalation.step", "notification.deliver")


@dataclass
class Result:
    name: str
    alerts_per_request: int
    concurrency: int
    requests: int = 0
    not_accepted: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    notes: str = ""
    # When the load ran, to find the incidents it opened.
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    pages: PageLatency | None = None

    @property
    def alerts(self) -> int:
        return (self.requests - self.not_accepted) * self.alerts_per_request

    def row(self) -> str:
        return (
            f"| {self.name} | {self.concurrency} | {self.requests} | {self.alerts} | "
            f"{self.not_accepted} | {self.requests / self.seconds:,.0f} | "
            f"{self.alerts / self.seconds:,.0f} | {self.p50_ms:.1f} | {self.p99_ms:.1f} | "
            f"{self.max_ms:.1f} | {self.notes} |"
        )

    def page_row(self) -> str:
        pages = self.pages
        if pages is None or not pages.latencies_ms:
            return f"| {self.name} | {pages.incidents if pages else 0} | 0 | - | - | - |"
        ordered = sorted(pages.latencies_ms)
        return (
            f"| {self.name} | {pages.incidents} | {len(ordered)} | "
            f"{statistics.median(ordered):.1f} | {percentile(ordered, 99):.1f} | "
            f"{ordered[-1]:.1f} |"
        )


@dataclass
class PageLatency:
    incidents: int
    # Per paged incident: first delivery attempt start minus incident creation, in ms.
    latencies_ms: list[float]


def percentile(ordered: list[float], pct: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


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


@dataclass(frozen=True)
class Scenario:
    name: str
    alerts_per_request: int
    concurrency: int
    hot: bool = False
    truncated: int = 0


async def run_httpx(
    base_url: str,
    path: str,
    scenario: Scenario,
    *,
    body_for: Callable[[int], bytes],
    requests: int,
    seconds: float,
) -> Result:
    """Send up to ``requests`` POSTs with ``scenario.concurrency`` in flight, for ``seconds``."""
    result = Result(scenario.name, scenario.alerts_per_request, scenario.concurrency)
    latencies: list[float] = []
    counter = iter(range(requests))
    started = time.perf_counter()
    deadline = started + seconds
    limits = httpx.Limits(max_connections=scenario.concurrency)

    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:

        async def client_loop() -> None:
            for index in counter:
                if time.perf_counter() > deadline:
                    return
                sent = time.perf_counter()
                response = await http.post(path, content=body_for(index))
                latencies.append((time.perf_counter() - sent) * 1000)
                result.requests += 1
                if response.status_code != 202:
                    result.not_accepted += 1

        await asyncio.gather(*(client_loop() for _ in range(scenario.concurrency)))
    result.seconds = time.perf_counter() - started
    ordered = sorted(latencies) or [0.0]
    result.p50_ms = statistics.median(ordered)
    result.p99_ms = percentile(ordered, 99)
    result.max_ms = ordered[-1]
    return result


def run_scenario(args: argparse.Namespace, base_url: str, path: str, scenario: Scenario) -> Result:
    prefix = f"{scenario.name.split(',')[0].replace(' ', '')}-{uuid.uuid4().hex[:8]}"
    single_request = scenario.alerts_per_request >= 1000
    # The 1,000-alert batches run one at a time and stop after --batches requests.
    cap = args.batches if single_request else args.max_requests
    started_at = datetime.now(UTC)
    # wrk runs for its whole duration even after the request cap, which would understate
    # the rate of the count-bound batches, so those one-at-a-time requests use httpx.
    if args.driver == "wrk" and not single_request:
        measured = run_wrk(
            base_url + path,
            prefix=prefix,
            alerts_per_request=scenario.alerts_per_request,
            connections=scenario.concurrency,
            seconds=args.seconds,
            max_requests=cap,
            hot=scenario.hot,
            truncated=scenario.truncated,
        )
        result = Result(
            scenario.name,
            scenario.alerts_per_request,
            scenario.concurrency,
            requests=measured.requests,
            not_accepted=measured.not_accepted + measured.socket_errors,
            seconds=measured.seconds,
            p50_ms=measured.p50_ms,
            p99_ms=measured.p99_ms,
            max_ms=measured.max_ms,
        )
        if measured.requests >= cap:
            # wrk waits out its duration even after the script stopped sending.
            result.notes = f"hit the cap of {cap} requests, so requests/s is an underestimate"
    else:

        def body_for(index: int) -> bytes:
            key = f"{prefix}-hot" if scenario.hot else f"{prefix}-{index}"
            return alertmanager_batch(
                scenario.alerts_per_request, prefix=key, truncated=scenario.truncated
            )

        result = asyncio.run(
            run_httpx(
                base_url, path, scenario, body_for=body_for, requests=cap, seconds=args.seconds
            )
        )
    result.started_at = started_at
    result.ended_at = datetime.now(UTC)
    return result


async def page_latency(db_url: str, result: Result, time_limit: float) -> PageLatency:
    """Wait (bounded) until no paging job is queued, then measure the scenario's pages.

    The latency of a page is the start of its first delivery attempt minus the incident's
    creation time. The creation time is taken when the ingest transaction starts, so this
    overstates the time from the 202 response by that transaction's duration.
    """
    connection = await asyncpg.connect(db_url)
    try:
        deadline = time.monotonic() + time_limit
        while time.monotonic() < deadline:
            queued = await connection.fetchval(
                "SELECT count(*) FROM pgqueuer WHERE entrypoint = ANY($1::text[]) "
                "AND status IN ('queued', 'picked') AND execute_after <= now()",
                list(PAGE_JOBS),
            )
            if queued == 0:
                break
            await asyncio.sleep(0.2)
        rows = await connection.fetch(
            """
            SELECT i.id, extract(epoch FROM min(d.started_at) - i.created_at) * 1000 AS ms
            FROM incidents i
            LEFT JOIN notifications n ON n.incident_id = i.id AND n.event = 'incident.triggered'
            LEFT JOIN delivery_attempts d ON d.notification_id = n.id AND d.attempt = 1
            WHERE i.created_at BETWEEN $1 AND $2
            GROUP BY i.id, i.created_at
            """,
            result.started_at,
            result.ended_at,
        )
    finally:
        await connection.close()
    return PageLatency(
        incidents=len(rows), latencies_ms=[float(row["ms"]) for row in rows if row["ms"]]
    )


async def paced_pages(base_url: str, path: str, *, rate: float, seconds: float) -> Result:
    """Send one new alert every 1/``rate`` s for ``seconds``, one request at a time."""
    scenario = Scenario(f"paced, {rate:g} alerts/s", 1, 1)
    result = Result(scenario.name, 1, 1, notes="one request at a time, at a fixed rate")
    latencies: list[float] = []
    prefix = f"paced-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for index in range(int(rate * seconds)):
            due = started + index / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent = time.perf_counter()
            body = alertmanager_batch(1, prefix=f"{prefix}-{index}")
            response = await http.post(path, content=body)
            latencies.append((time.perf_counter() - sent) * 1000)
            result.requests += 1
            if response.status_code != 202:
                result.not_accepted += 1
    result.seconds = time.perf_counter() - started
    ordered = sorted(latencies) or [0.0]
    result.p50_ms = statistics.median(ordered)
    result.p99_ms = percentile(ordered, 99)
    result.max_ms = ordered[-1]
    return result


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    return [
        Scenario("1,000-alert batch", 1000, 1),
        Scenario("1,000-alert batch, truncatedAlerts=500", 1000, 1, truncated=500),
        Scenario("batches of 100", 100, args.batch_concurrency),
        Scenario("single alert, distinct keys", 1, args.concurrency),
        Scenario("single alert, one hot key", 1, args.concurrency, hot=True),
    ]


def benchmark(args: argparse.Namespace, base_url: str, key: str, db_url: str) -> list[Result]:
    path = f"/ingest/alertmanager/{key}"
    warmup = run_scenario(
        argparse.Namespace(**{**vars(args), "seconds": 3, "max_requests": 300}),
        base_url,
        path,
        Scenario("warm-up", 1, 8),
    )
    assert warmup.not_accepted == 0, "warm-up requests failed; is the server healthy?"
    asyncio.run(page_latency(db_url, warmup, args.drain_seconds))

    results = []
    for scenario in scenarios(args):
        result = run_scenario(args, base_url, path, scenario)
        result.pages = asyncio.run(page_latency(db_url, result, args.drain_seconds))
        results.append(result)
        print(f"bench: {result.row()}", file=sys.stderr)

    paced = asyncio.run(
        paced_pages(base_url, path, rate=args.paced_rate, seconds=args.paced_seconds)
    )
    paced.ended_at = datetime.now(UTC)
    paced.pages = asyncio.run(page_latency(db_url, paced, args.drain_seconds))
    results.append(paced)
    return results


@contextmanager
def tocsin_processes(args: argparse.Namespace, env: dict[str, str], port: int) -> Iterator[None]:
    """Run ``tocsin serve`` and, unless the worker runs in-process, ``tocsin worker``."""
    tocsin = str(Path(sys.executable).with_name("tocsin"))
    subprocess.run([tocsin, "migrate"], env=env, check=True)
    serve = [tocsin, "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)]
    if args.worker == "separate":
        serve.append("--no-worker")
    commands = [serve, [tocsin, "worker"]] if args.worker == "separate" else [serve]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for command in commands
    ]
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


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


def machine(db_url: str) -> str:
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

    async def server_version() -> str:
        connection = await asyncpg.connect(db_url)
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    postgres = asyncio.run(server_version()).split()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}){memory}, Python {platform.python_version()}, "
        f"PostgreSQL {postgres}"
    )


def load_average() -> str:
    loadavg = Path("/proc/loadavg")
    return " ".join(loadavg.read_text().split()[:3]) if loadavg.exists() else "unknown"


def print_report(args: argparse.Namespace, results: list[Result], db_url: str) -> None:
    print(f"Machine: {machine(db_url)}")
    print(f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average before: {args.load_before}")
    print(f"Command: make bench BENCH_ARGS='{' '.join(sys.argv[1:])}'")
    print(f"Driver: {args.driver}; job worker: {args.worker}\n")
    print(
        "| scenario | in flight | requests | alerts | not accepted | requests/s | alerts/s "
        "| p50 ms | p99 ms | max ms | notes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for result in results:
        print(result.row())
    print("\nFirst page of each incident, from incident creation to the delivery attempt:\n")
    print("| scenario | incidents | paged | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for result in results:
        if result.pages is not None:
            print(result.page_row())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument(
        "--driver",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="load generator (default: wrk when installed, else httpx)",
    )
    parser.add_argument(
        "--worker",
        choices=("separate", "in-process"),
        default="separate",
        help="run the job worker as its own process (default) or inside `tocsin serve`",
    )
    parser.add_argument("--seconds", type=float, default=20, help="seconds per scenario")
    parser.add_argument(
        "--max-requests", type=int, default=200_000, help="request cap per scenario"
    )
    parser.add_argument("--batches", type=int, default=20, help="1,000-alert requests per run")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="single-alert requests in flight"
    )
    parser.add_argument(
        "--batch-concurrency", type=int, default=8, help="100-alert requests in flight"
    )
    parser.add_argument(
        "--paced-rate", type=float, default=20, help="alerts/s of the page latency scenario"
    )
    parser.add_argument(
        "--paced-seconds", type=float, default=10, help="seconds of the page latency scenario"
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=120,
        help="max seconds to wait for the pages of a scenario",
    )
    args = parser.parse_args()
    if args.driver == "auto":
        args.driver = "wrk" if wrk_path() else "httpx"
    args.load_before = load_average()

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
        with tocsin_processes(args, env, port):
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
            results = benchmark(args, base_url, key, db_url)
            print_report(args, results, db_url)
    asyncio.run(drop_database(server, name))
    if shutil.which("wrk") is None and args.driver == "httpx":
        print("\nNOTE: wrk is not installed; httpx shares the server's cores and slows it.")


if __name__ == "__main__":
    main()
