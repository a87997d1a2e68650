"""Load notifiers from the ``tocsin.notifiers`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from app.core.logging import get_logger
from app.notify.base import Notifier, NotifierContext

ENTRY_POINT_GROUP = "tocsin.notifiers"

log = get_logger(__name__)


def available_kinds() -> list[str]:
    return sorted(entry.name for entry in entry_points(group=ENTRY_POINT_GROUP))


def load_notifiers(context: NotifierContext) -> dict[str, Notifier]:
    """Instantiate every registered notifier; a broken plugin is logged and skipped."""
    notifiers: dict[str, Notifier] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            factory: Any = entry.load()
            notifiers[entry.name] = factory(context)
        except Exception:
            log.exception("notifier.load_failed", notifier=entry.name, target=entry.value)
    return notifiers


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
