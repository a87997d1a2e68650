"""The actions a responder can take by link, Slack button or SMS reply, and when each applies.

Each action has a one-byte code that link tokens carry, so a code must never change or
be reused once links with it have been sent. The functions that perform the actions
live in ``app.actions.registry``; to add an action, register an ``ActionSpec`` here and
a performer there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from app.incidents.models import IncidentStatus

OPEN = frozenset({IncidentStatus.triggered, IncidentStatus.acknowledged})


@dataclass(frozen=True, slots=True)
class IncidentState:
    """What decides which actions apply to an incident."""

    status: str
    # True when the escalation policy has a level left to page.
    can_escalate: bool


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    code: int
    # Button text, e.g. "Acknowledge".
    label: str
    # Completes "… by Ana at 09:14 UTC", e.g. "Acknowledged".
    done: str
    applies: Callable[[IncidentState], bool]
    # The letter of an SMS reply code ("42a"), if the action has one.
    reply_letter: str | None = None
    # Whether performing it changes the incident; False only for view.
    changes_state: bool = True
    snooze_for: timedelta | None = None


ACTIONS: dict[str, ActionSpec] = {}
_BY_CODE: dict[int, ActionSpec] = {}
_BY_LETTER: dict[str, ActionSpec] = {}


def register(spec: ActionSpec) -> ActionSpec:
    """Add an action; its name, code and reply letter must be new."""
    if spec.name in ACTIONS or spec.code in _BY_CODE:
        raise ValueError(f"action {spec.name!r} or code {spec.code} is already registered")
    if not 0 <= spec.code <= 255:
        raise ValueError(f"action code {spec.code} does not fit in one byte")
    if spec.reply_letter is not None:
        if spec.reply_letter in _BY_LETTER or len(spec.reply_letter) != 1:
            raise ValueError(f"reply letter {spec.reply_letter!r} is taken or not one letter")
        _BY_LETTER[spec.reply_letter] = spec
    ACTIONS[spec.name] = spec
    _BY_CODE[spec.code] = spec
    return spec


def by_code(code: int) -> ActionSpec | None:
    return _BY_CODE.get(code)


def by_reply_letter(letter: str) -> ActionSpec | None:
    return _BY_LETTER.get(letter.lower())


def applicable(state: IncidentState) -> list[ActionSpec]:
    """Return the actions that apply to ``state``, in registration order (view last)."""
    return [spec for spec in ACTIONS.values() if spec.applies(state)]


def _is_triggered(state: IncidentState) -> bool:
    return state.status == IncidentStatus.triggered


def _is_open(state: IncidentState) -> bool:
    return state.status in OPEN


def _can_escalate(state: IncidentState) -> bool:
    return state.status in OPEN and state.can_escalate


def _always(state: IncidentState) -> bool:
    return True


ACKNOWLEDGE = register(
    ActionSpec("acknowledge", 1, "Acknowledge", "Acknowledged", _is_triggered, reply_letter="a")
)
RESOLVE = register(ActionSpec("resolve", 2, "Resolve", "Resolved", _is_open, reply_letter="r"))
SNOOZE_15M = register(
    ActionSpec(
        "snooze-15m", 3, "Snooze 15 min", "Snoozed", _is_open, snooze_for=timedelta(minutes=15)
    )
)
SNOOZE_1H = register(
    ActionSpec(
        "snooze-1h",
        4,
        "Snooze 1 hour",
        "Snoozed",
        _is_open,
        reply_letter="s",
        snooze_for=timedelta(hours=1),
    )
)
SNOOZE_4H = register(
    ActionSpec("snooze-4h", 5, "Snooze 4 hours", "Snoozed", _is_open, snooze_for=timedelta(hours=4))
)
ESCALATE = register(
    ActionSpec(
        "escalate", 6, "Escalate to the next level", "Escalated", _can_escalate, reply_letter="e"
    )
)
# Reassign the incident to the link's own user and acknowledge it for them: a link binds
# one user, so "reassign" by link can only mean "to me".
TAKE = register(
    ActionSpec("take", 8, "Take it (reassign to me)", "Taken", _is_open, reply_letter="t")
)
VIEW = register(ActionSpec("view", 7, "View incident", "Viewed", _always, changes_state=False))
