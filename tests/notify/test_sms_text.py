from __future__ import annotations

import pytest

from app.notify.sms_text import count_segments, fit, is_gsm, to_gsm_friendly


@pytest.mark.parametrize(
    ("text", "encoding", "count"),
    [
        ("", "gsm7", 0),
        ("a" * 160, "gsm7", 1),
        ("a" * 161, "gsm7", 2),
        ("a" * 306, "gsm7", 2),
        ("a" * 307, "gsm7", 3),
        ("€" * 80, "gsm7", 1),  # the euro sign takes two septets
        ("€" * 81, "gsm7", 2),
        ("ж" * 70, "ucs2", 1),
        ("ж" * 71, "ucs2", 2),
        ("\U0001f525" * 35, "ucs2", 1),  # an emoji takes two UTF-16 units
        ("\U0001f525" * 36, "ucs2", 2),
    ],
)
def test_count_segments(text: str, encoding: str, count: int) -> None:
    segments = count_segments(text)
    assert segments.encoding == encoding
    assert segments.count == count


def test_escaped_character_is_not_split_across_parts() -> None:
    # 152 septets, then a two-septet '{' that does not fit the first part's 153.
    segments = count_segments("a" * 152 + "{" + "a" * 153)
    assert segments.count == 3


def test_typographic_quotes_keep_gsm() -> None:
    text = to_gsm_friendly("It\u2019s \u201cdown\u201d \u2013 again\u2026")
    assert text == 'It\'s "down" - again...'
    assert is_gsm(text)


def test_fit_keeps_the_link_whole() -> None:
    link = "\nAck: https://tocsin.example/a/Zm9vYmFy"
    result = fit("Disk full " * 50, link, 2)
    assert result.endswith("..." + link)
    assert count_segments(result).count == 2


def test_fit_one_segment_unicode() -> None:
    result = fit("Диск заполнен " * 20, "", 1)
    assert count_segments(result).count == 1
    assert result.endswith("...")


def test_fit_leaves_short_text() -> None:
    assert (
        fit("Disk full", "\nView: https://t.example/1", 1) == "Disk full\nView: https://t.example/1"
    )
