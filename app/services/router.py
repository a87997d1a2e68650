from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import select

from app import deletion
from app.api.auth import Principal, Scope, require
from app.api.deps import SessionDep, SettingsDep
from app.api.pagination import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    Page,
    fetch_page,
)
from app.api.retry import TransactionRetryRoute
from app.core.errors import problem_responses
from app.ingest.integration_settings import check_integration_settings
from app.services import service as services
from app.services.models import Integration, Service
from app.services.schemas import (
    IntegrationCreate,
    IntegrationCreated,
    IntegrationRead,
    IntegrationUpdate,
    ServiceCreate,
    ServiceRead,
    ServiceUpdate,
)

router = APIRouter(tags=["services"], route_class=TransactionRetryRoute)

Reader = Annotated[Principal, Depends(require(Scope.config_read))]
Writer = Annotated[Principal, Depends(require(Scope.config_write))]


@router.get(
    "/services", response_model=Page[ServiceRead], responses=problem_responses(400, 401, 403)
)
async def list_services(
    session: SessionDep, _: Reader, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[ServiceRead]:
    """List services, oldest first."""
    rows, next_cursor = await fetch_page(
        session,
        select(Service),
        time_column=Service.created_at,
        id_column=Service.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[ServiceRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/services",
    status_code=status.HTTP_201_CREATED,
    response_model=ServiceRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_service(
    body: ServiceCreate, session: SessionDep, response: Response, _: Writer
) -> ServiceRead:
    """Create a service."""
    service = await services.create_service(session, **body.model_dump())
    response.headers["Location"] = f"/v1/services/{service.id}"
    return ServiceRead.model_validate(service)


@router.get(
    "/services/{service_id}", response_model=ServiceRead, responses=problem_responses(401, 403, 404)
)
async def get_service(service_id: uuid.UUID, session: SessionDep, _: Reader) -> ServiceRead:
    """Get a service."""
    return ServiceRead.model_validate(await services.get_service(session, service_id))


@router.patch(
    "/services/{service_id}",
    response_model=ServiceRead,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def update_service(
    service_id: uuid.UUID, body: ServiceUpdate, session: SessionDep, _: Writer
) -> ServiceRead:
    """Change a service; fields left out keep their values."""
    service = await services.get_service(session, service_id)
    changes = body.model_dump(exclude_unset=True)
    return ServiceRead.model_validate(await services.update_service(session, service, changes))


@router.delete(
    "/services/{service_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
async def delete_service(
    service_id: uuid.UUID,
    session: SessionDep,
    _: Writer,
    force: Annotated[
        bool,
        Query(description="Also delete the service's incidents, with their timelines"),
    ] = False,
) -> None:
    """Delete a service with its integrations and rules. A service with incidents is a 409
    unless force=true, which deletes the incidents too; rules routing to it are a 409."""
    await deletion.delete_service(
        session, await services.get_service(session, service_id), force=force
    )


@router.get(
    "/services/{service_id}/integrations",
    response_model=Page[IntegrationRead],
    responses=problem_responses(400, 401, 403, 404),
)
async def list_integrations(
    service_id: uuid.UUID,
    session: SessionDep,
    _: Reader,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[IntegrationRead]:
    """List the integrations of a service, oldest first. Keys are never shown again."""
    await services.get_service(session, service_id)
    rows, next_cursor = await fetch_page(
        session,
        select(Integration).where(Integration.service_id == service_id),
        time_column=Integration.created_at,
        id_column=Integration.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(
        items=[IntegrationRead.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.post(
    "/services/{service_id}/integrations",
    status_code=status.HTTP_201_CREATED,
    response_model=IntegrationCreated,
    responses=problem_responses(401, 403, 404, 422),
)
async def create_integration(
    service_id: uuid.UUID,
    body: IntegrationCreate,
    session: SessionDep,
    response: Response,
    settings: SettingsDep,
    _: Writer,
) -> IntegrationCreated:
    """Create an integration. The answer holds its key once; store it in the sender."""
    service = await services.get_service(session, service_id)
    check_integration_settings(body.kind, body.settings)
    integration, key = await services.create_integration(
        session, service, name=body.name, kind=body.kind, settings=body.settings
    )
    response.headers["Location"] = f"/v1/integrations/{integration.id}"
    return IntegrationCreated(
        **IntegrationRead.model_validate(integration).model_dump(),
        key=key,
        url=services.ingest_url(settings.public_base_url, integration.kind, key),
    )


@router.get(
    "/integrations/{integration_id}",
    response_model=IntegrationRead,
    responses=problem_responses(401, 403, 404),
)
async def get_integration(
    integration_id: uuid.UUID, session: SessionDep, _: Reader
) -> IntegrationRead:
    """Get an integration."""
    return IntegrationRead.model_validate(await services.get_integration(session, integration_id))


@router.patch(
    "/integrations/{integration_id}",
    response_model=IntegrationRead,
    responses=problem_responses(401, 403, 404, 422),
)
async def update_integration(
    integration_id: uuid.UUID, body: IntegrationUpdate, session: SessionDep, _: Writer
) -> IntegrationRead:
    """Rename, enable or disable an integration, or replace its settings. A disabled
    integration rejects events with 401."""
    integration = await services.get_integration(session, integration_id)
    if body.settings is not None:
        check_integration_settings(integration.kind, body.settings)
    for name, value in body.model_dump(exclude_unset=True).items():
        setattr(integration, name, value)
    await session.flush()
    return IntegrationRead.model_validate(integration)


@router.delete(
    "/integrations/{integration_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_integration(integration_id: uuid.UUID, session: SessionDep, _: Writer) -> None:
    """Delete an integration; its key stops working at once."""
    await session.delete(await services.get_integration(session, integration_id))
