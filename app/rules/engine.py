"""The rule engine: ordered rules over one normalized alert give its classification. No I/O.

Global rules run first, in order, then the rules of the service the alert belongs to
after any route a global rule chose. A matching rule applies its actions and, unless it
has ``continue``, ends its phase (global rules stopping never skips the service's own
rules). When two matching rules set the same field, the later one wins; tags add up;
``suppress`` cannot be undone; ``drop`` ends evaluation at once. A ``route`` set by a
service rule moves the alert without running the target service's rules, so routes
cannot loop.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.core.text import truncate
from app.incidents.events import AlertEvent, Severity
from app.rules.cel import CelCondition, CelError, CelInputs
from app.rules.matchers import Matcher, MatcherError, parse_matchers
from app.rules.priority import PRIORITIES, Impact, PriorityMatrix, Urgency, parse_level
from app.rules.timeintervals import TimeInterval, TimeIntervalError, parse_interval
from app.rules.title import TitleTemplateError, compile_title

MAX_TITLE_LENGTH = 1024
# Field names a matcher can use besides labels; any other bare name is a label.
FIELDS = (
    "severity",
    "severity_raw",
    "source",
    "summary",
    "dedup_key",
    "action",
    "integration",
    "integration_kind",
    "service",
)


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """The view of one event that rules match: the normalized event and where it arrived."""

    action: str
    dedup_key: str
    summary: str
    severity: Severity
    severity_raw: str | None
    source: str | None
    labels: Mapping[str, str]
    details: Mapping[str, Any]
    integration: str
    integration_kind: str
    service_id: uuid.UUID
    service: str
    # The CEL values of the alert at the instant of the last evaluation, shared by its rules.
    _cel_inputs: dict[datetime, CelInputs] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_event(
        cls,
        event: AlertEvent,
        *,
        integration: str,
        integration_kind: str,
        service_id: uuid.UUID,
        service: str,
    ) -> AlertFacts:
        return cls(
            action=event.action.value,
            dedup_key=event.dedup_key,
            summary=event.summary,
            severity=event.severity,
            severity_raw=event.severity_raw,
            source=event.source,
            labels=event.labels,
            details=event.details,
            integration=integration,
            integration_kind=integration_kind,
            service_id=service_id,
            service=service,
        )

    def value_of(self, name: str) -> str:
        """Return the text a matcher compares: a field, a label or a value in the details.

        Names are a field, ``labels.X``, ``details.a.b`` or a bare label name.

        Missing values are the empty string, as in Alertmanager.
        """
        if name.startswith("labels."):
            return self.labels.get(name[7:], "")
        if name.startswith("details."):
            return _detail_text(self.details, name[8:].split("."))
        if name in FIELDS:
            value = getattr(self, name)
            return "" if value is None else str(value)
        return self.labels.get(name, "")

    def cel_inputs(self, at: datetime) -> CelInputs:
        """Return the alert's CEL values at ``at``, converted once for all its rules."""
        inputs = self._cel_inputs.get(at)
        if inputs is None:
            self._cel_inputs.clear()
            inputs = self._cel_inputs[at] = CelInputs(self.variables(at))
        return inputs

    def variables(self, at: datetime) -> dict[str, Any]:
        """Return the values CEL expressions and title templates use, by name."""
        return {
            "labels": dict(self.labels),
            "details": dict(self.details),
            "severity": self.severity.value,
            "severity_raw": self.severity_raw or "",
            "source": self.source or "",
            "summary": self.summary,
            "dedup_key": self.dedup_key,
            "action": self.action,
            "integration": self.integration,
            "integration_kind": self.integration_kind,
            "service": self.service,
            "service_id": str(self.service_id),
            "now": at,
        }

    def to_document(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "dedup_key": self.dedup_key,
            "summary": self.summary,
            "severity": self.severity.value,
            "severity_raw": self.severity_raw,
            "source": self.source,
            "labels": dict(self.labels),
            "details": dict(self.details),
            "integration": self.integration,
            "integration_kind": self.integration_kind,
            "service_id": str(self.service_id),
            "service": self.service,
        }


def _detail_text(details: Any, path: list[str]) -> str:
    value = details
    for part in path:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return ""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class RuleCompileError(ValueError):
    """A rule that cannot be compiled; ``field`` is the dotted path inside the rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class RuleActions:
    impact: Impact | None = None
    urgency: Urgency | None = None
    priority: str | None = None
    route_service_id: uuid.UUID | None = None
    route_escalation_policy_id: uuid.UUID | None = None
    tags: tuple[str, ...] = ()
    title: str | None = None
    suppress: bool = False
    drop: bool = False

    def to_document(self) -> dict[str, Any]:
        """Return the actions that are set, in the API's shape."""
        document: dict[str, Any] = {}
        if self.impact is not None:
            document["impact"] = self.impact.name
        if self.urgency is not None:
            document["urgency"] = self.urgency.name
        if self.priority is not None:
            document["priority"] = self.priority
        route = {}
        if self.route_service_id is not None:
            route["service_id"] = str(self.route_service_id)
        if self.route_escalation_policy_id is not None:
            route["escalation_policy_id"] = str(self.route_escalation_policy_id)
        if route:
            document["route"] = route
        if self.tags:
            document["tags"] = list(self.tags)
        if self.title is not None:
            document["title"] = self.title
        if self.suppress:
            document["suppress"] = True
        if self.drop:
            document["drop"] = True
        return document


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """A compiled rule, ready to evaluate."""

    id: uuid.UUID
    version: int
    name: str
    service_id: uuid.UUID | None
    position: int
    enabled: bool
    continue_: bool
    matchers: tuple[Matcher, ...]
    time: tuple[TimeInterval, ...]
    cel: CelCondition | None
    actions: RuleActions
    title_template: Any = None

    @property
    def scope(self) -> str:
        return "global" if self.service_id is None else "service"


def _uuid_or_none(value: Any, field: str) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError as exc:
        raise RuleCompileError(field, f"{value!r} is not a UUID") from exc


def compile_actions(spec: Mapping[str, Any]) -> tuple[RuleActions, Any]:
    """Check and compile the ``actions`` part of a rule; return it with its title template."""
    levels: dict[str, Any] = {}
    for name, kind in (("impact", Impact), ("urgency", Urgency)):
        if spec.get(name) is None:
            levels[name] = None
            continue
        try:
            levels[name] = parse_level(spec[name], kind, name)
        except ValueError as exc:
            raise RuleCompileError(f"actions.{name}", str(exc).partition(": ")[2]) from exc
    priority = spec.get("priority")
    if priority is not None:
        priority = str(priority).upper()
        if priority not in PRIORITIES:
            raise RuleCompileError("actions.priority", f"expected P1 to P5, got {priority!r}")
    route = spec.get("route") or {}
    actions = RuleActions(
        impact=levels["impact"],
        urgency=levels["urgency"],
        priority=priority,
        route_service_id=_uuid_or_none(route.get("service_id"), "actions.route.service_id"),
        route_escalation_policy_id=_uuid_or_none(
            route.get("escalation_policy_id"), "actions.route.escalation_policy_id"
        ),
        tags=tuple(dict.fromkeys(str(tag) for tag in spec.get("tags") or ())),
        title=spec.get("title"),
        suppress=bool(spec.get("suppress")),
        drop=bool(spec.get("drop")),
    )
    if actions.drop and actions.to_document().keys() - {"drop"}:
        raise RuleCompileError(
            "actions.drop", "drop discards the event, so it cannot be combined with other actions"
        )
    template = None
    if actions.title is not None:
        try:
            template = compile_title(actions.title)
        except TitleTemplateError as exc:
            raise RuleCompileError("actions.title", str(exc)) from exc
    return actions, template


def compile_conditions(
    spec: Mapping[str, Any],
) -> tuple[tuple[Matcher, ...], tuple[TimeInterval, ...], CelCondition | None]:
    matchers: list[Matcher] = []
    for index, text in enumerate(spec.get("matchers") or ()):
        try:
            matchers.extend(parse_matchers(str(text)))
        except MatcherError as exc:
            raise RuleCompileError(f"conditions.matchers.{index}", str(exc)) from exc
    intervals = []
    for index, interval in enumerate(spec.get("time") or ()):
        try:
            intervals.append(parse_interval(dict(interval), f"conditions.time.{index}"))
        except TimeIntervalError as exc:
            raise RuleCompileError(exc.field, exc.message) from exc
    cel = None
    if spec.get("cel"):
        try:
            cel = CelCondition(str(spec["cel"]))
        except CelError as exc:
            raise RuleCompileError("conditions.cel", str(exc)) from exc
    return tuple(matchers), tuple(intervals), cel


def compile_rule(spec: Mapping[str, Any]) -> Rule:
    """Compile a stored or submitted rule, a mapping in the API's shape plus id and version."""
    matchers, intervals, cel = compile_conditions(spec.get("conditions") or {})
    actions, template = compile_actions(spec.get("actions") or {})
    return Rule(
        id=_uuid_or_none(spec.get("id"), "id") or uuid.UUID(int=0),
        version=int(spec.get("version") or 0),
        name=str(spec.get("name") or ""),
        service_id=_uuid_or_none(spec.get("service_id"), "service_id"),
        position=int(spec.get("position") or 0),
        enabled=bool(spec.get("enabled", True)),
        continue_=bool(spec.get("continue", False)),
        matchers=matchers,
        time=intervals,
        cel=cel,
        actions=actions,
        title_template=template,
    )


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled rules in evaluation order, with the priority matrix they use."""

    global_rules: tuple[Rule, ...]
    service_rules: Mapping[uuid.UUID, tuple[Rule, ...]]
    matrix: PriorityMatrix
    # Whether an enabled rule has a CEL condition, whose cost the sender sways.
    has_cel: bool = False

    @classmethod
    def build(cls, rules: Iterable[Rule], matrix: PriorityMatrix | None = None) -> RuleSet:
        by_scope: dict[uuid.UUID | None, list[Rule]] = {}
        for rule in rules:
            by_scope.setdefault(rule.service_id, []).append(rule)
        for members in by_scope.values():
            members.sort(key=lambda rule: rule.position)
        has_cel = any(
            rule.enabled and rule.cel is not None
            for members in by_scope.values()
            for rule in members
        )
        return cls(
            global_rules=tuple(by_scope.pop(None, [])),
            service_rules={key: tuple(value) for key, value in by_scope.items() if key},
            matrix=matrix or PriorityMatrix.default(),
            has_cel=has_cel,
        )

    @property
    def rule_count(self) -> int:
        return len(self.global_rules) + sum(len(rules) for rules in self.service_rules.values())


@dataclass(frozen=True, slots=True)
class AppliedRule:
    rule_id: uuid.UUID
    version: int
    name: str
    actions: dict[str, Any]

    def to_document(self) -> dict[str, Any]:
        return {
            "rule_id": str(self.rule_id),
            "version": self.version,
            "name": self.name,
            "actions": self.actions,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The classification and route of one alert."""

    impact: Impact
    urgency: Urgency
    priority: str
    # Origin of each value: "rule", "severity" (the severity default) or "matrix".
    impact_source: str
    urgency_source: str
    priority_source: str
    # The service the alert's incident belongs to, after routing.
    service_id: uuid.UUID
    # Set only by a route action; otherwise the service's own policy applies.
    escalation_policy_id: uuid.UUID | None
    tags: tuple[str, ...]
    title: str
    suppressed: bool
    dropped: bool
    applied: tuple[AppliedRule, ...]
    # Problems met while applying actions, such as a title template that failed.
    notes: tuple[str, ...] = ()

    @property
    def paging_urgency(self) -> str:
        """High-urgency incidents page at once; the others may wait (notification rules)."""
        return "high" if self.urgency == Urgency.high else "low"

    @property
    def routed(self) -> bool:
        return any("route" in rule.actions for rule in self.applied)

    def to_document(self) -> dict[str, Any]:
        return {
            "impact": self.impact.name,
            "urgency": self.urgency.name,
            "priority": self.priority,
            "impact_source": self.impact_source,
            "urgency_source": self.urgency_source,
            "priority_source": self.priority_source,
            "service_id": str(self.service_id),
            "escalation_policy_id": (
                str(self.escalation_policy_id) if self.escalation_policy_id else None
            ),
            "tags": list(self.tags),
            "title": self.title,
            "suppressed": self.suppressed,
            "dropped": self.dropped,
            "rules": [rule.to_document() for rule in self.applied],
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class ConditionResult:
    condition: str
    matched: bool
    detail: str


@dataclass(slots=True)
class RuleTrace:
    """The outcome of one rule, for the explain endpoint."""

    rule_id: uuid.UUID
    version: int
    name: str
    scope: str
    service_id: uuid.UUID | None
    position: int
    enabled: bool
    # False when an earlier rule of its phase stopped evaluation, or a drop ended it.
    reached: bool
    matched: bool
    applied: bool
    conditions: list[ConditionResult] = field(default_factory=list)
    note: str = ""

    def to_document(self) -> dict[str, Any]:
        return {
            "rule_id": str(self.rule_id),
            "version": self.version,
            "name": self.name,
            "scope": self.scope,
            "service_id": str(self.service_id) if self.service_id else None,
            "position": self.position,
            "enabled": self.enabled,
            "reached": self.reached,
            "matched": self.matched,
            "applied": self.applied,
            "conditions": [
                {"condition": c.condition, "matched": c.matched, "detail": c.detail}
                for c in self.conditions
            ],
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Evaluation:
    decision: Decision
    # Every rule considered, in order; only when evaluated with explain=True.
    trace: tuple[RuleTrace, ...] = ()


def _matcher_result(matcher: Matcher, facts: AlertFacts) -> ConditionResult:
    actual = facts.value_of(matcher.name)
    matched = matcher.matches(actual)
    text = "missing (empty)" if actual == "" else json.dumps(actual, ensure_ascii=False)
    return ConditionResult(f"matcher {matcher}", matched, f"{matcher.name} is {text}")


def _time_result(intervals: Sequence[TimeInterval], at: datetime) -> ConditionResult:
    matched = any(interval.contains(at) for interval in intervals)
    expected = "; ".join(interval.describe() for interval in intervals)
    local = at.astimezone(intervals[0].zone)
    detail = f"it is {local:%A %H:%M} in {intervals[0].time_zone}"
    return ConditionResult(f"time {expected}", matched, detail)


def _cel_result(condition: CelCondition, facts: AlertFacts, at: datetime) -> ConditionResult:
    result = condition.evaluate(facts.cel_inputs(at))
    detail = result.error or ("true" if result.matched else "false")
    return ConditionResult(f"cel {condition.text}", result.matched, detail)


def rule_matches(rule: Rule, facts: AlertFacts, at: datetime) -> bool:
    """Check the conditions, cheapest first, stopping at the first that fails."""
    for matcher in rule.matchers:
        if not matcher.matches(facts.value_of(matcher.name)):
            return False
    if rule.time and not any(interval.contains(at) for interval in rule.time):
        return False
    return rule.cel is None or rule.cel.evaluate(facts.cel_inputs(at)).matched


def explain_conditions(rule: Rule, facts: AlertFacts, at: datetime) -> list[ConditionResult]:
    """Evaluate every condition of ``rule``, so the explanation shows each one."""
    results = [_matcher_result(matcher, facts) for matcher in rule.matchers]
    if rule.time:
        results.append(_time_result(rule.time, at))
    if rule.cel is not None:
        results.append(_cel_result(rule.cel, facts, at))
    return results


@dataclass(slots=True)
class _Outcome:
    impact: Impact | None = None
    urgency: Urgency | None = None
    priority: str | None = None
    service_id: uuid.UUID | None = None
    escalation_policy_id: uuid.UUID | None = None
    tags: dict[str, None] = field(default_factory=dict)
    title: str | None = None
    suppressed: bool = False
    dropped: bool = False
    applied: list[AppliedRule] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def apply(self, rule: Rule, facts: AlertFacts, at: datetime) -> None:
        actions = rule.actions
        if actions.impact is not None:
            self.impact = actions.impact
        if actions.urgency is not None:
            self.urgency = actions.urgency
        if actions.priority is not None:
            self.priority = actions.priority
        if actions.route_service_id is not None:
            self.service_id = actions.route_service_id
        if actions.route_escalation_policy_id is not None:
            self.escalation_policy_id = actions.route_escalation_policy_id
        for tag in actions.tags:
            self.tags[tag] = None
        if rule.title_template is not None:
            self.title = self._render_title(rule, facts, at)
        self.suppressed = self.suppressed or actions.suppress
        self.dropped = actions.drop
        self.applied.append(AppliedRule(rule.id, rule.version, rule.name, actions.to_document()))

    def _render_title(self, rule: Rule, facts: AlertFacts, at: datetime) -> str | None:
        try:
            text = str(rule.title_template.render(facts.variables(at))).strip()
        except Exception as exc:
            # A template is user input run on every alert: whatever it raises (division by
            # zero, a bad filter argument) must cost the title, never the alert.
            self.notes.append(f"title template of rule {rule.name!r} failed: {exc}")
            return self.title
        if not text:
            self.notes.append(f"title template of rule {rule.name!r} rendered empty text")
            return self.title
        return truncate(text, MAX_TITLE_LENGTH)


def _run_phase(
    rules: Sequence[Rule],
    outcome: _Outcome,
    facts: AlertFacts,
    at: datetime,
    traces: list[RuleTrace] | None,
) -> None:
    stopped_by: Rule | None = None
    for rule in rules:
        reached = stopped_by is None and not outcome.dropped
        if traces is None:
            if not reached:
                return
            if rule.enabled and rule_matches(rule, facts, at):
                outcome.apply(rule, facts, at)
                if not rule.continue_:
                    stopped_by = rule
            continue

        conditions = explain_conditions(rule, facts, at)
        matched = rule.enabled and all(result.matched for result in conditions)
        trace = RuleTrace(
            rule_id=rule.id,
            version=rule.version,
            name=rule.name,
            scope=rule.scope,
            service_id=rule.service_id,
            position=rule.position,
            enabled=rule.enabled,
            reached=reached,
            matched=matched,
            applied=False,
            conditions=conditions,
        )
        if not rule.enabled:
            trace.note = "disabled"
        elif not reached:
            trace.note = (
                "not reached: the event was dropped"
                if outcome.dropped
                else f"not reached: rule {stopped_by.name!r} matched without continue"
                if stopped_by
                else "not reached"
            )
        elif matched:
            outcome.apply(rule, facts, at)
            trace.applied = True
            if outcome.dropped:
                trace.note = "applied: the event is dropped"
            elif rule.continue_:
                trace.note = "applied; continue to the next rule"
            else:
                trace.note = "applied; later rules of this phase are skipped"
                stopped_by = rule
        else:
            failed = next(result for result in conditions if not result.matched)
            trace.note = f"not matched: {failed.condition} failed ({failed.detail})"
        traces.append(trace)


def evaluate(
    rule_set: RuleSet, facts: AlertFacts, at: datetime, *, explain: bool = False
) -> Evaluation:
    """Classify one alert at instant ``at`` (the time used by time conditions)."""
    outcome = _Outcome()
    traces: list[RuleTrace] | None = [] if explain else None
    _run_phase(rule_set.global_rules, outcome, facts, at, traces)
    service_id = outcome.service_id or facts.service_id
    _run_phase(rule_set.service_rules.get(service_id, ()), outcome, facts, at, traces)
    return Evaluation(decision=_decide(rule_set.matrix, facts, outcome), trace=tuple(traces or ()))


def _decide(matrix: PriorityMatrix, facts: AlertFacts, outcome: _Outcome) -> Decision:
    default_impact, default_urgency = matrix.severity_defaults[facts.severity]
    impact = outcome.impact or default_impact
    urgency = outcome.urgency or default_urgency
    return Decision(
        impact=impact,
        urgency=urgency,
        priority=outcome.priority or matrix.priority_for(impact, urgency),
        impact_source="rule" if outcome.impact else "severity",
        urgency_source="rule" if outcome.urgency else "severity",
        priority_source="rule" if outcome.priority else "matrix",
        service_id=outcome.service_id or facts.service_id,
        escalation_policy_id=outcome.escalation_policy_id,
        tags=tuple(outcome.tags),
        title=outcome.title or facts.summary,
        suppressed=outcome.suppressed,
        dropped=outcome.dropped,
        applied=tuple(outcome.applied),
        notes=tuple(outcome.notes),
    )
