"""Timeline entries that record what an escalation step did. No I/O."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from app.escalation.dispatch import describe
from app.oncall.notification_rules import UserPlan

Entry = tuple[uuid.UUID, str, str, dict[str, Any]]


def step_entries(
    incident_id: uuid.UUID,
    level_name: str,
    step: int,
    skipped: Sequence[tuple[dict[str, Any], str]],
    plans: Sequence[UserPlan],
    *,
    last: bool,
) -> list[Entry]:
    """Describe one step: targets that named nobody, users no page reaches, who was paged."""
    entries: list[Entry] = []
    for target, reason in skipped:
        entries.append(
            (
                incident_id,
                "escalation.target_skipped",
                f"Skipped a target of {level_name}: {reason}",
                {"step": step, "target": target},
            )
        )
    for plan in plans:
        if not plan.reachable:
            entries.append(
                (
                    incident_id,
                    "escalation.user_unreachable",
                    f"Cannot page {plan.user.name} at {level_name}: no usable contact method",
                    {"step": step, "user_id": str(plan.user.id)},
                )
            )
    reachable = [plan for plan in plans if plan.reachable]
    if reachable:
        entries.append(
            (
                incident_id,
                "escalation.paged",
                f"Paged {level_name}: " + ", ".join(describe(plan) for plan in reachable),
                {"step": step, "users": [str(plan.user.id) for plan in reachable]},
            )
        )
    else:
        following = "escalation ends here" if last else "moving to the next level now"
        entries.append(
            (
                incident_id,
                "escalation.level_empty",
                f"Nobody on call or reachable at {level_name}; {following}",
                {"step": step},
            )
        )
    if last and reachable:
        entries.append(
            (
                incident_id,
                "escalation.finished",
                f"{level_name.capitalize()} was the policy's last step; no further levels "
                "will be paged",
                {"step": step},
            )
        )
    return entries
