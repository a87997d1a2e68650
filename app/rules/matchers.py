"""Parse and evaluate matchers in Prometheus Alertmanager's syntax (``name op value``).

Regexes are compiled with RE2, the engine behind Go's ``regexp`` that Alertmanager uses,
so a pattern copied from an Alertmanager route means the same thing here. RE2 matches in
linear time whatever the pattern, so a rule author cannot stall the ingest path with a
catastrophically backtracking regex. Like Alertmanager, every regex is anchored
at both ends, so ``env=~"prod"`` does not match ``preprod``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import re2

OPERATORS = ("=~", "!~", "!=", "=")

_RE2_OPTIONS = re2.Options()
# RE2 logs every rejected pattern to stderr; the caller reports the error instead.
_RE2_OPTIONS.log_errors = False

_MATCHER = re.compile(
    r"""\s*(?P<name>"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_.:/-]*)\s*"""
    r"""(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*""",
    re.DOTALL,
)
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
# Distinct values whose regex result one matcher remembers. Label values repeat a lot
# (severity, env, team), and a lookup is about ten times cheaper than an RE2 call.
_RESULT_CACHE_SIZE = 1024


class MatcherError(ValueError):
    """A matcher that cannot be parsed or whose regex does not compile.

    ``position`` is the 1-based character in the matcher text where the problem is,
    when it is known.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        where = f" at character {position}" if position is not None else ""
        super().__init__(f"{message}{where}")
        self.message = message
        self.position = position


@dataclass(slots=True, eq=False)
class Matcher:
    """One parsed matcher. A missing label or field counts as the empty string."""

    name: str
    op: str
    value: str
    text: str
    _regex: Any = None
    _results: dict[str, bool] = field(default_factory=dict)

    def matches(self, actual: str) -> bool:
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self._results.get(actual)
        if found is None:
            found = self._regex.fullmatch(actual) is not None
            if len(self._results) < _RESULT_CACHE_SIZE:
                self._results[actual] = found
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"


def quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _unquote(text: str, offset: int) -> str:
    """Decode a double-quoted string; ``offset`` is its place in the matcher, for errors."""
    if len(text) < 2 or not text.endswith('"'):
        raise MatcherError("unterminated quoted string", offset + 1)
    result = []
    index = 1
    while index < len(text) - 1:
        char = text[index]
        if char == "\\":
            escaped = text[index + 1] if index + 1 < len(text) - 1 else ""
            if escaped not in _ESCAPES:
                raise MatcherError('invalid escape; use \\\\, \\", \\n or \\t', offset + index + 1)
            result.append(_ESCAPES[escaped])
            index += 2
            continue
        if char == '"':
            raise MatcherError('unescaped " inside a quoted string', offset + index + 1)
        result.append(char)
        index += 1
    return "".join(result)


def compile_regex(pattern: str) -> Any:
    """Compile an RE2 pattern anchored at both ends, or raise MatcherError with the position."""
    try:
        # fullmatch anchors the whole pattern, as Alertmanager's ^(?:...)$ does.
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        message = exc.args[0].decode() if isinstance(exc.args[0], bytes) else str(exc)
        raise MatcherError(f"invalid regex: {message}", _error_position(pattern, message)) from exc


def _error_position(pattern: str, message: str) -> int | None:
    """Find where in ``pattern`` RE2's error points (1-based), which RE2 itself never reports.

    Python's parser reports a position for the syntax errors both engines share; for
    the constructs only RE2 rejects (lookarounds, backreferences) RE2's message ends
    with the offending fragment, which is searched for in the pattern.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        if exc.pos is not None:
            return exc.pos + 1
    fragment = message.rpartition(": ")[2]
    index = pattern.find(fragment) if fragment else -1
    return index + 1 if index >= 0 else None


def parse_matcher(text: str) -> Matcher:
    """Parse one ``name op value`` matcher, e.g. ``severity=~"critical|error"``."""
    match = _MATCHER.fullmatch(text)
    if match is None:
        raise MatcherError(
            'expected name, operator (=, !=, =~ or !~) and value, e.g. env="prod"',
            _first_bad_character(text),
        )
    name = match["name"]
    if name.startswith('"'):
        name = _unquote(name, match.start("name"))
    raw_value = match["value"]
    if raw_value.startswith('"'):
        value = _unquote(raw_value, match.start("value"))
    else:
        if '"' in raw_value:
            raise MatcherError(
                'a value containing " must be quoted',
                match.start("value") + raw_value.index('"') + 1,
            )
        value = raw_value
    matcher = Matcher(name=name, op=match["op"], value=value, text=text.strip())
    if matcher.op in ("=~", "!~"):
        try:
            matcher._regex = compile_regex(value)
        except MatcherError as exc:
            position = exc.position
            if position is not None and not raw_value.startswith('"'):
                position += match.start("value")
            elif position is not None:
                # Inside quotes the offset is approximate when the value has escapes.
                position += match.start("value") + 1
            raise MatcherError(exc.message, position) from exc
    return matcher


def _first_bad_character(text: str) -> int | None:
    name = re.match(r'\s*("(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_.:/-]*)\s*', text)
    if name is None:
        return len(text) - len(text.lstrip()) + 1
    return name.end() + 1


def parse_matchers(text: str) -> list[Matcher]:
    """Parse one matcher, or a braced list ``{a="b", c=~"d"}`` as Alertmanager writes them."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return [parse_matcher(text)]
    offset = text.index("{") + 1
    matchers = []
    for start, part in _split_top_level(stripped[1:-1]):
        if not part.strip():
            continue
        try:
            matchers.append(parse_matcher(part))
        except MatcherError as exc:
            position = exc.position + offset + start if exc.position is not None else None
            raise MatcherError(exc.message, position) from exc
    return matchers


def _split_top_level(body: str) -> Iterator[tuple[int, str]]:
    """Split on commas outside double quotes; yield (offset, part)."""
    start = 0
    in_quotes = False
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and in_quotes:
            index += 2
            continue
        if char == '"':
            in_quotes = not in_quotes
        elif char == "," and not in_quotes:
            yield start, body[start:index]
            start = index + 1
        index += 1
    yield start, body[start:]
