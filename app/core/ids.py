"""Time-ordered UUIDs (version 7, RFC 9562) for primary keys."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_milliseconds = 0
_counter = 0
_COUNTER_MAX = 0xFFF


def uuid7() -> uuid.UUID:
    """Return a version 7 UUID: 48 bits of Unix milliseconds, a 12-bit counter, 62 random bits.

    Keys made this way sort by creation time, which keeps B-tree inserts local and lets
    lists ordered by (timestamp, id) page with a keyset cursor. Within one process, the
    counter (RFC 9562, method 1) keeps keys of the same millisecond in creation order.
    When the counter overflows, the timestamp moves on by one millisecond.
    """
    global _last_milliseconds, _counter
    with _lock:
        milliseconds = time.time_ns() // 1_000_000
        if milliseconds > _last_milliseconds:
            _last_milliseconds = milliseconds
            # Start low in the counter's range so many keys fit in one millisecond.
            _counter = int.from_bytes(os.urandom(1), "big")
        else:
            _counter += 1
            if _counter > _COUNTER_MAX:
                _last_milliseconds += 1
                _counter = 0
        milliseconds, counter = _last_milliseconds, _counter
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (milliseconds & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= random_bits
    return uuid.UUID(int=value)
