"""Build the FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app import __version__
from app.actions.pages import router as pages_router
from app.actions.slack import router as slack_router
from app.actions.twilio import router as twilio_router
from app.api.router import api_router
from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker, resolve_database_url
from app.core.errors import (
    PROBLEM_JSON,
    NotFound,
    Problem,
    ProblemType,
    install_error_handlers,
    problem_catalog,
    problem_responses,
)
from app.core.logging import get_logger
from app.core.migrate import head_revision
from app.core.request_context import RequestContextMiddleware
from app.ingest.batcher import IngestBatcher
from app.ingest.router import router as ingest_router
from app.ingest.schemas import DOCUMENTED_BODIES
from app.jobs.worker import Worker
from app.notify.callbacks import router as notifier_callbacks_router
from app.notify.registry import misconfigured

log = get_logger(__name__)

# Jobs still running at shutdown get this long to finish before the worker is cancelled.
WORKER_STOP_TIMEOUT_SECONDS = 10


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    url = app.state.database_url or await asyncio.to_thread(resolve_database_url, settings)
    app.state.database_url = url
    app.state.engine = create_engine(url, settings)
    app.state.sessionmaker = create_sessionmaker(app.state.engine)
    app.state.ingest_batcher = IngestBatcher(app.state.engine)
    app.state.migration_head = head_revision()
    worker_task = None
    if app.state.run_worker:
        worker = Worker(settings, url, app.state.sessionmaker)
        app.state.worker = worker
        worker_task = asyncio.create_task(worker.run(), name="tocsin-worker")
    log.info("api.started", version=__version__, worker=bool(worker_task))
    try:
        yield
    finally:
        if worker_task is not None:
            app.state.worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await asyncio.wait_for(worker_task, timeout=WORKER_STOP_TIMEOUT_SECONDS)
                except TimeoutError:
                    # wait_for cancelled the worker, e.g. while it was still connecting.
                    log.warning(
                        "worker.stop_timed_out", timeout_seconds=WORKER_STOP_TIMEOUT_SECONDS
                    )
        await app.state.engine.dispose()
        log.info("api.stopped")


def create_app(
    settings: Settings | None = None,
    *,
    run_worker: bool = False,
    database_url: str | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Tocsin",
        version=__version__,
        summary="Self-hosted incident response: alerts in, incidents out, the right person paged.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.run_worker = run_worker
    app.state.database_url = database_url
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    app.include_router(ingest_router)
    app.include_router(api_router)
    app.include_router(slack_router)
    app.include_router(twilio_router)
    app.include_router(pages_router)
    app.include_router(notifier_callbacks_router)
    _add_operational_routes(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _add_operational_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"], summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: the database answers, its schema is at the latest migration "
        "and this process's job worker runs",
        responses=problem_responses(503),
    )
    async def readyz(request: Request) -> Any:
        head = request.app.state.migration_head
        problems: list[str] = []
        current = None
        try:
            async with request.app.state.engine.connect() as connection:
                current = await connection.scalar(text("SELECT version_num FROM alembic_version"))
        except Exception as exc:
            problems.append(f"The database is unreachable: {type(exc).__name__}.")
        else:
            if current != head:
                problems.append(
                    f"The database schema is at {current}, not {head}; run `tocsin migrate`."
                )
        worker_problem = _worker_problem(request)
        if worker_problem is not None:
            problems.append(worker_problem)
        if problems:
            return _not_ready(request, " ".join(problems))
        ready: dict[str, Any] = {"status": "ok", "migration": current}
        worker: Worker | None = getattr(request.app.state, "worker", None)
        warnings = misconfigured(worker.context.notifiers) if worker is not None else []
        if warnings:
            ready["warnings"] = warnings
        return ready

    @app.get(
        "/problems/{code}",
        tags=["operations"],
        summary="Describe a problem type",
        responses=problem_responses(404, 422),
    )
    async def describe_problem(code: str) -> ProblemType:
        catalog = problem_catalog()
        entry = catalog.get(code.replace("-", "_"))
        if entry is None:
            raise NotFound(f"No problem type is named {code!r}.", field="code")
        return entry


def _worker_problem(request: Request) -> str | None:
    worker: Worker | None = getattr(request.app.state, "worker", None)
    if worker is None:
        return None
    grace = request.app.state.settings.worker_down_grace_seconds
    return worker.health.problem(time.monotonic(), grace)


def _not_ready(request: Request, detail: str) -> JSONResponse:
    body = Problem(
        type="/problems/not-ready",
        title="Not ready",
        status=503,
        detail=detail,
        instance=request.url.path,
        code="not_ready",
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=503,
        media_type=PROBLEM_JSON,
        headers={"Retry-After": "5"},
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, *DOCUMENTED_BODIES):
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in model_schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault(model.__name__, model_schema)
    app.openapi_schema = schema
    return schema
