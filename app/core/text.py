"""Text helpers that respect user-perceived characters."""

from __future__ import annotations

import unicodedata

ELLIPSIS = "\u2026"
_ZERO_WIDTH_JOINER = "\u200d"


def _joins_previous(char: str) -> bool:
    """Tell whether a code point belongs to the character before it."""
    if unicodedata.combining(char) or char == _ZERO_WIDTH_JOINER:
        return True
    code = ord(char)
    # Variation selectors, emoji skin-tone modifiers and tag characters.
    return (
        0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or unicodedata.category(char) == "Me"
    )


def truncate(text: str, max_chars: int) -> str:
    """Shorten ``text`` to at most ``max_chars`` code points, ending with an ellipsis.

    The cut moves left until it no longer splits a combining sequence, an emoji
    modifier sequence, a ZWJ sequence or a regional-indicator flag pair.
    """
    if len(text) <= max_chars:
        return text
    cut = max(max_chars - 1, 0)
    while cut > 0 and (_joins_previous(text[cut]) or text[cut - 1] == _ZERO_WIDTH_JOINER):
        cut -= 1
    # A flag is two regional indicators; count the run before the cut to avoid halving one.
    run = 0
    while cut - run > 0 and 0x1F1E6 <= ord(text[cut - run - 1]) <= 0x1F1FF:
        run += 1
    if run % 2 == 1 and cut < len(text) and 0x1F1E6 <= ord(text[cut]) <= 0x1F1FF:
        cut -= 1
    return text[:cut] + ELLIPSIS
