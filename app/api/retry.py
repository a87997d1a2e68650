"""Run /v1 endpoints again when PostgreSQL aborts their transaction for a deadlock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.core.errors import TransactionConflict
from app.core.logging import get_logger

log = get_logger(__name__)

# SQLSTATE 40P01 (deadlock_detected) and 40001 (serialization_failure): PostgreSQL rolled
# the transaction back, so running it again in a new transaction can succeed.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
ENDPOINT_ATTEMPTS = 3

# FastAPI keeps the exit callbacks of dependencies with scope="function" (the session
# commit) under this scope key and runs them after the route handler returns.
_FUNCTION_EXIT_STACK = "fastapi_function_astack"


def retryable_sqlstate(exc: BaseException) -> str | None:
    """Return the SQLSTATE when ``exc`` or an error it wraps is a deadlock or serialization
    failure, else None."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        sqlstate = getattr(error, "sqlstate", None)
        if sqlstate in RETRYABLE_SQLSTATES:
            return str(sqlstate)
        orig = getattr(error, "orig", None)
        pending += [error.__cause__, error.__context__]
        if isinstance(orig, BaseException):
            pending.append(orig)
    return None


class TransactionRetryRoute(APIRoute):
    """A route whose endpoint runs again, with new dependencies and a new session, when
    PostgreSQL aborts its transaction with a deadlock or serialization failure.

    The endpoint, including the session's commit, runs at most ``ENDPOINT_ATTEMPTS`` times.
    When every attempt fails, the client gets 503 with Retry-After. Endpoints on such a
    route must have no side effect outside the database, because a retry repeats it.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        run_endpoint = super().get_route_handler()

        async def run_with_retries(request: Request) -> Response:
            for attempt in range(1, ENDPOINT_ATTEMPTS + 1):
                try:
                    return await _run_with_own_exit_stack(run_endpoint, request)
                except Exception as exc:
                    sqlstate = retryable_sqlstate(exc)
                    if sqlstate is None:
                        raise
                    log.warning(
                        "request.transaction_retry",
                        attempt=attempt,
                        sqlstate=sqlstate,
                        error=type(exc).__name__,
                    )
                    if attempt == ENDPOINT_ATTEMPTS:
                        raise TransactionConflict(
                            f"Concurrent changes aborted this request's transaction "
                            f"{ENDPOINT_ATTEMPTS} times (SQLSTATE {sqlstate}); nothing was "
                            "changed. Retry after the Retry-After delay.",
                        ) from exc
                    await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311
            raise AssertionError("unreachable")

        return run_with_retries


async def _run_with_own_exit_stack(
    run_endpoint: Callable[[Request], Coroutine[Any, Any, Response]], request: Request
) -> Response:
    """Run the endpoint so that its function-scoped dependencies exit before this returns.

    FastAPI would run the session's commit after the route handler returns, out of reach
    of the retry. With an exit stack of our own, a deadlock at commit raises here.
    """
    outer_stack = request.scope.get(_FUNCTION_EXIT_STACK)
    try:
        async with AsyncExitStack() as stack:
            request.scope[_FUNCTION_EXIT_STACK] = stack
            return await run_endpoint(request)
    finally:
        request.scope[_FUNCTION_EXIT_STACK] = outer_stack
