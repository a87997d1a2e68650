"""Time-ordered UUIDs (version 7, RFC 9562) for primary keys."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """Return a version 7 UUID: 48 bits of Unix milliseconds, then 74 random bits.

    Keys made this way sort by creation time, which keeps B-tree inserts local and
    lets a list ordered by (created_at, id) page with a simple keyset cursor.
    """
    milliseconds = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (milliseconds & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((random_bits >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= random_bits & ((1 << 62) - 1)  # rand_b
    return uuid.UUID(int=value)
