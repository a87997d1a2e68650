"""Inbound requests from chat services (button clicks, replies), routed to their notifier."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request, Response

from app import __version__
from app.core.config import Settings
from app.core.errors import NotFound, PayloadTooLarge, problem_responses
from app.core.logging import get_logger
from app.notify import registry
from app.notify.base import CallbackHandler, InboundRequest, NotifierContext

# Slack interaction payloads stay far below this.
MAX_CALLBACK_BYTES = 1024 * 1024

log = get_logger(__name__)

router = APIRouter(prefix="/notifiers", tags=["notifiers"])


@router.post(
    "/{kind}/callback",
    responses={
        200: {"description": "The notifier's own answer"},
        **problem_responses(404, 413, 422),
    },
)
async def notifier_callback(kind: str, request: Request) -> Response:
    """Pass a chat service's request to its notifier, which checks the signature."""
    cls = registry.notifier_class(kind)
    if cls is None:
        raise NotFound(f"No notifier named {kind!r} is installed.", field="kind")
    body = await request.body()
    if len(body) > MAX_CALLBACK_BYTES:
        raise PayloadTooLarge(
            f"A callback body may have at most {MAX_CALLBACK_BYTES} bytes.", field="body"
        )
    settings: Settings = request.app.state.settings
    async with httpx.AsyncClient(timeout=settings.delivery_timeout_seconds) as http:
        notifier = cls(
            NotifierContext(
                http=http,
                user_agent=f"Tocsin/{__version__}",
                options=settings.notifiers.get(kind, {}),
            )
        )
        if not isinstance(notifier, CallbackHandler):
            raise NotFound(f"The {kind} notifier takes no callbacks.", field="kind")
        answer = await notifier.handle_callback(
            InboundRequest(
                method=request.method,
                headers={key.lower(): value for key, value in request.headers.items()},
                query=dict(request.query_params),
                body=body,
            )
        )
    log.info(
        "notifier.callback",
        notifier=kind,
        status_code=answer.status_code,
        action=answer.action,
    )
    return Response(answer.body, status_code=answer.status_code, media_type=answer.media_type)
