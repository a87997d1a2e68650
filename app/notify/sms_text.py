"""SMS text: GSM 03.38 or UCS-2 encoding, segment counting and fitting a text into segments."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.text import graphemes

# GSM 03.38 basic character set (one septet each), without the escape code 0x1B.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs two septets (escape plus the character).
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
# Septets or UTF-16 units per segment: alone, and as part of a concatenated message,
# whose user data header takes 6 bytes (3GPP TS 23.040).
GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
# Look-alikes that keep a text in GSM-7, because a UCS-2 segment has less than half the room.
_GSM_REPLACEMENTS = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\t": " ",
    }
)
SMS_ELLIPSIS = "..."


@dataclass(frozen=True, slots=True)
class Segments:
    encoding: str  # "gsm7" or "ucs2"
    count: int


def to_gsm_friendly(text: str) -> str:
    """Replace typographic quotes, dashes and spaces by their GSM-7 look-alikes."""
    return text.translate(_GSM_REPLACEMENTS)


def is_gsm(text: str) -> bool:
    return all(char in GSM_BASIC or char in GSM_EXTENDED for char in text)


def _unit_costs(text: str, gsm: bool) -> list[int]:
    if gsm:
        return [2 if char in GSM_EXTENDED else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def count_segments(text: str) -> Segments:
    """Count the segments ``text`` needs; a character is never split across two parts."""
    gsm = is_gsm(text)
    single, part = (GSM_SINGLE, GSM_PART) if gsm else (UCS2_SINGLE, UCS2_PART)
    costs = _unit_costs(text, gsm)
    encoding = "gsm7" if gsm else "ucs2"
    if sum(costs) <= single:
        return Segments(encoding, 1 if text else 0)
    count, used = 1, 0
    for cost in costs:
        if used + cost > part:
            count += 1
            used = 0
        used += cost
    return Segments(encoding, count)


def fit(text: str, suffix: str, max_segments: int) -> str:
    """Return ``text`` + ``suffix`` within ``max_segments``, cutting ``text`` if needed.

    The suffix (an action link) is kept whole; the text is cut between grapheme clusters
    and ends with "...". When even the suffix alone does not fit, it is returned alone.
    """
    text = to_gsm_friendly(text)
    if count_segments(text + suffix).count <= max_segments:
        return text + suffix
    clusters = graphemes(text)
    low, high = 0, len(clusters)
    # Binary search for the most clusters that fit: segments never shrink as text grows.
    while low < high:
        middle = (low + high + 1) // 2
        candidate = "".join(clusters[:middle]) + SMS_ELLIPSIS + suffix
        if count_segments(candidate).count <= max_segments:
            low = middle
        else:
            high = middle - 1
    if low == 0:
        return suffix.lstrip()
    return "".join(clusters[:low]).rstrip() + SMS_ELLIPSIS + suffix
