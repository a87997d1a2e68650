"""The ``tocsin`` command: serve, worker, migrate, demo, send-test-alert, openapi."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from app import __version__
from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker, resolve_database_url
from app.core.logging import configure_logging, get_logger
from app.core.migrate import upgrade
from app.core.time import isoformat, utcnow

log = get_logger("tocsin")


def _settings() -> Settings:
    try:
        settings = get_settings()
    except Exception as exc:  # pydantic's ValidationError lists every bad variable
        print(f"tocsin: invalid settings:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging(settings.log_level, settings.log_format)
    return settings


async def _run_demo(settings: Settings, url: str, *, only_if_empty: bool) -> dict[str, Any] | None:
    from app.demo import ensure_demo, has_services

    engine = create_engine(url, settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            if only_if_empty and await has_services(session):
                return None
            return await ensure_demo(session, settings)
    finally:
        await engine.dispose()


def _print_demo(demo: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(demo, indent=2))
        return
    print(f"API key (admin): {demo['api_key']}")
    for service in demo["services"]:
        print(f"Service {service['name']} ({service['id']})")
        for kind, integration in service["integrations"].items():
            print(f"  {kind}: {integration['url']}")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from app.main import create_app

    settings = _settings()
    host = args.host or settings.host
    port = args.port or settings.port
    # Without TOCSIN_PUBLIC_URL, links and demo URLs name the address served here.
    settings = settings.model_copy(update={"host": host, "port": port})
    url = resolve_database_url(settings)
    if not args.no_migrate:
        upgrade(url)
    if args.demo:
        demo = asyncio.run(_run_demo(settings, url, only_if_empty=True))
        if demo is not None:
            print(
                "Demo data created (first start). Save the keys below; "
                "`tocsin demo --json` prints them again.",
                flush=True,
            )
            _print_demo(demo, as_json=True)
    app = create_app(settings, run_worker=not args.no_worker, database_url=url)
    log.info("serve.starting", host=host, port=port, worker=not args.no_worker)
    # uvicorn re-raises SIGINT or SIGTERM after its graceful shutdown, through the handler
    # that was installed before it started. Exiting from that handler (instead of dying by
    # the signal) lets atexit stop the embedded PostgreSQL.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_after_shutdown)
    uvicorn.run(app, host=host, port=port, log_config=None, proxy_headers=True, access_log=False)


def _exit_after_shutdown(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_worker(args: argparse.Namespace) -> None:
    from app.jobs.worker import Worker

    settings = _settings()
    url = resolve_database_url(settings)

    async def run() -> None:
        engine = create_engine(url, settings)
        worker = Worker(settings, url, create_sessionmaker(engine))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, worker.stop)
        try:
            await worker.run()
        finally:
            await engine.dispose()

    asyncio.run(run())


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings()
    upgrade(resolve_database_url(settings), args.revision)
    log.info("migrate.done", revision=args.revision)


def cmd_demo(args: argparse.Namespace) -> None:
    settings = _settings()
    url = resolve_database_url(settings)
    upgrade(url)
    demo = asyncio.run(_run_demo(settings, url, only_if_empty=False))
    assert demo is not None
    _print_demo(demo, as_json=args.json)


# Every test alert has this fingerprint, so --resolve ends the one sent before. A send after
# a resolve still opens a new incident: its startsAt is later than the resolved alert's end.
TEST_ALERT_FINGERPRINT = "tocsin-test-alert"
# Alertmanager's value for "no end time yet".
ALERTMANAGER_NO_END = "0001-01-01T00:00:00Z"


def build_test_alert(*, resolve: bool, now: datetime) -> dict[str, Any]:
    """Build the Alertmanager webhook body of the test alert, stamped with ``now``."""
    status = "resolved" if resolve else "firing"
    return {
        "version": "4",
        "groupKey": '{}:{alertname="TocsinTestAlert"}',
        "status": status,
        "receiver": "tocsin",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "TocsinTestAlert", "severity": "critical"},
                "annotations": {"summary": "Test alert sent by `tocsin send-test-alert`"},
                "startsAt": isoformat(now),
                "endsAt": isoformat(now) if resolve else ALERTMANAGER_NO_END,
                "fingerprint": TEST_ALERT_FINGERPRINT,
            }
        ],
    }


def cmd_send_test_alert(args: argparse.Namespace) -> None:
    """Post one Alertmanager-format alert to a running Tocsin, as a smoke test."""
    settings = _settings()
    url = args.url
    if url is None:
        from app.demo import derived_secret

        key = derived_secret(settings, "integration alertmanager", 32)
        url = f"{settings.public_base_url}/ingest/alertmanager/{key}"
    payload = build_test_alert(resolve=args.resolve, now=utcnow())
    response = httpx.post(url, json=payload, timeout=10)
    print(f"HTTP {response.status_code}")
    print(response.text)
    if response.status_code >= 400:
        raise SystemExit(1)
    hint = _test_alert_hint(response.json(), resolve=args.resolve)
    if hint:
        print(hint, file=sys.stderr)


def _test_alert_hint(result: dict[str, Any], *, resolve: bool) -> str | None:
    """Return a hint when the response shows that nothing was paged or resolved, else None."""
    if resolve and not result.get("alerts_resolved"):
        return "No test alert was firing, so nothing was resolved."
    if not resolve and not result.get("incidents_opened") and result.get("alerts_updated"):
        return (
            "The test alert is already firing, so it updated its incident and paged nobody. "
            "Run `tocsin send-test-alert --resolve`, then send it again to page."
        )
    return None


def cmd_openapi(args: argparse.Namespace) -> None:
    from app.main import create_app

    document = create_app(Settings(database_url=None)).openapi()
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tocsin", description="Self-hosted incident response.")
    parser.add_argument("--version", action="version", version=f"tocsin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, then serve the API (and a worker)")
    serve.add_argument("--host", help="interface to listen on (default TOCSIN_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default TOCSIN_PORT, 8080)")
    serve.add_argument("--no-worker", action="store_true", help="run no worker in this process")
    serve.add_argument("--no-migrate", action="store_true", help="skip migrations at start")
    serve.add_argument(
        "--demo", action="store_true", help="create demo data if the database is empty"
    )
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="run only the job worker (pages, escalations)")
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument(
        "revision", nargs="?", default="head", help="target revision (default head)"
    )
    migrate.set_defaults(handler=cmd_migrate)

    demo = commands.add_parser("demo", help="create demo data (idempotent) and print its keys")
    demo.add_argument("--json", action="store_true", help="print JSON")
    demo.set_defaults(handler=cmd_demo)

    test_alert = commands.add_parser(
        "send-test-alert", help="post a test alert to a running server"
    )
    test_alert.add_argument("--url", help="ingest URL (default: the demo Alertmanager integration)")
    test_alert.add_argument("--resolve", action="store_true", help="resolve the test alert")
    test_alert.set_defaults(handler=cmd_send_test_alert)

    openapi = commands.add_parser("openapi", help="write the OpenAPI document as YAML")
    openapi.add_argument("--output", default="openapi.yaml", help="file to write, or - for stdout")
    openapi.set_defaults(handler=cmd_openapi)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
