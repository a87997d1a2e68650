"""Import every ORM model, so the metadata is complete for Alembic and for mappers."""

from app.api.models import ApiKey
from app.core.models import Base
from app.escalation.models import EscalationLevel, EscalationPolicy
from app.incidents.models import Alert, Event, Incident, TimelineEntry
from app.notify.models import DeliveryAttempt, Notification
from app.oncall.models import ContactMethod, User
from app.rules.models import (
    AlertDecision,
    MaintenanceWindow,
    PagingHold,
    PriorityMatrixSetting,
    Rule,
    RuleAuditEntry,
    RuleRevision,
    Silence,
    SilencedAlert,
)
from app.services.models import Integration, Service

__all__ = [
    "Alert",
    "AlertDecision",
    "ApiKey",
    "Base",
    "ContactMethod",
    "DeliveryAttempt",
    "EscalationLevel",
    "EscalationPolicy",
    "Event",
    "Incident",
    "Integration",
    "MaintenanceWindow",
    "Notification",
    "PagingHold",
    "PriorityMatrixSetting",
    "Rule",
    "RuleAuditEntry",
    "RuleRevision",
    "Service",
    "Silence",
    "SilencedAlert",
    "TimelineEntry",
    "User",
]
