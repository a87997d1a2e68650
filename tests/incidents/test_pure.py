"""Pure parts of the incident domain: grouping keys, the sweep schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.incidents import lifecycle
from app.incidents.events import AlertEvent, EventAction
from app.incidents.grouping import GroupingSettings, group


def event(dedup_key: str = "k1", group_key: str | None = "g1", **labels: str) -> AlertEvent:
    return AlertEvent(
        action=EventAction.trigger,
        dedup_key=dedup_key,
        summary="s",
        group_key=group_key,
        labels=labels,
        source="host-1",
    )


@pytest.mark.parametrize(
    ("settings", "kind", "alert", "key"),
    [
        (GroupingSettings(), "alertmanager", event(), "g1"),
        (GroupingSettings(), "generic", event(), "g1"),
        (GroupingSettings(), "pagerduty", event(group_key=None), "k1"),
        (GroupingSettings(), "alertmanager", event(group_key=None), "k1"),
        (GroupingSettings(mode="none"), "alertmanager", event(), "alert:k1"),
        (
            GroupingSettings(mode="by_fields", fields=("cluster", "alertname")),
            "alertmanager",
            event(cluster="eu", alertname="Down"),
            'fields:[["cluster","eu"],["alertname","Down"]]',
        ),
        (
            GroupingSettings(mode="by_fields", fields=("cluster", "source")),
            "generic",
            event(cluster="eu"),
            'fields:[["cluster","eu"],["source","host-1"]]',
        ),
    ],
)
def test_grouping_keys(settings: GroupingSettings, kind: str, alert: AlertEvent, key: str) -> None:
    assert group(alert, settings, kind).key == key


def test_missing_field_differs_from_empty() -> None:
    settings = GroupingSettings(mode="by_fields", fields=("cluster", "team"))
    missing = group(event(cluster="eu"), settings, "generic")
    empty = group(event(cluster="eu", team=""), settings, "generic")
    assert missing.key != empty.key
    assert missing.explanation["fields"] == {"cluster": "eu", "team": None}


def test_all_fields_missing_groups_alone() -> None:
    settings = GroupingSettings(mode="by_fields", fields=("cluster",))
    first = group(event(dedup_key="a"), settings, "generic")
    second = group(event(dedup_key="b"), settings, "generic")
    assert first.key != second.key
    assert "none of the grouping fields" in first.explanation["reason"]


def test_sweep_job_dedupes_per_interval() -> None:
    now = datetime(2026, 12, 4, 12, 0, 10, tzinfo=UTC)
    first = lifecycle.sweep_job(now)
    second = lifecycle.sweep_job(now + timedelta(seconds=5))
    assert first.dedupe_key == second.dedupe_key
    assert first.delay == timedelta(seconds=20)


def test_merge_repeats_keeps_action_order() -> None:
    from app.incidents.ingest import merge_repeats, rounds

    def make(action: EventAction, key: str) -> AlertEvent:
        return AlertEvent(action=action, dedup_key=key, summary=key)

    trig, res = EventAction.trigger, EventAction.resolve
    events = [
        make(trig, "a"),
        make(trig, "b"),
        make(trig, "a"),
        make(res, "a"),
        make(trig, "a"),
        make(trig, "a"),
        make(trig, "c"),
    ]
    items = merge_repeats(events, lambda position: position == 6)
    assert [(positions, event.action) for positions, event in items] == [
        ([0, 2], trig),
        ([1], trig),
        ([3], res),
        ([4, 5], trig),
    ]
    # The last event of a run is the one applied.
    assert items[0][1] is events[2]
    assert [[positions for positions, _ in batch] for batch in rounds(items)] == [
        [[0, 2], [1]],
        [[3]],
        [[4, 5]],
    ]
