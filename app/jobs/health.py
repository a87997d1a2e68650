"""The job worker's health, for /readyz, and the delays between its reconnection attempts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Delays between reconnection attempts double from the first to the cap.
RECONNECT_FIRST_DELAY_SECONDS = 0.5
RECONNECT_MAX_DELAY_SECONDS = 30.0


def next_reconnect_delay(previous: float | None) -> float:
    """Return the wait before the next reconnection attempt, given the wait before this one."""
    if previous is None:
        return RECONNECT_FIRST_DELAY_SECONDS
    return min(previous * 2, RECONNECT_MAX_DELAY_SECONDS)


@dataclass
class WorkerHealth:
    """Health of the worker's queue loop, with times in ``time.monotonic()`` seconds.

    A new worker counts as down until its first loop is up, so a worker that never
    reaches the database is reported like one that lost it.
    """

    down_since: float | None = field(default_factory=time.monotonic)
    last_error: str = "the worker has not connected to the database yet"
    # Failed connections or loop runs since the worker was last up.
    failures: int = 0

    def mark_up(self) -> None:
        self.down_since = None
        self.last_error = ""
        self.failures = 0

    def mark_down(self, error: str, now: float) -> None:
        if self.down_since is None:
            self.down_since = now
        self.last_error = error
        self.failures += 1

    def problem(self, now: float, grace_seconds: float) -> str | None:
        """Describe why the worker is not ready, or return None when it is up or within grace."""
        if self.down_since is None:
            return None
        down_for = now - self.down_since
        if down_for <= grace_seconds:
            return None
        return (
            f"The job worker has been down for {down_for:.0f} s, so no page is sent: "
            f"{self.last_error}. It reconnects on its own."
        )
