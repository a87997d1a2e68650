from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from app.actions import catalog, registry, sessions, tokens
from app.actions import service as links
from app.actions.links import incident_state
from app.actions.web import error_page, page, read_form
from app.api.auth import Principal, Scope
from app.api.deps import SessionDep, SettingsDep
from app.api.models import ApiKey
from app.core.config import Settings
from app.core.errors import Conflict
from app.core.logging import get_logger
from app.core.security import hash_key
from app.core.time import utcnow
from app.escalation.models import EscalationLevel
from app.incidents import service as incidents
from app.incidents.models import OPEN_STATUSES, Incident
from app.oncall import service as oncall
from app.oncall.models import UserRole
from app.services.models import Service

log = get_logger(__name__)

router = APIRouter(include_in_schema=False)

_LINK_ERRORS: dict[str, tuple[str, str]] = {
    "invalid": (
        "This link is not valid",
        "It was changed or copied incompletely, or it comes from another Tocsin server.",
    ),
    "key_revoked": (
        "This link no longer works",
        "The key that signed it has been revoked.",
    ),
    "expired": (
        "This link has expired",
        "Action links work for a limited time after the page that carried them.",
    ),
    "user_gone": (
        "This link no longer works",
        "The person it was sent to no longer has an account on this Tocsin server.",
    ),
}
_LINK_HINT = "Open the incident from a newer page, or sign in to Tocsin to act on it."


def _link_error(request: Request, error: tokens.LinkError) -> Response:
    title, detail = _LINK_ERRORS[error.reason]
    # The token is a credential: log why it failed, never the token itself.
    log.info("action_link.rejected", reason=error.reason, error=str(error))
    return error_page(
        request,
        status=error.status,
        code=f"link_{error.reason}",
        title=title,
        detail=detail,
        hint=_LINK_HINT,
        field="token",
    )


def _start_link_session(
    response: Response, settings: Settings, link: links.OpenedLink, now: datetime
) -> None:
    """Sign the browser in as the link's user until the link or the session expires."""
    sessions.set_session_cookie(
        response,
        settings,
        kind="user",
        subject_id=link.user.id,
        now=now,
        until=link.claims.expires_at,
    )


@router.get("/a/{token}")
async def show_link(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Show what a link will do. Never changes the incident: scanners fetch links too."""
    now = utcnow()
    try:
        link = await links.open_link(session, settings, token, now=now)
    except tokens.LinkError as error:
        return _link_error(request, error)

    if link.spec == catalog.VIEW:
        response: Response = RedirectResponse(f"/incidents/{link.incident.id}", status_code=303)
    else:
        earlier = await links.previous_use(session, link)
        response = page(
            request,
            "confirm.html",
            {
                "spec": link.spec,
                "incident": link.incident,
                "service": link.service,
                "user": link.user,
                "earlier": earlier,
                "applies": link.spec.applies(incident_state(link.incident)),
                "state_text": registry.describe_state(link.incident, now),
                "viewer": None,
            },
        )
    _start_link_session(response, settings, link, now)
    return response


@router.post("/a/{token}")
async def use_link(
    token: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Perform the link's action once; a repeated use shows the outcome and changes nothing."""
    now = utcnow()
    try:
        link = await links.open_link(session, settings, token, now=now)
    except tokens.LinkError as error:
        return _link_error(request, error)
    if link.spec == catalog.VIEW:
        return RedirectResponse(f"/incidents/{link.incident.id}", status_code=303)
    if link.user.role == UserRole.observer:
        return _observer_page(request, link.user.name)
    try:
        result, earlier = await links.use_link(session, link, now=now)
    except Conflict as error:
        return error_page(
            request, status=409, code="conflict", title="Nothing was changed", detail=error.detail
        )
    outcome = registry.describe_result(result, now)
    if earlier is not None:
        outcome = f"This link was already used at {registry.when(earlier.used_at, now)}. " + (
            registry.describe_state(result.incident, now)
        )
    response = page(
        request,
        "result.html",
        {
            "incident": result.incident,
            "service": link.service,
            "outcome": outcome,
            "changed": result.changed,
            "viewer": None,
        },
    )
    _start_link_session(response, settings, link, now)
    return response


def _observer_page(request: Request, name: str) -> Response:
    return error_page(
        request,
        status=403,
        code="forbidden",
        title="Observers cannot act",
        detail=f"{name} is an observer: observers can view incidents but not act on them.",
    )


def _sign_in_redirect(request: Request) -> Response:
    target = quote(request.url.path, safe="/")
    return RedirectResponse(f"/login?next={target}", status_code=303)


@router.get("/incidents/{incident_id}")
async def show_incident(
    incident_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    now = utcnow()
    viewer = await sessions.load_viewer(request, session, settings, now=now)
    if viewer is None:
        return _sign_in_redirect(request)
    incident = await session.get(Incident, incident_id)
    if incident is None:
        return error_page(
            request,
            status=404,
            code="not_found",
            title="Incident not found",
            detail=f"No incident has the id {incident_id}.",
            field="incident_id",
        )
    service = await session.get(Service, incident.service_id)
    actions = []
    if viewer.can_act:
        state = incident_state(incident)
        actions = [s for s in catalog.applicable(state) if s.changes_state]
    return page(
        request,
        "incident.html",
        {
            "incident": incident,
            "service": service,
            "alerts": await incidents.list_alerts(session, incident.id, incidents.DETAIL_ITEMS),
            "timeline": await incidents.list_timeline(session, incident.id, incidents.DETAIL_ITEMS),
            "actions": actions,
            "state_text": registry.describe_state(incident, now),
            "csrf": sessions.csrf_token(settings, request),
            "viewer": viewer,
        },
    )


@router.post("/incidents/{incident_id}/actions/{action}")
async def act_on_incident(
    incident_id: uuid.UUID,
    action: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    now = utcnow()
    viewer = await sessions.load_viewer(request, session, settings, now=now)
    if viewer is None:
        return _sign_in_redirect(request)
    form = await read_form(request)
    if not sessions.csrf_valid(settings, request, form.get("csrf", "")):
        return error_page(
            request,
            status=403,
            code="csrf_failed",
            title="The form expired",
            detail="Reload the incident page and try again.",
            field="csrf",
        )
    spec = catalog.ACTIONS.get(action)
    if spec is None or not spec.changes_state:
        names = ", ".join(name for name, s in catalog.ACTIONS.items() if s.changes_state)
        return error_page(
            request,
            status=404,
            code="not_found",
            title="Unknown action",
            detail=f"There is no action {action!r}; use one of {names}.",
            field="action",
        )
    if not viewer.can_act:
        return error_page(
            request,
            status=403,
            code="forbidden",
            title="Not allowed",
            detail=f"{viewer.name} may view incidents but not act on them.",
        )
    if await session.get(Incident, incident_id) is None:
        return error_page(
            request,
            status=404,
            code="not_found",
            title="Incident not found",
            detail=f"No incident has the id {incident_id}.",
            field="incident_id",
        )
    try:
        await registry.perform(
            session, incident_id=incident_id, spec=spec, actor=viewer.actor("web")
        )
    except Conflict as error:
        return error_page(
            request, status=409, code="conflict", title="Nothing was changed", detail=error.detail
        )
    return RedirectResponse(f"/incidents/{incident_id}", status_code=303)


async def _first_level_rows(session: SessionDep) -> list[dict[str, Any]]:
    services = (await session.scalars(select(Service).order_by(Service.name))).all()
    rows = []
    for service in services:
        row: dict[str, Any] = {"service": service.name, "people": [], "note": ""}
        rows.append(row)
        if service.escalation_policy_id is None:
            row["note"] = "No escalation policy: nobody is paged."
            continue
        level = await session.scalar(
            select(EscalationLevel)
            .where(EscalationLevel.policy_id == service.escalation_policy_id)
            .order_by(EscalationLevel.position)
            .limit(1)
        )
        if level is None:
            row["note"] = "The escalation policy has no levels: nobody is paged."
            continue
        targets = await oncall.resolve_targets(session, level.targets, at=utcnow())
        people = await oncall.responders(session, targets.user_ids)
        row["people"] = [
            {"name": p.user.name, "methods": [m.kind for m in p.contact_methods]} for p in people
        ]
        if not people:
            row["note"] = "Nobody on the first level can be resolved to a user."
    return rows


@router.get("/oncall")
async def show_oncall(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Who is paged first for each service, and the open incidents."""
    viewer = await sessions.load_viewer(request, session, settings, now=utcnow())
    if viewer is None:
        return _sign_in_redirect(request)
    open_incidents = (
        await session.scalars(
            select(Incident)
            .where(Incident.status.in_(OPEN_STATUSES))
            .order_by(Incident.created_at.desc())
            .limit(100)
        )
    ).all()
    return page(
        request,
        "oncall.html",
        {
            "rows": await _first_level_rows(session),
            "open_incidents": open_incidents,
            "csrf": sessions.csrf_token(settings, request),
            "viewer": viewer,
        },
    )


def _safe_next(value: str) -> str:
    """Only same-site paths: an open redirect would let a phishing link borrow our domain."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/oncall"


def _login_page(
    request: Request, settings: Settings, *, target: str, problem: str = "", status: int = 200
) -> Response:
    token = sessions.new_login_token()
    response = page(
        request,
        "login.html",
        {"next": target, "problem": problem, "csrf": token, "viewer": None},
        status=status,
    )
    sessions.set_login_cookie(response, settings, token)
    return response


@router.get("/login")
async def show_login(request: Request, settings: SettingsDep, next: str = "/oncall") -> Response:
    return _login_page(request, settings, target=_safe_next(next))


@router.post("/login")
async def sign_in(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = await read_form(request)
    target = _safe_next(form.get("next", "/oncall"))
    if not sessions.login_token_valid(request, form.get("csrf", "")):
        return _login_page(
            request,
            settings,
            target=target,
            problem="The sign-in form expired or came from another site. Sign in again.",
            status=403,
        )
    key = await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(form.get("api_key", "").strip()))
    )
    allowed = (
        key is not None
        and key.revoked_at is None
        and Principal(api_key_id=key.id, name=key.name, scopes=frozenset(key.scopes)).allows(
            Scope.incidents_read
        )
    )
    if key is None or not allowed:
        return _login_page(
            request,
            settings,
            target=target,
            problem="The API key is unknown, revoked or lacks the incidents:read scope.",
            status=401,
        )
    response = RedirectResponse(target, status_code=303)
    sessions.set_session_cookie(response, settings, kind="api_key", subject_id=key.id, now=utcnow())
    response.delete_cookie(sessions.LOGIN_COOKIE_NAME, path="/login")
    return response


@router.post("/logout")
async def sign_out(request: Request, settings: SettingsDep) -> Response:
    form = await read_form(request)
    if not sessions.csrf_valid(settings, request, form.get("csrf", "")):
        return error_page(
            request,
            status=403,
            code="csrf_failed",
            title="The form expired",
            detail="Reload the page and try again.",
            field="csrf",
        )
    response = RedirectResponse("/login", status_code=303)
    sessions.clear_session_cookie(response)
    return response
