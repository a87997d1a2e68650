"""Shared parts of the server-rendered pages: templates, security headers, forms, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from app.actions.registry import when
from app.core.errors import PayloadTooLarge, problem_response

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["when"] = when

# Forms on these pages carry a few short fields.
MAX_FORM_BYTES = 16 * 1024

# Links carry their token in the path: no Referer may take it to another site, and no
# cache or search engine may keep the page.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "json" in accept and "text/html" not in accept


def error_page(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    hint: str = "",
    field: str | None = None,
) -> Response:
    """Render an HTML error page for browsers, problem+json for clients that request JSON."""
    if wants_json(request):
        response: Response = problem_response(
            request, status=status, code=code, title=title, detail=detail, field=field
        )
        response.headers.update(SECURITY_HEADERS)
        return response
    return page(
        request, "error.html", {"title": title, "detail": detail, "hint": hint}, status=status
    )


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, raising 413 as soon as it passes ``limit`` bytes."""
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is larger than {limit} bytes.", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_form(body: bytes) -> dict[str, str]:
    """Parse an application/x-www-form-urlencoded body; the last value of a name wins."""
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


async def read_form(request: Request) -> dict[str, str]:
    return parse_form(await read_body(request, MAX_FORM_BYTES))
