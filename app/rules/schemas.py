from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from app.core.schemas import RequestModel
from app.incidents.schemas import Actor

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Priority = Literal["P1", "P2", "P3", "P4", "P5"]
_LEVEL_NAMES = {1: "high", 2: "medium", 3: "low"}


def _level_name(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return _LEVEL_NAMES.get(value, value)
    return value.strip().lower() if isinstance(value, str) else value


Level = Annotated[
    Literal["high", "medium", "low"],
    BeforeValidator(_level_name),
    Field(description="1 or high, 2 or medium, 3 or low"),
]


class TimeRangeIn(RequestModel):
    start_time: str = Field(pattern=r"^\d{2}:\d{2}$", examples=["09:00"])
    end_time: str = Field(pattern=r"^\d{2}:\d{2}$", examples=["17:30"], description="Up to 24:00")


class TimeIntervalIn(RequestModel):
    time_zone: str = Field(default="UTC", description="IANA name, e.g. Europe/Berlin")
    weekdays: list[str] = Field(
        default_factory=list,
        max_length=7,
        description="Days or ranges such as monday or monday:friday; empty means every day",
    )
    times: list[TimeRangeIn] = Field(
        default_factory=list, max_length=24, description="Empty means all day"
    )


class ConditionsIn(RequestModel):
    matchers: list[str] = Field(
        default_factory=list,
        max_length=50,
        description='Alertmanager matchers that must all match, e.g. severity=~"critical|error"',
    )
    time: list[TimeIntervalIn] = Field(
        default_factory=list, max_length=20, description="The alert must fall in one of these"
    )
    cel: str | None = Field(
        default=None, max_length=4096, description="A CEL expression that must be true"
    )


class RouteIn(RequestModel):
    service_id: uuid.UUID | None = None
    escalation_policy_id: uuid.UUID | None = None


class ActionsIn(RequestModel):
    impact: Level | None = None
    urgency: Level | None = None
    priority: Priority | None = Field(default=None, description="Overrides the matrix")
    route: RouteIn | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    title: str | None = Field(
        default=None,
        max_length=1000,
        description="A Jinja2 template, e.g. {{ labels.alertname }} on {{ labels.instance }}",
    )
    suppress: bool = Field(default=False, description="Record the alert but page nobody")
    drop: bool = Field(default=False, description="Discard the event; only the event log keeps it")


class RuleCreate(RequestModel):
    model_config = ConfigDict(populate_by_name=True)

    name: Name
    description: str = Field(default="", max_length=10_000)
    service_id: uuid.UUID | None = Field(default=None, description="Null for a global rule")
    position: int | None = Field(
        default=None, ge=0, description="0-based place in its scope; the end by default"
    )
    enabled: bool = True
    continue_: bool = Field(
        default=False,
        alias="continue",
        description="After matching, go on to the next rule instead of stopping",
    )
    conditions: ConditionsIn = Field(default_factory=ConditionsIn)
    actions: ActionsIn = Field(default_factory=ActionsIn)


class RuleDraft(RuleCreate):
    """A rule of a draft rule set, for explain and replay; nothing is stored."""

    id: uuid.UUID | None = Field(default=None, description="Keeps a stored rule's identity")


class RuleUpdate(RequestModel):
    model_config = ConfigDict(populate_by_name=True)

    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    service_id: uuid.UUID | None = Field(
        default=None, description="Moves the rule to another scope; null makes it global"
    )
    position: int | None = Field(default=None, ge=0)
    enabled: bool | None = None
    continue_: bool | None = Field(default=None, alias="continue")
    conditions: ConditionsIn | None = None
    actions: ActionsIn | None = None


class RuleRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: uuid.UUID
    service_id: uuid.UUID | None
    position: int
    name: str
    description: str
    enabled: bool
    continue_: bool = Field(alias="continue")
    version: int
    conditions: dict[str, Any]
    actions: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class RuleReorder(RequestModel):
    service_id: uuid.UUID | None = Field(default=None, description="The scope; null for global")
    rule_ids: list[uuid.UUID] = Field(
        max_length=1000, description="Every rule of the scope, in the new order"
    )


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    actor: Actor
    entity_type: str = Field(description="rule, priority_matrix, maintenance_window or silence")
    entity_id: uuid.UUID | None
    action: str = Field(description="created, updated, deleted, reordered or expired")
    version: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class MatrixRow(RequestModel):
    """Priorities for one impact, by urgency."""

    high: Priority
    medium: Priority
    low: Priority


class Matrix(RequestModel):
    """Rows by impact."""

    high: MatrixRow
    medium: MatrixRow
    low: MatrixRow


class SeverityDefault(RequestModel):
    impact: Level
    urgency: Level


class SeverityDefaults(RequestModel):
    critical: SeverityDefault
    error: SeverityDefault
    warning: SeverityDefault
    info: SeverityDefault


class PriorityMatrixIn(RequestModel):
    matrix: Matrix
    severity_defaults: SeverityDefaults


class PriorityMatrixRead(PriorityMatrixIn):
    version: int = Field(description="0 while the built-in ITIL defaults apply")
    updated_at: datetime | None


class ConditionResultRead(BaseModel):
    condition: str
    matched: bool
    detail: str


class RuleTraceRead(BaseModel):
    rule_id: uuid.UUID
    version: int
    name: str
    scope: str = Field(description="global or service")
    service_id: uuid.UUID | None
    position: int
    enabled: bool
    reached: bool = Field(description="False when an earlier rule stopped its phase")
    matched: bool
    applied: bool
    conditions: list[ConditionResultRead]
    note: str


class AppliedRuleRead(BaseModel):
    rule_id: uuid.UUID
    version: int
    name: str
    actions: dict[str, Any]


class DecisionRead(BaseModel):
    impact: str
    urgency: str
    priority: str
    impact_source: str = Field(description="rule or severity")
    urgency_source: str = Field(description="rule or severity")
    priority_source: str = Field(description="rule or matrix")
    service_id: uuid.UUID
    escalation_policy_id: uuid.UUID | None
    tags: list[str]
    title: str
    suppressed: bool
    dropped: bool
    rules: list[AppliedRuleRead]
    notes: list[str]


class SilenceBrief(BaseModel):
    id: uuid.UUID
    comment: str
    created_by: Actor
    ends_at: datetime | None
    until_resolved: bool


class WindowBrief(BaseModel):
    id: uuid.UUID
    name: str
    ends_at: datetime


class ExplainIn(RequestModel):
    format: str | None = Field(
        default=None,
        description="The ingest format of payload; defaults to the integration's",
        examples=["alertmanager"],
    )
    integration_id: uuid.UUID | None = Field(
        default=None, description="Explain as if the payload arrived on this integration"
    )
    service_id: uuid.UUID | None = Field(
        default=None, description="Without an integration: the service the alert is for"
    )
    payload: dict[str, Any] = Field(description="The body as the sender would post it")
    at: AwareDatetime | None = Field(default=None, description="The time to assume; now by default")
    rules: list[RuleDraft] | None = Field(
        default=None, max_length=1000, description="A draft rule set to use instead of the stored"
    )


class ExplainedEvent(BaseModel):
    event: dict[str, Any] = Field(description="The normalized event the rules see")
    rules: list[RuleTraceRead] = Field(description="Every rule considered, in order")
    decision: DecisionRead
    silences: list[SilenceBrief]
    maintenance_window: WindowBrief | None
    pages: bool = Field(description="Whether this alert would page")


class ExplainOut(BaseModel):
    format: str
    service_id: uuid.UUID
    integration_id: uuid.UUID | None
    at: datetime
    events: list[ExplainedEvent]


class ReplayIn(RequestModel):
    since: AwareDatetime = Field(description="Alerts first seen at or after this instant")
    until: AwareDatetime = Field(description="Alerts first seen before this instant")
    service_id: uuid.UUID | None = Field(default=None, description="Only alerts of this service")
    rules: list[RuleDraft] | None = Field(
        default=None,
        max_length=1000,
        description="The draft rule set, all scopes; null replays the stored rules",
    )
    priority_matrix: PriorityMatrixIn | None = Field(
        default=None, description="A draft matrix; null uses the stored one"
    )
    limit: int = Field(default=100, ge=0, le=1000, description="Changed incidents listed at most")


class ReplayState(BaseModel):
    priority: str = Field(description="P1 to P5, or - when every alert is dropped")
    service_id: uuid.UUID | None
    escalation_policy_id: uuid.UUID | None
    suppressed: bool
    dropped: bool


class ReplayIncident(BaseModel):
    incident_id: uuid.UUID
    number: int
    title: str
    alerts: int = Field(description="Alerts of the incident in the replayed range")
    changes: list[str] = Field(description="priority, route, suppression or dropped")
    current: ReplayState
    draft: ReplayState
    pages_sent: int
    paging: str | None = Field(
        description="would_not_page, would_page or null when paging would not change"
    )


class ReplayChanges(BaseModel):
    priority: int
    route: int
    suppression: int
    dropped: int


class ReplayPages(BaseModel):
    incidents_paged: int
    pages_sent: int
    incidents_not_paging_under_draft: int
    pages_not_sent_under_draft: int
    incidents_paging_under_draft: int = Field(
        description="Incidents that paged nobody because a rule suppressed them and would page"
    )


class ReplayOut(BaseModel):
    since: datetime
    until: datetime
    alerts_evaluated: int
    alerts_without_decision: int = Field(
        description="Alerts stored before decisions were recorded; compared with their incident"
    )
    incidents_evaluated: int
    incidents_changed: int
    changes: ReplayChanges = Field(description="Incidents per kind of change")
    pages: ReplayPages
    incidents: list[ReplayIncident] = Field(description="Changed incidents, oldest first")
    incidents_truncated: bool
    elapsed_ms: int


class MaintenanceWindowCreate(RequestModel):
    service_id: uuid.UUID
    name: Name
    description: str = Field(default="", max_length=10_000)
    starts_at: AwareDatetime = Field(description="Start of the first (or only) occurrence")
    ends_at: AwareDatetime = Field(description="End of the first (or only) occurrence")
    time_zone: str = Field(default="UTC", description="IANA zone the occurrences follow")
    rrule: str | None = Field(
        default=None,
        max_length=1000,
        description="An iCalendar RRULE such as FREQ=WEEKLY;BYDAY=SU, without DTSTART",
    )


class MaintenanceWindowUpdate(RequestModel):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    time_zone: str | None = None
    rrule: str | None = Field(default=None, max_length=1000, description="Empty text removes it")


class OccurrenceRead(BaseModel):
    starts_at: datetime
    ends_at: datetime


class MaintenanceWindowRead(BaseModel):
    id: uuid.UUID
    service_id: uuid.UUID
    name: str
    description: str
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    rrule: str | None
    created_by: Actor
    created_at: datetime
    updated_at: datetime
    active: bool = Field(description="Whether an occurrence covers the present")
    current_or_next: OccurrenceRead | None = Field(
        description="The occurrence in progress, else the next one; null when none is left"
    )


class SilenceCreate(RequestModel):
    service_id: uuid.UUID | None = Field(default=None, description="Only this service's alerts")
    matchers: list[str] = Field(
        min_length=1, max_length=50, description='Alertmanager matchers, e.g. alertname="Disk"'
    )
    starts_at: AwareDatetime | None = Field(default=None, description="Now by default")
    ends_at: AwareDatetime | None = Field(
        default=None, description="Required unless until_resolved"
    )
    until_resolved: bool = Field(
        default=False, description="End when every alert the silence matched has resolved"
    )
    comment: str = Field(min_length=1, max_length=2000, description="Why")


class SilenceUpdate(RequestModel):
    ends_at: AwareDatetime | None = None
    comment: str | None = Field(default=None, min_length=1, max_length=2000)


class SilenceRead(BaseModel):
    id: uuid.UUID
    service_id: uuid.UUID | None
    matchers: list[str]
    starts_at: datetime
    ends_at: datetime | None
    until_resolved: bool
    expired_at: datetime | None
    status: str = Field(description="pending, active or expired")
    created_by: Actor
    comment: str
    silenced_alerts: int = Field(description="Alerts the silence has matched")
    created_at: datetime
    updated_at: datetime
