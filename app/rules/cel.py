"""CEL expressions (cel-python) as a rule condition, compiled once and evaluated per alert."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, CELUnsupportedError

# The names an expression may use; each is documented in docs/rules.md.
VARIABLES = frozenset(
    {
        "labels",
        "details",
        "severity",
        "severity_raw",
        "source",
        "summary",
        "dedup_key",
        "action",
        "integration",
        "integration_kind",
        "service",
        "service_id",
        "now",
    }
)
# Macros whose first argument binds a variable, as in labels.exists(k, k.startsWith("x")).
_BINDING_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
MAX_EXPRESSION_LENGTH = 4096
# The deepest parse tree accepted. cel-python transpiles and evaluates the tree
# recursively, and near depth 1,300 (about 130 nested brackets) it exceeds Python's
# recursion limit. Each level of brackets adds 10 levels to the tree and each operator in
# a chain such as a || b || c adds 1 or 2, so 400 allows 38 nested brackets.
MAX_TREE_DEPTH = 400
_TOO_DEEP = "nested too deeply: use fewer nested brackets or split the condition into several rules"

# cel-python logs every evaluation error at ERROR level. For a rule an error only means
# "no match", and the explain endpoint reports it, so the library's own lines are noise.
logging.getLogger("celpy").setLevel(logging.CRITICAL)

# The compiled runner is about five times faster than the interpreter, but it stores the
# activation in a module global while it runs, so evaluations must not overlap between
# threads (replays run in a worker thread beside the ingest path).
_EVALUATION_LOCK = threading.Lock()
_ENVIRONMENT = celpy.Environment(runner_class=celpy.CompiledRunner)


class CelError(ValueError):
    """An expression that does not compile; line and column are 1-based."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        where = f" at line {line} column {column}" if line is not None else ""
        super().__init__(f"{message}{where}")
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class CelResult:
    matched: bool
    # Why the expression did not give a boolean, when it did not.
    error: str | None = None


class CelCondition:
    """A compiled expression; ``evaluate`` returns whether it is true for one alert."""

    def __init__(self, text: str) -> None:
        self.text = text
        if len(text) > MAX_EXPRESSION_LENGTH:
            raise CelError(f"longer than {MAX_EXPRESSION_LENGTH} characters")
        try:
            tree = _ENVIRONMENT.compile(text)
        except CELParseError as exc:
            first_line = str(exc.args[0]).splitlines()[0] if exc.args else "syntax error"
            raise CelError(f"syntax error: {first_line}", exc.line, exc.column) from exc
        except RecursionError as exc:
            raise CelError(_TOO_DEEP) from exc
        _check_depth(tree)
        _check_names(tree)
        try:
            self._program = _ENVIRONMENT.program(tree)
        except (CELEvalError, CELUnsupportedError, SyntaxError) as exc:
            raise CelError(f"cannot compile: {exc}") from exc
        except RecursionError as exc:
            raise CelError(_TOO_DEEP) from exc

    def evaluate(self, variables: Mapping[str, Any]) -> CelResult:
        activation = {name: _to_cel(value) for name, value in variables.items()}
        try:
            with _EVALUATION_LOCK:
                value = self._program.evaluate(activation)
        except (CELEvalError, CELUnsupportedError) as exc:
            return CelResult(False, f"evaluation error: {_describe_error(exc)}")
        except RecursionError:
            return CelResult(False, f"evaluation error: {_TOO_DEEP}")
        if isinstance(value, celtypes.BoolType | bool):
            return CelResult(bool(value))
        return CelResult(False, f"returned {type(value).__name__}, not a bool")


def _describe_error(exc: Exception) -> str:
    if not exc.args:
        return type(exc).__name__
    message = str(exc.args[0])
    # The compiled runner wraps the real error: ("evaluation error", type, (message, ...)).
    if message == "evaluation error" and len(exc.args) > 2 and exc.args[2]:
        inner = exc.args[2][0]
        message = str(inner.args[0]) if isinstance(inner, Exception) and inner.args else str(inner)
    return message


def _to_cel(value: Any) -> Any:
    if isinstance(value, datetime):
        return celtypes.TimestampType(value)
    return json_to_cel(value)


def _check_depth(tree: lark.Tree[Any]) -> None:
    """Reject a parse tree deeper than MAX_TREE_DEPTH, measured without recursion."""
    pending: list[tuple[Any, int]] = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_TREE_DEPTH:
            raise CelError(
                f"nested too deeply: the parse tree is deeper than {MAX_TREE_DEPTH} levels "
                "(about 38 nested brackets). Use fewer nested brackets or split the condition "
                "into several rules"
            )
        if isinstance(node, lark.Tree):
            pending.extend((child, depth + 1) for child in node.children)


def _check_names(tree: lark.Tree[Any]) -> None:
    """Reject names that are neither variables nor bound by a macro, with their position."""
    bound: set[str] = set()
    for node in tree.iter_subtrees():
        if node.data == "member_dot_arg" and len(node.children) >= 3:
            method = node.children[1]
            arguments = node.children[2]
            if str(method) in _BINDING_MACROS and isinstance(arguments, lark.Tree):
                first = next(iter(arguments.children), None)
                name = _plain_identifier(first)
                if name is not None:
                    bound.add(name)
    unknown = []
    for node in tree.iter_subtrees():
        if node.data != "ident":
            continue
        name = str(node.children[0])
        if name not in VARIABLES and name not in bound:
            line = node.meta.line if not node.meta.empty else None
            column = node.meta.column if not node.meta.empty else None
            unknown.append((line or 0, column or 0, name, line, column))
    if unknown:
        _, _, name, line, column = min(unknown)
        known = ", ".join(sorted(VARIABLES))
        raise CelError(f"unknown variable {name!r}; use one of {known}", line, column)


def _plain_identifier(node: Any) -> str | None:
    """Return the name when ``node`` is an expression that is just an identifier."""
    while isinstance(node, lark.Tree) and node.data != "ident" and len(node.children) == 1:
        node = node.children[0]
    if isinstance(node, lark.Tree) and node.data == "ident":
        return str(node.children[0])
    return None
