"""Shared pieces of the pure parsers: errors with field paths, limits, severities, timestamps."""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core.text import printable, truncate
from app.incidents.events import Link, Severity


class ParseError(ValueError):
    """The body cannot be turned into events; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_alerts: int = 5000
    max_labels: int = 128
    max_label_length: int = 8192
    max_summary_length: int = 1024
    # Annotations and details are free text (descriptions, runbooks); longer values are cut.
    max_annotation_length: int = 65536


def load_json_object(body: bytes) -> dict[str, Any]:
    """Decode a request body that must be one JSON object."""
    if not body.strip():
        raise ParseError("body", "the body is empty; send a JSON object")
    try:
        # JSON on the wire is UTF-8 (RFC 8259); json.loads would guess UTF-16 from a BOM.
        # utf-8-sig also accepts the UTF-8 byte order mark that some senders add.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError("body", f"the body is not valid UTF-8 (byte {exc.start})") from exc
    out_of_range: list[str] = []

    def parse_float(literal: str) -> float:
        number = float(literal)
        if math.isinf(number):
            out_of_range.append(literal)
        return number

    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=parse_float)
    except json.JSONDecodeError as exc:
        raise ParseError(
            "body", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:
        raise ParseError("body", "the JSON is nested too deeply") from exc
    except ParseError:
        raise
    except ValueError as exc:
        # Python refuses integers of more than 4,300 digits (sys.set_int_max_str_digits).
        raise ParseError(
            "body", "a number has more than 4,300 digits; send it as a string"
        ) from exc
    if not isinstance(value, dict):
        raise ParseError("body", f"expected a JSON object, got {json_type(value)}")
    # Only a \u escape can smuggle in text PostgreSQL cannot store, and only a number
    # beyond the float range becomes infinity, so most bodies skip the walk.
    if "\\u" in text or out_of_range:
        try:
            _check_storable(value, "")
        except RecursionError as exc:
            raise ParseError("body", "the JSON is nested too deeply") from exc
    return value


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259), and PostgreSQL's JSONB rejects them.
    raise ParseError("body", f"{name} is not valid JSON; send a number or a string")


def _check_storable(value: Any, path: str) -> None:
    """Reject NUL characters, lone surrogates and infinite numbers, which PostgreSQL text
    and JSONB refuse."""
    if isinstance(value, str):
        _check_string(value, path or "body")
    elif isinstance(value, float) and math.isinf(value):
        raise ParseError(
            path or "body",
            "the number is beyond the range of a double (about 1.8e308); send it as a string",
        )
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{printable(key)}" if path else printable(key)
            _check_string(key, child)
            _check_storable(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_storable(item, f"{path}.{index}" if path else str(index))


def _check_string(text: str, path: str) -> None:
    if "\x00" in text:
        raise ParseError(path, "contains a NUL character (\\u0000), which cannot be stored")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ParseError(
            path,
            f"contains an unpaired surrogate (\\u{ord(text[exc.start]):04x}); "
            "send valid UTF-16 surrogate pairs",
        ) from exc


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def expect_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(field, f"expected an object, got {json_type(value)}")
    return value


def expect_list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParseError(field, f"expected an array, got {json_type(value)}")
    return value


def field_path(field: str, key: str) -> str:
    """Join a dotted path; an empty ``field`` is the top level of the body."""
    return f"{field}.{key}" if field else key


def optional_str(container: Mapping[str, Any], key: str, field: str) -> str | None:
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParseError(field_path(field, key), f"expected a string, got {json_type(value)}")
    return value


def _scalar_text(item: Any, field: str) -> str:
    """Read one label or annotation value; numbers and booleans become strings."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, (int, float)):
        return str(item)
    if isinstance(item, str):
        return item
    if item is None:
        return ""
    raise ParseError(field, f"expected a string, got {json_type(item)}")


def _checked_object(value: Any, field: str, limits: IngestLimits) -> dict[str, Any]:
    mapping = expect_object(value, field)
    if len(mapping) > limits.max_labels:
        raise ParseError(
            field,
            f"{len(mapping)} entries exceed the limit of {limits.max_labels} "
            "(TOCSIN_INGEST_MAX_LABELS)",
        )
    for name in mapping:
        if len(name) > limits.max_label_length:
            raise ParseError(
                f"{field}.{name[:64]}",
                f"the name is longer than {limits.max_label_length} characters "
                "(TOCSIN_INGEST_MAX_LABEL_LENGTH)",
            )
    return mapping


def string_map(value: Any, field: str, limits: IngestLimits) -> dict[str, str]:
    """Read a label-style object of strings; numbers and booleans become strings."""
    if value is None:
        return {}
    result: dict[str, str] = {}
    for name, item in _checked_object(value, field, limits).items():
        text = _scalar_text(item, f"{field}.{name}")
        if len(text) > limits.max_label_length:
            raise ParseError(
                f"{field}.{name}",
                f"longer than {limits.max_label_length} characters "
                "(TOCSIN_INGEST_MAX_LABEL_LENGTH)",
            )
        result[name] = text
    return result


def annotation_map(
    value: Any, field: str, limits: IngestLimits
) -> tuple[dict[str, str], list[str]]:
    """Read free-text annotations; cut values over the limit and return the names cut.

    Unlike labels, annotations do not identify an alert, and Alertmanager does not retry
    a 4xx answer, so an over-long description is shortened instead of rejecting the alert.
    """
    if value is None:
        return {}, []
    result: dict[str, str] = {}
    cut: list[str] = []
    for name, item in _checked_object(value, field, limits).items():
        text = _scalar_text(item, f"{field}.{name}")
        if len(text) > limits.max_annotation_length:
            text = truncate(text, limits.max_annotation_length)
            cut.append(name)
        result[name] = text
    return result, cut


def optional_text(container: Mapping[str, Any], key: str, field: str) -> str | None:
    """Read a string field, also accepting a number (some senders send ids as numbers)."""
    value = container.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return optional_str(container, key, field)


def new_dedup_key() -> str:
    """Return a random dedup key for a trigger that came without one, as PagerDuty does."""
    return uuid.uuid4().hex


def parse_links(value: Any, field: str, *, limit: int = 50) -> list[Link]:
    """Read ``[{"href": ..., "text": ...}]``; an entry without ``href`` is an error."""
    if value is None:
        return []
    items = expect_list(value, field)
    if len(items) > limit:
        raise ParseError(field, f"{len(items)} links exceed the limit of {limit}")
    links = []
    for index, item in enumerate(items):
        entry = expect_object(item, f"{field}.{index}")
        href = optional_str(entry, "href", f"{field}.{index}")
        if not href:
            raise ParseError(f"{field}.{index}.href", "missing; each link needs an href")
        links.append(Link(href, optional_str(entry, "text", f"{field}.{index}") or ""))
    return links


def check_alert_count(count: int, field: str, limits: IngestLimits) -> None:
    if count > limits.max_alerts:
        raise ParseError(
            field,
            f"{count} alerts exceed the limit of {limits.max_alerts} per request "
            "(TOCSIN_INGEST_MAX_ALERTS); send smaller batches",
        )


def summary_with_overflow(
    summary: str, details: dict[str, Any], limits: IngestLimits
) -> tuple[str, dict[str, Any]]:
    """Cut an over-long summary, keeping the full text in details under ``full_summary``."""
    if len(summary) <= limits.max_summary_length:
        return summary, details
    return truncate(summary, limits.max_summary_length), {**details, "full_summary": summary}


def fingerprint_labels(labels: Mapping[str, str]) -> str:
    """Hash a label set in a stable way, for senders that give no key of their own."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_SEVERITY_WORDS: dict[str, Severity] = {}
for _severity, _words in {
    Severity.critical: (
        "critical crit fatal emergency emerg alert disaster page p1 sev1 sev-1 sev0 sev-0 "
        "s1 highest urgent"
    ),
    Severity.error: "error err major high p2 sev2 sev-2 s2 failure failed",
    Severity.warning: "warning warn minor medium average moderate p3 sev3 sev-3 s3 ticket",
    Severity.info: (
        "info informational information notice low lowest debug trace ok none unknown "
        "p4 p5 sev4 sev-4 sev5 sev-5 s4 s5"
    ),
}.items():
    for _word in _words.split():
        _SEVERITY_WORDS[_word] = _severity

# Numbers follow syslog (RFC 5424): 0 emergency ... 3 error, 4 warning, 5-7 notice to debug.
_SYSLOG_SEVERITY = {
    0: Severity.critical,
    1: Severity.critical,
    2: Severity.critical,
    3: Severity.error,
    4: Severity.warning,
    5: Severity.info,
    6: Severity.info,
    7: Severity.info,
}


def normalize_severity(
    value: Any, field: str, *, default: Severity = Severity.critical, strict: bool = False
) -> tuple[Severity, str | None]:
    """Map a sender's severity onto Tocsin's scale; return it with the original text.

    Words match in any case and with surrounding space; numbers follow syslog levels.
    Missing or null values take ``default``. An unknown word raises ``ParseError``
    when ``strict`` (formats with a fixed vocabulary) and otherwise takes ``default``,
    because label values such as Alertmanager's ``severity`` are free text.
    """
    if value is None or value == "":
        return default, None
    if isinstance(value, bool):
        raise ParseError(field, "expected a severity word or number, got a boolean")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and (math.isnan(value) or not value.is_integer()):
            raise ParseError(field, f"severity number {value!r} is not a whole number 0-7")
        level = int(value)
        if level not in _SYSLOG_SEVERITY:
            if not strict:
                return default, str(value)
            raise ParseError(field, f"severity number {level} is outside the syslog range 0-7")
        return _SYSLOG_SEVERITY[level], str(value)
    if not isinstance(value, str):
        raise ParseError(field, f"expected a severity word or number, got {json_type(value)}")
    word = value.strip().lower()
    # isdigit alone accepts characters such as "²" that int() cannot read.
    if word.isascii() and word.isdigit():
        return normalize_severity(int(word), field, default=default, strict=strict)[0], value
    severity = _SEVERITY_WORDS.get(word)
    if severity is not None:
        return severity, value
    if strict:
        raise ParseError(field, f"unknown severity {value!r}; use critical, error, warning or info")
    return default, value


_ISO_TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}(?::\d{2})?)"
    r"(?:[.,](?P<fraction>\d+))?\s*(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)
# Go's zero time.Time, which Alertmanager sends as endsAt of a firing alert, in the
# spellings of RFC 3339 at midnight UTC. Other instants of year 1 are ordinary timestamps.
_ZERO_TIME = re.compile(r"0001-01-01(?:[Tt ]00:00(?::00(?:[.,]0+)?)?\s*(?:[Zz]|[+-]00(?::?00)?)?)?")
# Epoch values above this are milliseconds (10^11 seconds is the year 5138).
_EPOCH_MILLISECONDS_FROM = 10**11
_EPOCH_MICROSECONDS_FROM = 10**14


def parse_timestamp(value: Any, field: str) -> datetime | None:
    """Read a timestamp in any form senders use and return an aware UTC datetime.

    Accepted: RFC 3339 / ISO 8601 with ``Z``, an offset or no zone (taken as UTC),
    fractions of any length (cut to microseconds), and Unix epoch numbers or numeric
    strings in seconds, milliseconds or microseconds. Go's zero time and null give None.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ParseError(field, "expected a timestamp, got a boolean")
    if isinstance(value, (int, float)):
        return _from_epoch(float(value), field)
    if not isinstance(value, str):
        raise ParseError(field, f"expected a timestamp, got {json_type(value)}")
    text = value.strip()
    if _ZERO_TIME.fullmatch(text):
        return None
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return _from_epoch(float(text), field)
    match = _ISO_TIMESTAMP.match(text)
    if match is None:
        raise ParseError(
            field, f"unreadable timestamp {value!r}; use RFC 3339, e.g. 2026-11-30T08:12:41Z"
        )
    time_part = match["time"] if match["time"].count(":") == 2 else match["time"] + ":00"
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    zone = match["zone"] or "+00:00"
    if zone in ("Z", "z"):
        zone = "+00:00"
    elif len(zone) == 3:
        zone += ":00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        parsed = datetime.fromisoformat(f"{match['date']}T{time_part}.{fraction}{zone}")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ParseError(field, f"invalid timestamp {value!r}: {exc}") from exc


def _from_epoch(number: float, field: str) -> datetime:
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise ParseError(field, f"invalid epoch timestamp {number!r}")
    if number >= _EPOCH_MICROSECONDS_FROM:
        number /= 1_000_000
    elif number >= _EPOCH_MILLISECONDS_FROM:
        number /= 1000
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=number)
    except OverflowError as exc:
        raise ParseError(field, f"epoch timestamp {number!r} is out of range") from exc
