"""Escalation steps: which level a step pages and when the next step is due. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.escalation.models import EscalationLevel, EscalationPolicy


@dataclass(frozen=True, slots=True)
class StepPlan:
    level_index: int
    # 0 for the first pass over the levels, 1 for the first repeat, and so on.
    cycle: int
    targets: list[dict[str, Any]]
    # When the step after this one is due; None when this is the policy's last step.
    next_step_delay: timedelta | None


def snapshot(policy: EscalationPolicy, levels: list[EscalationLevel]) -> dict[str, Any]:
    """Freeze a policy for one incident, so later edits leave running escalations alone."""
    return {
        "policy_id": str(policy.id),
        "name": policy.name,
        "version": policy.version,
        "repeat_count": policy.repeat_count,
        "levels": [
            {
                "position": level.position,
                "delay_minutes": level.delay_minutes,
                "targets": level.targets,
            }
            for level in sorted(levels, key=lambda level: level.position)
        ],
    }


def total_steps(frozen: dict[str, Any]) -> int:
    return len(frozen["levels"]) * (int(frozen["repeat_count"]) + 1)


def plan_step(frozen: dict[str, Any], position: int) -> StepPlan | None:
    """Describe the step at ``position`` of a frozen policy, or None when it has run out.

    Position n pages level n mod L in cycle n div L. After a level's targets are paged,
    the next step waits that level's delay. After the last level the policy starts again
    at the first level while repeats remain.
    """
    levels = frozen["levels"]
    if not levels or position < 0 or position >= total_steps(frozen):
        return None
    level = levels[position % len(levels)]
    last = position + 1 >= total_steps(frozen)
    return StepPlan(
        level_index=position % len(levels),
        cycle=position // len(levels),
        targets=list(level["targets"]),
        next_step_delay=None if last else timedelta(minutes=level["delay_minutes"]),
    )


def position_for_level(frozen: dict[str, Any], level_index: int, next_position: int) -> int:
    """Return the position that pages ``level_index`` in the cycle now running.

    ``next_position`` is the position the incident would page next. A manual escalation
    stays in the current cycle, so the repeats left are the same as before it.
    """
    levels = len(frozen["levels"])
    current = max(next_position - 1, 0)
    cycle = min(current // levels, int(frozen["repeat_count"]))
    return cycle * levels + level_index


def level_delay(frozen: dict[str, Any], position: int) -> timedelta | None:
    """Return the wait after the level at ``position`` before the next step, if any."""
    plan = plan_step(frozen, position)
    return None if plan is None else plan.next_step_delay
