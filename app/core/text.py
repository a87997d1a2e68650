"""Text helpers that respect user-perceived characters (Unicode grapheme clusters)."""

from __future__ import annotations

from collections.abc import Callable

import regex

ELLIPSIS = "\u2026"
# \X matches one extended grapheme cluster, as Unicode text segmentation defines it.
_GRAPHEME = regex.compile(r"\X")


def utf16_length(text: str) -> int:
    """Count UTF-16 code units, the unit Telegram and SMS (UCS-2) limits are measured in."""
    return len(text.encode("utf-16-le")) // 2


def graphemes(text: str) -> list[str]:
    """Split ``text`` into extended grapheme clusters."""
    clusters: list[str] = _GRAPHEME.findall(text)
    return clusters


def truncate(
    text: str,
    max_length: int,
    *,
    measure: Callable[[str], int] = len,
    ellipsis: str = ELLIPSIS,
) -> str:
    """Shorten ``text`` so that ``measure`` of the result is at most ``max_length``.

    ``measure`` defaults to code points (``len``); pass ``utf16_length`` for channels that
    count UTF-16 code units. A measure must count each code point as one unit or more.
    The cut falls between grapheme clusters, so it never splits a combining sequence, an
    emoji with its modifiers, a ZWJ sequence or a flag, and the result ends with
    ``ellipsis`` when anything was cut.
    """
    if measure(text) <= max_length:
        return text
    budget = max_length - measure(ellipsis)
    if budget < 0:
        return ""
    kept: list[str] = []
    used = 0
    # The kept clusters lie within the first budget code points, because each code point
    # counts at least one unit. One more code point lets the scan find the next boundary.
    for cluster in graphemes(text[: budget + 1]):
        size = measure(cluster)
        if used + size > budget:
            break
        kept.append(cluster)
        used += size
    return "".join(kept) + ellipsis


def printable(text: str) -> str:
    """Return ``text`` with lone surrogates written as ``\\udxxx`` escapes.

    JSON bodies can carry lone surrogates in \\u escapes, and they cannot be encoded as
    UTF-8, so an error message that quotes such text must escape them first.
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
