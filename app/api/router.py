"""The /v1 REST API: every domain's router, mounted under one prefix."""

from fastapi import APIRouter

from app.actions.identities import router as chat_identities_router
from app.api.keys import router as api_keys_router
from app.core.errors import problem_responses
from app.escalation.router import router as escalation_router
from app.incidents.router import router as incidents_router
from app.ingest.api import router as ingest_api_router
from app.oncall.calendar_router import router as calendars_router
from app.oncall.router import router as oncall_router
from app.oncall.schedules_router import router as schedules_router
from app.oncall.teams_router import router as teams_router
from app.rules.maintenance_router import router as maintenance_router
from app.rules.router import router as rules_router
from app.services.router import router as services_router

# Every /v1 route needs an API key, validates its input and needs the database.
api_router = APIRouter(prefix="/v1", responses=problem_responses(401, 403, 422, 503))
api_router.include_router(incidents_router)
api_router.include_router(services_router)
api_router.include_router(oncall_router)
api_router.include_router(escalation_router)
api_router.include_router(api_keys_router)
api_router.include_router(ingest_api_router)
api_router.include_router(chat_identities_router)
api_router.include_router(schedules_router)
api_router.include_router(teams_router)
api_router.include_router(calendars_router)
api_router.include_router(rules_router)
api_router.include_router(maintenance_router)
