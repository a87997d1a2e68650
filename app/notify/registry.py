"""Load notifiers from the ``tocsin.notifiers`` entry-point group.

Tocsin registers its built-in notifiers in that group too, so a package installed with
``pip install`` adds a channel the same way: one entry point ``<kind> = "module:Class"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from app.core.logging import get_logger
from app.notify.base import (
    INCIDENT_EVENTS,
    ContactInput,
    InvalidContact,
    Notifier,
    NotifierContext,
)

ENTRY_POINT_GROUP = "tocsin.notifiers"
BUILT_IN_DISTRIBUTION = "tocsin"

log = get_logger(__name__)


def _entry_points_by_kind() -> dict[str, EntryPoint]:
    """Map each kind to one entry point; a built-in wins over a plugin that reuses its name."""
    chosen: dict[str, EntryPoint] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        current = chosen.get(entry.name)
        if current is not None:
            keep_current = _distribution(current) == BUILT_IN_DISTRIBUTION
            log.warning(
                "notifier.duplicate",
                notifier=entry.name,
                kept=(current if keep_current else entry).value,
                ignored=(entry if keep_current else current).value,
            )
            if keep_current:
                continue
        chosen[entry.name] = entry
    return chosen


def _distribution(entry: EntryPoint) -> str | None:
    dist = entry.dist
    return dist.name if dist is not None else None


def available_kinds() -> list[str]:
    return sorted(_entry_points_by_kind())


@lru_cache(maxsize=64)
def notifier_class(kind: str) -> Any | None:
    """Return the class (or factory) registered as ``kind``; None if missing or broken."""
    entry = _entry_points_by_kind().get(kind)
    if entry is None:
        return None
    try:
        return entry.load()
    except Exception:
        log.exception("notifier.load_failed", notifier=kind, target=entry.value)
        return None


def load_notifiers(
    context: NotifierContext, options: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Notifier]:
    """Instantiate every registered notifier; a broken plugin is logged and skipped.

    ``options`` maps a kind to its instance options (``Settings.notifiers``); each
    notifier gets its own part in ``context.options``.
    """
    options = options or {}
    notifiers: dict[str, Notifier] = {}
    for kind, entry in _entry_points_by_kind().items():
        try:
            factory: Any = entry.load()
            own_context = dataclasses.replace(context, options=dict(options.get(kind, {})))
            notifiers[kind] = factory(own_context)
        except Exception:
            log.exception("notifier.load_failed", notifier=kind, target=entry.value)
            continue
        error = getattr(notifiers[kind], "options_error", None)
        if error:
            # Not fatal, because the other channels must keep paging, but loud: every
            # delivery through this notifier fails until the setting is fixed.
            log.error("notifier.misconfigured", notifier=kind, error=error)
    return notifiers


def misconfigured(notifiers: Mapping[str, Notifier]) -> list[str]:
    """Return one line per notifier whose instance options are invalid."""
    errors = {
        kind: getattr(notifier, "options_error", None) for kind, notifier in notifiers.items()
    }
    return [
        f"{kind} notifier is misconfigured: {error}"
        for kind, error in sorted(errors.items())
        if error
    ]


def notifier_events(notifier: Any) -> frozenset[str]:
    """Return the events a notifier delivers: its ``events`` attribute or every incident event."""
    events = getattr(notifier, "events", None)
    return frozenset(events) if events else INCIDENT_EVENTS


def validate_contact(kind: str, contact: ContactInput) -> ContactInput:
    """Run the notifier's ``validate_contact`` hook, if it has one.

    Raises ``InvalidContact`` for an unknown kind or invalid settings.
    """
    cls = notifier_class(kind)
    if cls is None:
        kinds = ", ".join(available_kinds())
        raise InvalidContact("kind", f"Unknown contact method kind {kind!r}; installed: {kinds}.")
    hook = getattr(cls, "validate_contact", None)
    if hook is None:
        return contact
    validated: ContactInput = hook(contact)
    return validated


def supports_verification(notifier: object) -> bool:
    """Tell whether a notifier (instance or class) can send verification codes."""
    return callable(getattr(notifier, "send_verification", None))


def verifying_kinds() -> frozenset[str]:
    """Return the installed notifier kinds whose contact methods need verification."""
    kinds = set()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            if supports_verification(entry.load()):
                kinds.add(entry.name)
        except Exception:
            log.exception("notifier.load_failed", notifier=entry.name, target=entry.value)
    return frozenset(kinds)
