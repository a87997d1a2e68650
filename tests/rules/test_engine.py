"""Table-driven tests of the pure rule engine: matchers, time conditions, CEL, order, actions."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from app.incidents.events import AlertEvent, EventAction, Severity
from app.rules import cel as cel_module
from app.rules.cel import CelCondition, CelError
from app.rules.engine import AlertFacts, RuleCompileError, RuleSet, compile_rule, evaluate
from app.rules.matchers import MatcherError, parse_matcher, parse_matchers
from app.rules.priority import Impact, PriorityMatrix, Urgency
from app.rules.timeintervals import TimeIntervalError, parse_interval

SERVICE = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
OTHER_SERVICE = uuid.UUID("00000000-0000-0000-0000-0000000000b2")
POLICY = uuid.UUID("00000000-0000-0000-0000-0000000000c3")
MONDAY_NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def facts(
    labels: Mapping[str, str] | None = None,
    *,
    severity: Severity = Severity.critical,
    summary: str = "Disk full",
    source: str | None = "db-1",
    details: Mapping[str, Any] | None = None,
    service_id: uuid.UUID = SERVICE,
) -> AlertFacts:
    event = AlertEvent(
        action=EventAction.trigger,
        dedup_key="key-1",
        summary=summary,
        severity=severity,
        severity_raw=severity.value,
        source=source,
        labels=dict(labels or {}),
        details=dict(details or {}),
    )
    return AlertFacts.from_event(
        event,
        integration="Prometheus",
        integration_kind="alertmanager",
        service_id=service_id,
        service="checkout",
    )


def rule(
    name: str = "rule",
    *,
    matchers: list[str] | None = None,
    time: list[dict[str, Any]] | None = None,
    cel: str | None = None,
    actions: dict[str, Any] | None = None,
    service_id: uuid.UUID | None = None,
    position: int = 0,
    cont: bool = False,
    enabled: bool = True,
) -> Any:
    return compile_rule(
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{service_id}:{position}:{name}")),
            "version": 1,
            "name": name,
            "service_id": str(service_id) if service_id else None,
            "position": position,
            "enabled": enabled,
            "continue": cont,
            "conditions": {"matchers": matchers or [], "time": time or [], "cel": cel},
            "actions": actions or {},
        }
    )


class TestMatchers:
    @pytest.mark.parametrize(
        ("matcher", "labels", "expected"),
        [
            ('env="prod"', {"env": "prod"}, True),
            ('env="prod"', {"env": "production"}, False),
            ("env=prod", {"env": "prod"}, True),
            ('env!="prod"', {"env": "staging"}, True),
            ('env!="prod"', {}, True),
            ('env=""', {}, True),
            ('env!=""', {}, False),
            ('env!=""', {"env": "x"}, True),
            # Regexes are anchored at both ends, as in Alertmanager.
            ('env=~"prod"', {"env": "preprod"}, False),
            ('env=~"prod"', {"env": "prod-eu"}, False),
            ('env=~"prod.*"', {"env": "prod-eu"}, True),
            ('env=~"prod|staging"', {"env": "staging"}, True),
            ('env=~"a|b"', {"env": "ab"}, False),
            ('env=~".*"', {}, True),
            ('env=~".+"', {}, False),
            ('env!~"prod"', {"env": "preprod"}, True),
            ('env!~"prod"', {}, True),
            ('env!~".*"', {"env": "x"}, False),
            # $ is the end of the text, not the end of a line: a trailing newline fails.
            ('env=~"prod"', {"env": "prod\n"}, False),
            # RE2 syntax, as Go's regexp: Unicode classes work.
            ('team=~"\\\\p{Greek}+"', {"team": "αβγ"}, True),
            ('team=~"\\\\p{Greek}+"', {"team": "abc"}, False),
            # Regexes are case sensitive unless a flag turns that off.
            ('env=~"PROD"', {"env": "prod"}, False),
            ('env=~"(?i)PROD"', {"env": "prod"}, True),
            # Quoted values with escapes.
            ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),
            ('path="a\\\\b"', {"path": "a\\b"}, True),
            # Names with dots address labels explicitly.
            ('labels.severity="page"', {"severity": "page"}, True),
            # Whitespace around the parts is ignored.
            ('  env  =~  "prod"  ', {"env": "prod"}, True),
            # Label values are compared as text.
            ('code="500"', {"code": "500"}, True),
        ],
    )
    def test_label_matcher(self, matcher: str, labels: dict[str, str], expected: bool) -> None:
        parsed = parse_matcher(matcher)
        assert parsed.matches(facts(labels).value_of(parsed.name)) is expected

    @pytest.mark.parametrize(
        ("matcher", "alert", "expected"),
        [
            ('severity="critical"', facts(), True),
            ('severity=~"warning|info"', facts(severity=Severity.warning), True),
            ('severity="critical"', facts({"severity": "page"}, severity=Severity.error), False),
            ('source=~"db-.*"', facts(), True),
            ('source=""', facts(source=None), True),
            ('summary=~".*[Dd]isk.*"', facts(), True),
            ('integration="Prometheus"', facts(), True),
            ('integration_kind="alertmanager"', facts(), True),
            ('service="checkout"', facts(), True),
            (
                'details.annotations.runbook=~"https://.*"',
                facts(details={"annotations": {"runbook": "https://r"}}),
                True,
            ),
            ('details.annotations.runbook=""', facts(details={}), True),
            ('details.count="3"', facts(details={"count": 3}), True),
            ('details.flag="true"', facts(details={"flag": True}), True),
            ('details.hosts.1="b"', facts(details={"hosts": ["a", "b"]}), True),
            ('details.hosts.7=""', facts(details={"hosts": ["a", "b"]}), True),
            ('details.nested="{\\"a\\":1}"', facts(details={"nested": {"a": 1}}), True),
        ],
    )
    def test_field_matcher(self, matcher: str, alert: AlertFacts, expected: bool) -> None:
        parsed = parse_matcher(matcher)
        assert parsed.matches(alert.value_of(parsed.name)) is expected

    @pytest.mark.parametrize(
        ("matcher", "message", "position"),
        [
            ('env=~"ab(c"', "missing", 9),
            ("env=~ab(c", "missing", 8),
            ('env=~"a(?=b)"', "invalid perl operator", 8),
            ('env=~"(a)\\\\1"', "invalid escape", 10),
            ('env=~"[z-a]"', "invalid character class range", 8),
            ('env=~"a**"', "bad repetition operator", 9),
            ("env", "expected name, operator", 4),
            ('=~"x"', "expected name, operator", 1),
            ('env="unterminated', "unterminated quoted string", 5),
            ('env=a"b', 'a value containing " must be quoted', 6),
            ('env="bad \\q escape"', "invalid escape", 10),
        ],
    )
    def test_invalid_matcher_names_position(
        self, matcher: str, message: str, position: int
    ) -> None:
        with pytest.raises(MatcherError) as error:
            parse_matcher(matcher)
        assert message in error.value.message
        assert error.value.position == position

    def test_braced_list_expands(self) -> None:
        parsed = parse_matchers('{env="prod", team=~"db|web", msg="a,b"}')
        assert [str(matcher) for matcher in parsed] == [
            'env="prod"',
            'team=~"db|web"',
            'msg="a,b"',
        ]

    def test_braced_list_error_position(self) -> None:
        with pytest.raises(MatcherError) as error:
            parse_matchers('{env="prod", team=~"db|(web"}')
        assert error.value.position == 24

    def test_catastrophic_pattern_is_linear(self) -> None:
        # (a+)+$ backtracks exponentially in engines like Python's re; RE2 does not.
        parsed = parse_matcher('text=~"(a+)+b"')
        assert parsed.matches("a" * 5000) is False


class TestTimeConditions:
    @pytest.mark.parametrize(
        ("spec", "at", "expected"),
        [
            # Business hours in Berlin (UTC+1 in winter).
            (
                {
                    "time_zone": "Europe/Berlin",
                    "weekdays": ["monday:friday"],
                    "times": [{"start_time": "09:00", "end_time": "17:00"}],
                },
                datetime(2026, 3, 2, 7, 59, tzinfo=UTC),
                False,
            ),
            (
                {
                    "time_zone": "Europe/Berlin",
                    "weekdays": ["monday:friday"],
                    "times": [{"start_time": "09:00", "end_time": "17:00"}],
                },
                datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
                True,
            ),
            (
                {
                    "time_zone": "Europe/Berlin",
                    "weekdays": ["monday:friday"],
                    "times": [{"start_time": "09:00", "end_time": "17:00"}],
                },
                datetime(2026, 3, 2, 15, 59, tzinfo=UTC),
                True,
            ),
            (
                {
                    "time_zone": "Europe/Berlin",
                    "weekdays": ["monday:friday"],
                    "times": [{"start_time": "09:00", "end_time": "17:00"}],
                },
                datetime(2026, 3, 2, 16, 0, tzinfo=UTC),
                False,
            ),
            # Saturday in Berlin.
            (
                {"time_zone": "Europe/Berlin", "weekdays": ["monday:friday"]},
                datetime(2026, 3, 7, 12, 0, tzinfo=UTC),
                False,
            ),
            # Sunday 23:30 UTC is already Monday 00:30 in Berlin.
            (
                {"time_zone": "Europe/Berlin", "weekdays": ["mon"]},
                datetime(2026, 3, 1, 23, 30, tzinfo=UTC),
                True,
            ),
            # The day clocks go forward in Berlin (2026-03-29, 02:00 -> 03:00 CEST):
            # 09:00 local is 07:00 UTC, no longer 08:00 UTC.
            (
                {
                    "time_zone": "Europe/Berlin",
                    "times": [{"start_time": "09:00", "end_time": "10:00"}],
                },
                datetime(2026, 3, 29, 7, 0, tzinfo=UTC),
                True,
            ),
            (
                {
                    "time_zone": "Europe/Berlin",
                    "times": [{"start_time": "09:00", "end_time": "10:00"}],
                },
                datetime(2026, 3, 29, 8, 0, tzinfo=UTC),
                False,
            ),
            # 01:00-03:00 local on that day lasts one real hour: 01:59 CET then 03:00 CEST.
            (
                {
                    "time_zone": "Europe/Berlin",
                    "times": [{"start_time": "01:00", "end_time": "03:00"}],
                },
                datetime(2026, 3, 29, 0, 59, tzinfo=UTC),
                True,
            ),
            (
                {
                    "time_zone": "Europe/Berlin",
                    "times": [{"start_time": "01:00", "end_time": "03:00"}],
                },
                datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
                False,
            ),
            # The day clocks go back (2026-10-25, 03:00 CEST -> 02:00 CET): 02:30 local
            # happens twice, and both instants match 02:00-03:00.
            (
                {
                    "time_zone": "Europe/Berlin",
                    "times": [{"start_time": "02:00", "end_time": "03:00"}],
                },
                datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
                True,
            ),
            (
                {
                    "time_zone": "Europe/Berlin",
                    "times": [{"start_time": "02:00", "end_time": "03:00"}],
                },
                datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
                True,
            ),
            (
                {
                    "time_zone": "Europe/Berlin",
                    "times": [{"start_time": "02:00", "end_time": "03:00"}],
                },
                datetime(2026, 10, 25, 2, 0, tzinfo=UTC),
                False,
            ),
            # US DST starts on another date (2026-03-08 in New York).
            (
                {
                    "time_zone": "America/New_York",
                    "times": [{"start_time": "09:00", "end_time": "10:00"}],
                },
                datetime(2026, 3, 9, 13, 0, tzinfo=UTC),
                True,
            ),
            (
                {
                    "time_zone": "America/New_York",
                    "times": [{"start_time": "09:00", "end_time": "10:00"}],
                },
                datetime(2026, 3, 6, 13, 0, tzinfo=UTC),
                False,
            ),
            # Half-hour zones and 24:00 as the end of the day.
            (
                {
                    "time_zone": "Asia/Kolkata",
                    "times": [{"start_time": "22:00", "end_time": "24:00"}],
                },
                datetime(2026, 3, 2, 18, 29, tzinfo=UTC),
                True,
            ),
            (
                {
                    "time_zone": "Asia/Kolkata",
                    "times": [{"start_time": "22:00", "end_time": "24:00"}],
                },
                datetime(2026, 3, 2, 18, 30, tzinfo=UTC),
                False,
            ),
            # Several ranges, one crossing midnight written as two.
            (
                {
                    "times": [
                        {"start_time": "22:00", "end_time": "24:00"},
                        {"start_time": "00:00", "end_time": "06:00"},
                    ]
                },
                datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
                True,
            ),
        ],
    )
    def test_interval_contains(self, spec: dict[str, Any], at: datetime, expected: bool) -> None:
        assert parse_interval(spec, "time.0").contains(at) is expected

    @pytest.mark.parametrize(
        ("spec", "field", "message"),
        [
            ({"time_zone": "Mars/Olympus"}, "time.0.time_zone", "unknown time zone"),
            ({"weekdays": ["funday"]}, "time.0.weekdays.0", "unknown weekday"),
            ({"weekdays": ["friday:monday"]}, "time.0.weekdays.0", "runs backwards"),
            ({"times": [{"start_time": "17:00", "end_time": "09:00"}]}, "time.0.times.0", "after"),
            (
                {"times": [{"start_time": "9am", "end_time": "10:00"}]},
                "time.0.times.0.start_time",
                "HH:MM",
            ),
            (
                {"times": [{"start_time": "00:00", "end_time": "24:30"}]},
                "time.0.times.0.end_time",
                "between",
            ),
        ],
    )
    def test_invalid_interval(self, spec: dict[str, Any], field: str, message: str) -> None:
        with pytest.raises(TimeIntervalError) as error:
            parse_interval(spec, "time.0")
        assert error.value.field == field
        assert message in error.value.message


class TestCel:
    @pytest.mark.parametrize(
        ("expression", "alert", "expected"),
        [
            ("labels.env == 'prod'", facts({"env": "prod"}), True),
            ("labels.env == 'prod'", facts({"env": "dev"}), False),
            ("severity in ['critical', 'error']", facts(), True),
            ("'team' in labels && labels.team.startsWith('db')", facts({"team": "dbops"}), True),
            ("has(labels.team)", facts(), False),
            ("details.count > 2", facts(details={"count": 3}), True),
            ("labels.exists(k, k.startsWith('x'))", facts({"xy": "1"}), True),
            ("summary.matches('^Disk')", facts(), True),
            ("now.getDayOfWeek() == 1", facts(), True),
        ],
    )
    def test_expression(self, expression: str, alert: AlertFacts, expected: bool) -> None:
        result = CelCondition(expression).evaluate(alert.variables(MONDAY_NOON))
        assert result.error is None
        assert result.matched is expected

    def test_missing_label_is_no_match_with_reason(self) -> None:
        result = CelCondition("labels.team == 'db'").evaluate(facts().variables(MONDAY_NOON))
        assert result.matched is False
        assert result.error is not None
        assert "team" in result.error

    def test_non_boolean_result_is_no_match(self) -> None:
        result = CelCondition("summary").evaluate(facts().variables(MONDAY_NOON))
        assert result.matched is False
        assert result.error == "returned StringType, not a bool"

    @pytest.mark.parametrize(
        ("expression", "message", "line", "column"),
        [
            ("labels.env = 'prod'", "syntax error", 1, 12),
            ("labels.env == 'prod' &&\n  ", "syntax error", 1, 22),
            ("foo == 1", "unknown variable 'foo'", 1, 1),
            ("labels.env == 'x' || lables.env == 'y'", "unknown variable 'lables'", 1, 22),
        ],
    )
    def test_invalid_expression_names_position(
        self, expression: str, message: str, line: int, column: int
    ) -> None:
        with pytest.raises(CelError) as error:
            CelCondition(expression)
        assert message in error.value.message
        assert (error.value.line, error.value.column) == (line, column)

    def test_nesting_limit(self) -> None:
        deepest = "(" * 38 + "severity == 'critical'" + ")" * 38
        assert CelCondition(deepest).evaluate(facts().variables(MONDAY_NOON)).matched is True
        with pytest.raises(CelError) as error:
            CelCondition("(" + deepest + ")")
        assert "nested too deeply" in error.value.message

    @pytest.mark.parametrize(
        "expression",
        [
            "(" * 150 + "true" + ")" * 150,
            "[" * 300 + "1" + "]" * 300 + " == []",
            "labels" + ".a" * 1000 + " == 'x'",
        ],
    )
    def test_deep_nesting_is_a_compile_error(self, expression: str) -> None:
        with pytest.raises(CelError) as error:
            CelCondition(expression)
        assert "nested too deeply" in error.value.message

    @pytest.mark.parametrize("macro", ["all", "exists", "exists_one", "map", "filter"])
    def test_macro_step_limit(self, macro: str) -> None:
        # 40 outer elements, each with 50 inner ones, visit 2,040 elements; with 49, 1,999.
        def nested(inner_size: int) -> str:
            outer = "[" + ",".join(str(i) for i in range(40)) + "]"
            inner = "[" + ",".join(str(i) for i in range(inner_size)) + "]"
            # exists_one is true when exactly one element matches.
            predicate = "b == 0" if macro == "exists_one" else "b >= 0"
            body = f"{inner}.{macro}(b, a >= 0 && {predicate})"
            if macro in ("map", "filter"):
                body = f"size({body}) >= 0"
            return f"{outer}.all(a, {body})"

        variables = facts().variables(MONDAY_NOON)
        within = CelCondition(nested(49)).evaluate(variables)
        beyond = CelCondition(nested(50)).evaluate(variables)

        assert within.error is None
        assert within.matched is True
        assert beyond.matched is False
        assert beyond.error is not None
        assert "more than 2,000 elements" in beyond.error

    def test_step_limit_resets_per_evaluation(self) -> None:
        condition = CelCondition("labels.exists(k, k == 'x')")
        many = facts({f"label{i}": "v" for i in range(1500)})
        results = [condition.evaluate(many.variables(MONDAY_NOON)) for _ in range(3)]
        assert [result.error for result in results] == [None, None, None]

    @pytest.mark.parametrize(
        "expression",
        [
            # Within the step limit, but each step scans a list of 60,000 elements.
            "has(details.a) && details.a.exists(x, x in details.b)",
            "details.a.all(x, details.b != details.a)",
            # Each step builds a list of 60,000 elements.
            "size(details.a.map(x, details.b)) > 0",
        ],
    )
    def test_element_work_limit(self, expression: str) -> None:
        alert = facts(details={"a": [-1] * 1999, "b": list(range(60_000))})

        result = CelCondition(expression).evaluate(alert.variables(MONDAY_NOON))

        assert result.matched is False
        assert result.error is not None
        assert "more than 1,000,000 list, map or text elements" in result.error

    def test_alert_values_converted_once_for_all_rules(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        conversions: list[str] = []
        original = cel_module._to_cel

        def counting(value: Any) -> Any:
            conversions.append(type(value).__name__)
            return original(value)

        monkeypatch.setattr(cel_module, "_to_cel", counting)
        rules = [
            rule(f"r{index}", cel="has(details.runbook)", position=index, cont=True)
            for index in range(10)
        ]
        alert = facts({"team": "db"}, details={"samples": list(range(1000))})

        evaluate(RuleSet.build(rules), alert, MONDAY_NOON)

        # Only details is read, once, although ten rules read it.
        assert conversions == ["dict"]


class TestEvaluation:
    def test_no_rules_uses_severity_defaults(self) -> None:
        decision = evaluate(
            RuleSet.build([]), facts(severity=Severity.warning), MONDAY_NOON
        ).decision
        assert (decision.impact, decision.urgency) == (Impact.medium, Urgency.medium)
        assert decision.priority == "P3"
        assert decision.priority_source == "matrix"
        assert decision.applied == ()
        assert decision.title == "Disk full"

    @pytest.mark.parametrize(
        ("actions", "severity", "priority"),
        [
            ({"impact": "high", "urgency": "high"}, Severity.info, "P1"),
            ({"impact": 3, "urgency": 3}, Severity.critical, "P5"),
            ({"impact": "low"}, Severity.critical, "P3"),
            ({"urgency": "low"}, Severity.critical, "P3"),
            ({"priority": "P4", "impact": "high", "urgency": "high"}, Severity.critical, "P4"),
        ],
    )
    def test_priority_from_actions(
        self, actions: dict[str, Any], severity: Severity, priority: str
    ) -> None:
        rule_set = RuleSet.build([rule(actions=actions)])
        assert (
            evaluate(rule_set, facts(severity=severity), MONDAY_NOON).decision.priority == priority
        )

    def test_configured_matrix_applies(self) -> None:
        matrix = PriorityMatrix.default()
        matrix.cells[(Impact.high, Urgency.high)] = "P2"
        decision = evaluate(RuleSet.build([], matrix), facts(), MONDAY_NOON).decision
        assert decision.priority == "P2"

    def test_first_match_stops_without_continue(self) -> None:
        rule_set = RuleSet.build(
            [
                rule("a", position=0, matchers=['env="prod"'], actions={"tags": ["a"]}),
                rule("b", position=1, actions={"tags": ["b"]}),
            ]
        )
        decision = evaluate(rule_set, facts({"env": "prod"}), MONDAY_NOON).decision
        assert decision.tags == ("a",)
        assert [applied.name for applied in decision.applied] == ["a"]

    def test_continue_runs_later_rules_and_later_wins(self) -> None:
        rule_set = RuleSet.build(
            [
                rule("a", position=0, cont=True, actions={"urgency": "low", "tags": ["a"]}),
                rule("b", position=1, actions={"urgency": "medium", "tags": ["b", "a"]}),
            ]
        )
        decision = evaluate(rule_set, facts(), MONDAY_NOON).decision
        assert decision.urgency == Urgency.medium
        assert decision.tags == ("a", "b")

    def test_non_matching_rule_does_not_stop(self) -> None:
        rule_set = RuleSet.build(
            [
                rule("a", position=0, matchers=['env="dev"'], actions={"tags": ["a"]}),
                rule("b", position=1, actions={"tags": ["b"]}),
            ]
        )
        assert evaluate(rule_set, facts({"env": "prod"}), MONDAY_NOON).decision.tags == ("b",)

    def test_disabled_rule_is_skipped(self) -> None:
        rule_set = RuleSet.build([rule("a", enabled=False, actions={"priority": "P1"})])
        assert (
            evaluate(rule_set, facts(severity=Severity.info), MONDAY_NOON).decision.priority == "P5"
        )

    def test_global_stop_still_runs_service_rules(self) -> None:
        rule_set = RuleSet.build(
            [
                rule("global", actions={"tags": ["global"]}),
                rule("svc", service_id=SERVICE, actions={"tags": ["svc"]}),
                rule("other", service_id=OTHER_SERVICE, actions={"tags": ["other"]}),
            ]
        )
        assert evaluate(rule_set, facts(), MONDAY_NOON).decision.tags == ("global", "svc")

    def test_global_route_runs_target_service_rules(self) -> None:
        rule_set = RuleSet.build(
            [
                rule("route", actions={"route": {"service_id": str(OTHER_SERVICE)}}),
                rule("svc", service_id=SERVICE, actions={"tags": ["svc"]}),
                rule("other", service_id=OTHER_SERVICE, actions={"tags": ["other"]}),
            ]
        )
        decision = evaluate(rule_set, facts(), MONDAY_NOON).decision
        assert decision.service_id == OTHER_SERVICE
        assert decision.tags == ("other",)

    def test_service_route_does_not_run_target_rules(self) -> None:
        rule_set = RuleSet.build(
            [
                rule(
                    "svc",
                    service_id=SERVICE,
                    actions={
                        "route": {
                            "service_id": str(OTHER_SERVICE),
                            "escalation_policy_id": str(POLICY),
                        }
                    },
                ),
                rule("other", service_id=OTHER_SERVICE, actions={"tags": ["other"]}),
            ]
        )
        decision = evaluate(rule_set, facts(), MONDAY_NOON).decision
        assert decision.service_id == OTHER_SERVICE
        assert decision.escalation_policy_id == POLICY
        assert decision.tags == ()

    def test_suppress_sticks_and_drop_ends(self) -> None:
        rule_set = RuleSet.build(
            [
                rule("quiet", position=0, cont=True, actions={"suppress": True}),
                rule("drop", position=1, cont=True, matchers=['env="dev"'], actions={"drop": True}),
                rule("after", position=2, actions={"tags": ["after"]}),
            ]
        )
        kept = evaluate(rule_set, facts({"env": "prod"}), MONDAY_NOON).decision
        assert kept.suppressed is True
        assert kept.dropped is False
        assert kept.tags == ("after",)
        dropped = evaluate(rule_set, facts({"env": "dev"}), MONDAY_NOON).decision
        assert dropped.dropped is True
        assert dropped.tags == ()

    def test_title_template_renders_and_missing_is_empty(self) -> None:
        rule_set = RuleSet.build(
            [rule(actions={"title": "{{ labels.alertname }} on {{ source }}{{ labels.none.x }}"})]
        )
        decision = evaluate(rule_set, facts({"alertname": "DiskFull"}), MONDAY_NOON).decision
        assert decision.title == "DiskFull on db-1"

    def test_title_template_error_keeps_summary(self) -> None:
        rule_set = RuleSet.build([rule(actions={"title": "{{ labels.a | int / 0 }}"})])
        decision = evaluate(rule_set, facts({"a": "1"}), MONDAY_NOON).decision
        assert decision.title == "Disk full"
        assert "title template" in decision.notes[0]

    def test_time_condition_in_rule(self) -> None:
        night = [
            {"time_zone": "Europe/Berlin", "times": [{"start_time": "00:00", "end_time": "07:00"}]}
        ]
        rule_set = RuleSet.build([rule(time=night, actions={"urgency": "low"})])
        at_night = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
        assert evaluate(rule_set, facts(), at_night).decision.urgency == Urgency.low
        assert evaluate(rule_set, facts(), MONDAY_NOON).decision.urgency == Urgency.high


class TestExplainTrace:
    def test_trace_names_failed_matcher_and_unreached_rules(self) -> None:
        rule_set = RuleSet.build(
            [
                rule("needs-db", position=0, matchers=['team="db"', 'env="prod"']),
                rule("stopper", position=1, actions={"tags": ["x"]}),
                rule("late", position=2, actions={"tags": ["late"]}),
                rule("off", position=3, enabled=False),
            ]
        )
        trace = evaluate(rule_set, facts({"env": "prod"}), MONDAY_NOON, explain=True).trace
        assert [item.name for item in trace] == ["needs-db", "stopper", "late", "off"]
        first = trace[0]
        assert first.matched is False
        assert first.conditions[0].matched is False
        assert first.conditions[0].detail == "team is missing (empty)"
        assert first.conditions[1].matched is True
        assert 'team="db"' in first.note
        assert trace[1].applied is True
        assert trace[2].reached is False
        assert "stopper" in trace[2].note
        assert trace[2].matched is True
        assert trace[3].note == "disabled"

    def test_trace_shows_cel_error(self) -> None:
        rule_set = RuleSet.build([rule(cel="labels.team == 'db'")])
        trace = evaluate(rule_set, facts(), MONDAY_NOON, explain=True).trace
        assert trace[0].matched is False
        assert "team" in trace[0].conditions[0].detail


class TestCompile:
    @pytest.mark.parametrize(
        ("spec", "field", "message"),
        [
            (
                {"conditions": {"matchers": ['a="b"', 'c=~"(x"']}},
                "conditions.matchers.1",
                "character 5",
            ),
            ({"conditions": {"cel": "labels.a ==="}}, "conditions.cel", "line 1 column"),
            (
                {"conditions": {"time": [{"time_zone": "Nowhere/City"}]}},
                "conditions.time.0.time_zone",
                "unknown time zone",
            ),
            ({"actions": {"impact": "huge"}}, "actions.impact", "expected 1, 2, 3"),
            ({"actions": {"priority": "P9"}}, "actions.priority", "P1 to P5"),
            ({"actions": {"drop": True, "tags": ["x"]}}, "actions.drop", "cannot be combined"),
            ({"actions": {"title": "{{ labels.a "}}, "actions.title", "line 1"),
            ({"actions": {"route": {"service_id": "nope"}}}, "actions.route.service_id", "UUID"),
        ],
    )
    def test_invalid_rule_names_field(self, spec: dict[str, Any], field: str, message: str) -> None:
        with pytest.raises(RuleCompileError) as error:
            compile_rule({"name": "r", **spec})
        assert error.value.field == field
        assert message in error.value.message
