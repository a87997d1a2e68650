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


def plan_step(frozen: dict[str, Any], step: int) -> StepPlan | None:
    """Describe step ``step`` of a frozen policy, or None when the policy has run out.

    Step n pages level n mod L in cycle n div L. After a level's targets are paged, the
    next step waits that level's delay; after the last level it goes back to the first
    while repeats remain.
    """
    levels = frozen["levels"]
    if not levels or step < 0 or step >= total_steps(frozen):
        return None
    level = levels[step % len(levels)]
    last = step + 1 >= total_steps(frozen)
    return StepPlan(
        level_index=step % len(levels),
        cycle=step // len(levels),
        targets=list(level["targets"]),
        next_step_delay=None if last else timedelta(minutes=level["delay_minutes"]),
    )
