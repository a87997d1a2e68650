from __future__ import annotations

import pytest

from app.core.text import graphemes, truncate, utf16_length

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man, woman, girl joined by ZWJ
THUMBS_UP_DARK = "\U0001f44d\U0001f3ff"
FLAG_FR = "\U0001f1eb\U0001f1f7"
E_ACUTE = "e\u0301"  # e + combining acute accent
HANGUL = "\u1100\u1161\u11a8"  # a syllable written as three conjoining jamo
KEYCAP_ONE = "1\ufe0f\u20e3"


def test_short_text_is_unchanged() -> None:
    assert truncate("disk full", 9) == "disk full"


def test_cut_adds_ellipsis_within_limit() -> None:
    assert truncate("disk full on db-1", 8) == "disk fu\u2026"


@pytest.mark.parametrize("cluster", [FAMILY, THUMBS_UP_DARK, FLAG_FR, E_ACUTE, HANGUL, KEYCAP_ONE])
@pytest.mark.parametrize("limit", range(1, 14))
def test_never_splits_a_grapheme(cluster: str, limit: int) -> None:
    text = "ab" + cluster * 3 + "cd"
    result = truncate(text, limit)
    assert len(result) <= limit
    body = result.removesuffix("\u2026")
    # Every cluster kept is whole: the kept text splits into a prefix of the original's.
    assert graphemes(body) == graphemes(text)[: len(graphemes(body))]


def test_flag_pairs_stay_together() -> None:
    flags = FLAG_FR * 4  # eight regional indicators
    for limit in range(1, 8):
        kept = truncate(flags, limit).removesuffix("\u2026")
        assert len(kept) % 2 == 0


def test_utf16_measure_counts_surrogates() -> None:
    assert utf16_length("a" + THUMBS_UP_DARK) == 5
    result = truncate("ab" + THUMBS_UP_DARK * 3, 6, measure=utf16_length)
    assert result == "ab\u2026"
    assert utf16_length(result) <= 6


def test_custom_ellipsis() -> None:
    assert truncate("abcdefgh", 6, ellipsis="...") == "abc..."


def test_limit_smaller_than_ellipsis() -> None:
    assert truncate("abcdefgh", 2, ellipsis="...") == ""
