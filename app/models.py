"""Import every ORM model, so the metadata is complete for Alembic and for mappers."""

from app.actions.models import ActionLinkUse, ChatIdentity
from app.api.models import ApiKey
from app.core.models import Base
from app.escalation.models import EscalationLevel, EscalationPolicy
from app.incidents.models import (
    Alert,
    Event,
    Incident,
    IncidentSubscriber,
    Postmortem,
    TimelineEntry,
)
from app.ingest.models import ChangeEvent, Heartbeat
from app.notify.models import DeliveryAttempt, Notification
from app.oncall.models import (
    ContactMethod,
    NotificationRule,
    Schedule,
    ScheduleLayer,
    ScheduleLayerMember,
    ScheduleOverride,
    Team,
    TeamMember,
    User,
)
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
    "ActionLinkUse",
    "Alert",
    "AlertDecision",
    "ApiKey",
    "Base",
    "ChangeEvent",
    "ChatIdentity",
    "ContactMethod",
    "DeliveryAttempt",
    "EscalationLevel",
    "EscalationPolicy",
    "Event",
    "Heartbeat",
    "Incident",
    "IncidentSubscriber",
    "Integration",
    "MaintenanceWindow",
    "Notification",
    "NotificationRule",
    "PagingHold",
    "Postmortem",
    "PriorityMatrixSetting",
    "Rule",
    "RuleAuditEntry",
    "RuleRevision",
    "Schedule",
    "ScheduleLayer",
    "ScheduleLayerMember",
    "ScheduleOverride",
    "Service",
    "Silence",
    "SilencedAlert",
    "Team",
    "TeamMember",
    "TimelineEntry",
    "User",
]
