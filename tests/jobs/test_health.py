"""Worker health as /readyz reads it, and the reconnection backoff."""

from __future__ import annotations

from app.jobs.health import (
    RECONNECT_FIRST_DELAY_SECONDS,
    RECONNECT_MAX_DELAY_SECONDS,
    WorkerHealth,
    next_reconnect_delay,
)


def test_reconnect_delays_double_up_to_cap() -> None:
    delays = []
    delay = None
    for _ in range(10):
        delay = next_reconnect_delay(delay)
        delays.append(delay)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert delays[0] == RECONNECT_FIRST_DELAY_SECONDS
    assert max(delays) == RECONNECT_MAX_DELAY_SECONDS


def test_new_worker_is_down_until_up() -> None:
    health = WorkerHealth(down_since=100.0)
    assert health.problem(now=110.0, grace_seconds=15) is None
    problem = health.problem(now=120.0, grace_seconds=15)
    assert problem is not None
    assert "down for 20 s" in problem
    assert "not connected to the database yet" in problem


def test_health_up_has_no_problem() -> None:
    health = WorkerHealth(down_since=100.0)
    health.mark_up()
    assert health.problem(now=1000.0, grace_seconds=0) is None
    assert health.failures == 0


def test_down_since_is_first_failure() -> None:
    health = WorkerHealth(down_since=None)
    health.mark_down("ConnectionRefusedError: refused", now=200.0)
    health.mark_down("CannotConnectNowError: starting up", now=230.0)
    assert health.down_since == 200.0
    assert health.failures == 2
    problem = health.problem(now=240.0, grace_seconds=15)
    assert problem is not None
    assert "down for 40 s" in problem
    assert "CannotConnectNowError: starting up" in problem


def test_grace_hides_short_interruption() -> None:
    health = WorkerHealth(down_since=None)
    health.mark_down("ConnectionLost", now=50.0)
    assert health.problem(now=60.0, grace_seconds=15) is None
    health.mark_up()
    assert health.problem(now=80.0, grace_seconds=15) is None
