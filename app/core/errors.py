"""Errors rendered as ``application/problem+json`` (RFC 9457) and the handlers that render them."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.logging import get_logger
from app.core.text import printable

PROBLEM_JSON = "application/problem+json"
# Relative URI: GET /problems/{code} on the same server describes each problem type.
PROBLEM_TYPE_BASE = "/problems/"
# Seconds a client should wait before retrying after a 503.
RETRY_AFTER_SECONDS = 5

log = get_logger(__name__)

_ASYNCPG_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
)


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending value, e.g. body.alerts.0.labels")
    message: str
    type: str = "invalid"


class Reference(BaseModel):
    """An object that uses the one a request tried to delete."""

    type: str = Field(description="escalation_policy, incident, rule, schedule, service or team")
    id: str
    name: str
    usage: str = Field(description="How it uses the object, e.g. target of level 2")


class Problem(BaseModel):
    """Problem details (RFC 9457) with Tocsin's extension members."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str
    field: str | None = Field(default=None, description="The offending field, when there is one")
    errors: list[FieldError] | None = None
    references: list[Reference] | None = Field(
        default=None, description="What still uses the object, for code in_use"
    )
    request_id: str | None = None


class AppError(Exception):
    """Base of every error Tocsin reports to a client on purpose."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        references: list[Reference] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.errors = errors
        self.headers = headers or {}
        self.references = references


class BadRequest(AppError):
    """The request is malformed; the problem's field and detail name the value and the fix."""

    status = 400
    code = "bad_request"
    title = "Bad request"


class Unauthorized(AppError):
    """The API key or integration key is missing, unknown or revoked."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class Forbidden(AppError):
    """The API key lacks a scope that the route requires."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(AppError):
    """The resource or route does not exist."""

    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(AppError):
    """The request conflicts with the current state, such as acting on a closed incident."""

    status = 409
    code = "conflict"
    title = "Conflict"


class InUse(Conflict):
    """The object is still used by others (listed in references); remove those uses first."""

    code = "in_use"
    title = "Still in use"


class PayloadTooLarge(AppError):
    """The body is larger than the configured limit; send less per request."""

    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(AppError):
    """The route does not accept the body's content type."""

    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class Unprocessable(AppError):
    status = 422
    code = "validation_failed"
    title = "Validation failed"


class ServiceUnavailable(AppError):
    """Tocsin cannot serve the request for now; retry after Retry-After seconds."""

    status = 503
    code = "service_unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))


class TransactionConflict(ServiceUnavailable):
    """Concurrent requests kept aborting this one's transaction; retry after Retry-After."""

    code = "transaction_conflict"
    title = "Service unavailable"


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    field: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    references: list[Reference] | None = None,
) -> JSONResponse:
    # Field paths and details may quote a request's lone surrogates, which UTF-8 cannot
    # encode, so they are escaped before the response is rendered.
    problem = Problem(
        type=PROBLEM_TYPE_BASE + code.replace("_", "-"),
        title=title,
        status=status,
        detail=printable(detail),
        instance=printable(request.url.path),
        code=code,
        field=None if field is None else printable(field),
        errors=None
        if errors is None
        else [
            error.model_copy(
                update={"field": printable(error.field), "message": printable(error.message)}
            )
            for error in errors
        ],
        references=references,
        request_id=getattr(request.state, "request_id", None),
    )
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def field_path(location: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in location)


def validation_errors(errors: Any) -> list[FieldError]:
    """Convert Pydantic error dicts into field errors with a readable message."""
    result = []
    for error in errors:
        location = field_path(error.get("loc", ()))
        message = error.get("msg", "invalid value")
        if error.get("type") == "json_invalid":
            message = f"body is not valid JSON: {error.get('ctx', {}).get('error', message)}"
        elif error.get("type") == "extra_forbidden":
            message = "unknown field: remove it, or check its spelling against the API reference"
        result.append(
            FieldError(field=location, message=message, type=error.get("type", "invalid"))
        )
    return result


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        field=exc.field,
        errors=exc.errors,
        headers=exc.headers,
        references=exc.references,
    )


async def _request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    first = errors[0] if errors else None
    detail = f"{first.field}: {first.message}" if first else "The request did not pass validation."
    content_type = request.headers.get("content-type", "")
    if first and first.field == "body" and "json" not in content_type:
        # FastAPI parses the body as JSON only when the Content-Type declares JSON.
        # Otherwise the raw bytes fail validation as "not an object", as with curl -d.
        detail = (
            "body: send the body as JSON with the header Content-Type: application/json "
            f"(this request had {content_type or 'no Content-Type'})"
        )
    elif len(errors) > 1:
        detail += f" (and {len(errors) - 1} more; see errors)"
    return problem_response(
        request,
        status=422,
        code="validation_failed",
        title="Validation failed",
        detail=detail,
        field=first.field if first else None,
        errors=errors,
    )


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized"}
    title = titles.get(exc.status_code, "HTTP error")
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    field = None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route matches {request.method} {request.url.path}."
    elif exc.status_code == 400 and detail == _FASTAPI_BODY_ERROR:
        # FastAPI's words when Python's JSON decoder raises something other than a
        # syntax error: in practice an integer of more than 4,300 digits or deep nesting.
        detail = (
            "The body could not be read as JSON: a number has more than 4,300 digits (send "
            "it as a string) or the JSON is nested too deeply."
        )
        field = "body"
    return problem_response(
        request,
        status=exc.status_code,
        code=title.lower().replace(" ", "_"),
        title=title,
        detail=detail,
        field=field,
        headers=dict(exc.headers or {}),
    )


_FASTAPI_BODY_ERROR = "There was an error parsing the body"


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if _is_unstorable_value(exc):
        log.warning("request.unstorable_value", path=request.url.path, error=str(exc))
        return problem_response(
            request,
            status=400,
            code="bad_request",
            title="Bad request",
            detail="A value in the request cannot be stored: it contains a NUL character "
            "(\\u0000) or an unpaired surrogate, or free-form JSON contains a number beyond the "
            "range of a double. Remove it, or send the number as a string.",
            field="body",
        )
    if not is_connection_error(exc):
        return await _unhandled(request, exc)
    log.warning("database.unavailable", error=str(exc).splitlines()[0], path=request.url.path)
    return problem_response(
        request,
        status=503,
        code="database_unavailable",
        title="Service unavailable",
        detail="The database is unreachable; nothing was stored. Retry later.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("request.failed", path=request.url.path, method=request.method)
    return problem_response(
        request,
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="An unexpected error occurred; it has been logged with the request id.",
    )


def _is_unstorable_value(exc: BaseException) -> bool:
    """Tell whether PostgreSQL rejected a value from the request that it cannot store.

    Request models and ingest parsers reject these values with the field's name. This
    catches the ones that get past them, so that they get a 400 response, not a 500.
    """
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    cause = getattr(cause, "__cause__", None) or cause
    if isinstance(
        cause, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
    ):
        return True
    return isinstance(cause, asyncpg.InvalidTextRepresentationError) and "type json" in str(cause)


def is_connection_error(exc: BaseException) -> bool:
    """Tell whether an exception means the database could not be reached."""
    if isinstance(exc, (OSError, PoolTimeoutError, OperationalError)):
        return True
    if isinstance(exc, _ASYNCPG_CONNECTION_ERRORS):
        return True
    # A pooled connection whose server went away fails its next use this way.
    if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        causes = (exc.orig, getattr(exc.orig, "__cause__", None))
        return any(cause is not None and is_connection_error(cause) for cause in causes)
    return False


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(PoolTimeoutError, _database_unavailable)
    app.add_exception_handler(OSError, _database_unavailable)
    for error_class in (
        *_ASYNCPG_CONNECTION_ERRORS,
        asyncpg.InterfaceError,
        asyncpg.CharacterNotInRepertoireError,
        asyncpg.UntranslatableCharacterError,
        asyncpg.InvalidTextRepresentationError,
    ):
        app.add_exception_handler(error_class, _database_unavailable)
    app.add_exception_handler(Exception, _unhandled)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Build the ``responses=`` mapping that declares problem+json errors in OpenAPI."""
    descriptions = {
        400: "Malformed request",
        401: "Missing or invalid credentials",
        403: "Credentials lack the required scope",
        404: "Not found",
        409: "Conflicts with the current state",
        413: "Body too large",
        415: "Unsupported media type",
        422: "Validation failed",
        503: "Database unavailable; retry after the Retry-After header",
    }
    return {
        status: {
            "description": descriptions.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


_EXTRA_PROBLEMS = {
    "validation_failed": (
        422,
        "Validation failed",
        "A field is missing or has an invalid value; see errors.",
    ),
    "database_unavailable": (
        503,
        "Service unavailable",
        "The database is unreachable; nothing was stored. Retry after Retry-After seconds.",
    ),
    "not_ready": (
        503,
        "Not ready",
        "The database is unreachable, its schema is not at the latest migration, or this "
        "process's job worker has been down longer than TOCSIN_WORKER_DOWN_GRACE_SECONDS.",
    ),
    "method_not_allowed": (
        405,
        "Method not allowed",
        "The path exists but not with this HTTP method.",
    ),
    "internal_error": (
        500,
        "Internal server error",
        "A bug; the server log has the traceback under the request id.",
    ),
    # Action link pages return these to clients that request JSON.
    "link_invalid": (
        403,
        "This link is not valid",
        "The action link was altered or truncated, or comes from another Tocsin server.",
    ),
    "link_key_revoked": (
        403,
        "This link no longer works",
        "The key that signed the action link has been revoked.",
    ),
    "link_expired": (410, "This link has expired", "The action link's lifetime has passed."),
    "link_user_gone": (
        410,
        "This link no longer works",
        "The user the action link was sent to has been deleted.",
    ),
}


class ProblemType(BaseModel):
    """One problem type, as GET /problems/{code} describes it."""

    code: str
    title: str
    status: int = Field(description="The HTTP status code of responses with this problem type")
    description: str


def problem_catalog() -> dict[str, ProblemType]:
    """Describe every problem type, for GET /problems/{code}."""
    catalog: dict[str, ProblemType] = {}
    pending: list[type[AppError]] = [AppError]
    while pending:
        error_class = pending.pop()
        pending.extend(error_class.__subclasses__())
        catalog[error_class.code] = ProblemType(
            code=error_class.code,
            title=error_class.title,
            status=error_class.status,
            description=(error_class.__doc__ or error_class.title).strip().splitlines()[0],
        )
    for code, (status, title, description) in _EXTRA_PROBLEMS.items():
        catalog[code] = ProblemType(code=code, title=title, status=status, description=description)
    return catalog
